"""The `needs_tool` marker: a missing system tool skips locally but errors under CI."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TEST_FILE = """
import pytest

@pytest.mark.needs_tool("surely-not-an-installed-tool")
def test_uses_tool():
    pass
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", {"skipped": 1}), ("true", {"errors": 1})])
def test_missing_tool(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest("from tests.conftest import pytest_runtest_setup\n")
    pytester.makeini("[pytest]\nmarkers =\n    needs_tool(name): needs a tool\n")
    pytester.makepyfile(TEST_FILE)
    pytester.runpytest_inprocess().assert_outcomes(**outcome)
