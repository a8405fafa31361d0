"""Every verb keeps the exit codes of docs/cli.md: 0 fine, 1 invalid, 2 usage or cannot be
reached, 3 needs an operator, 4 a bug. (`plan`'s and `status`'s own codes are tested beside
them, in test_cli_plan.py and test_cli_status.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.cli.exits import ExitCode
from tests.test_gitsource import Remote, replace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "fleet-repo-schema" / "examples" / "callos"


def test_the_table_in_docs_lists_every_code_with_its_number() -> None:
    table = (ROOT / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \| `{code.name}` \|", table, re.MULTILINE), code


def test_validate_valid_invalid_and_missing(tmp_path: Path) -> None:
    assert main(["validate", str(EXAMPLE)]) == ExitCode.OK
    broken = tmp_path / "fleet"
    broken.mkdir()
    (broken / "fleet.yaml").write_text("apiVersion: nonsense\n")
    assert main(["validate", str(broken)]) == ExitCode.INVALID
    assert main(["validate", str(tmp_path / "nowhere"), "--rev", "HEAD"]) == ExitCode.USAGE


def test_an_unknown_option_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--no-such-option"])
    assert exited.value.code == ExitCode.USAGE


def test_history_without_a_state_database_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["history", "--state-dir", str(tmp_path)]) == ExitCode.USAGE


def test_schema_check_stale_is_invalid_and_unreadable_is_usage(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    reference = tmp_path / "ref.md"
    reference.write_text((ROOT / "docs" / "fleet-repo.md").read_text())
    args = ["schema", "--schema-dir", str(tmp_path / "schema"), "--reference", str(reference)]
    assert main([*args, "--check"]) == ExitCode.INVALID
    missing = ["schema", "--schema-dir", str(tmp_path), "--reference", str(tmp_path / "no.md")]
    assert main(missing) == ExitCode.USAGE


def test_serve_without_a_valid_revision_is_invalid(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit(
        "typo", replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    )
    args = ["serve", "--repo", str(origin.bare), "--state-dir", str(tmp_path / "state")]
    assert main([*args, "--port", "0"]) == ExitCode.INVALID


def test_serve_with_a_repository_that_cannot_be_fetched_is_usage(tmp_path: Path) -> None:
    args = ["serve", "--repo", str(tmp_path / "nowhere.git"), "--state-dir", str(tmp_path / "s")]
    assert main([*args, "--port", "0"]) == ExitCode.USAGE


def test_a_bug_exits_4_with_the_traceback_not_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("reconciler.cli.validate.load_fleet", broken)
    assert main(["validate", str(EXAMPLE)]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "RuntimeError: a bug" in err
    assert "reconciler validate: failed (a bug" in err
