"""`make demo` keeps working: the real one (same code path) and the simulated fallback."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from reconciler import demo, demo_validate


@pytest.mark.needs_tool("ostree")
def test_real_demo_halts_on_the_host_that_falls_back() -> None:
    out = io.StringIO()
    assert demo.run(Console(file=out, width=120, force_terminal=False)) == 0
    text = out.getvalue()
    assert "refused (invalid)" in text
    assert "host_failed" in text
    assert "greenboot fell back" in text
    assert "rollout HALTED" in text
    assert "host_succeeded   call-01 runs 2.0" in text


def test_simulated_demo_runs_and_catches_the_bad_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_validate.run() == 0
    out = capsys.readouterr().out
    assert "INVALID: 3 error(s)" in out
    assert "callservers-dub      rollout_completed" in out
    assert "lab-call-03  rolled_back  none" in out
    assert "staging-lab: halted" in out
