"""`reconciler validate`: output formats and exit codes, as ops and CI see them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.conftest import EXAMPLE_FLEET


def _typo(fleet_dir: Path) -> None:
    fleet = fleet_dir / "fleet.yaml"
    fleet.write_text(fleet.read_text().replace("maxUnavailable: 1", "maxUnavailible: 1"))


def test_example_is_valid_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(EXAMPLE_FLEET)]) == 0
    out = capsys.readouterr().out
    assert "fleet `callos` is valid: 2 streams, 6 groups, 33 hosts" in out


def test_text_output_is_file_line_column_field_message(
    fleet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _typo(fleet_dir)
    assert main(["validate", str(fleet_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{fleet_dir}/fleet.yaml:12:7: defaults.rollout.rebootBudget."
        "maxUnavailible: unknown field `maxUnavailible`"
    )
    assert lines[1] == "    hint: did you mean `maxUnavailable`?"
    assert "INVALID: 1 error(s)" in lines[-1]


def test_json_output(fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _typo(fleet_dir)
    assert main(["validate", str(fleet_dir), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    [problem] = report["problems"]
    assert problem["line"] == 12
    assert problem["code"] == "schema.extra_forbidden"
    assert problem["severity"] == "error"


def test_github_annotations_use_repository_paths(
    fleet_dir: Path,
    commit_fleet: Callable[[Path, str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _typo(fleet_dir)
    commit_fleet(fleet_dir, "typo")
    assert main(["validate", str(fleet_dir), "--rev", "HEAD", "--format", "github"]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("::error file=fleet.yaml,line=12,col=7,title=defaults.rollout.")
    assert first.endswith("::unknown field `maxUnavailible` (hint: did you mean `maxUnavailable`?)")


def test_rev_gives_the_same_result_as_the_directory(
    fleet_dir: Path,
    commit_fleet: Callable[[Path, str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    commit_fleet(fleet_dir, "fleet")
    assert main(["validate", str(fleet_dir), "--format", "json"]) == 0
    from_dir = json.loads(capsys.readouterr().out)
    assert main(["validate", str(fleet_dir), "--rev", "HEAD", "--format", "json"]) == 0
    from_git = json.loads(capsys.readouterr().out)
    assert from_dir["problems"] == from_git["problems"] == []
    assert from_git["filesRead"] == from_dir["filesRead"]


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "/nonexistent/fleet"],
        ["validate", str(EXAMPLE_FLEET), "--rev", "HEAD~999999"],
        ["validate", "--format", "xml"],
    ],
)
def test_usage_errors_exit_two(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_console_script_runs_and_never_prints_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "fleet"
    (broken / "groups").mkdir(parents=True)
    (broken / "fleet.yaml").write_bytes(b"\x00\xff garbage")
    (broken / "groups" / "a.yaml").write_text("a: [\n")
    script = Path(sys.executable).parent / "reconciler"
    result = subprocess.run(
        [str(script), "validate", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "fleet.yaml:1:1: file is not UTF-8" in result.stdout


def test_subdir_also_applies_to_a_working_directory(capsys: pytest.CaptureFixture[str]) -> None:
    root = EXAMPLE_FLEET.parent.parent  # fleet-repo-schema/
    assert main(["validate", str(root), "--subdir", "examples/callos"]) == 0
    assert "fleet `callos` is valid" in capsys.readouterr().out


def test_the_new_engineers_mistakes_each_print_one_located_error_with_a_hint(
    fleet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The report that asked for teaching errors: a misspelt key, an abbreviation for a time
    # zone and a mis-indented line, each in its own file.
    nyc = fleet_dir / "groups" / "callservers-nyc.yaml"
    nyc.write_text(nyc.read_text().replace("stream: production", "steam: production"))
    sin = fleet_dir / "groups" / "callservers-sin.yaml"
    sin.write_text(sin.read_text().replace("timeZone: Asia/Singapore", "timeZone: SGT"))
    lab = fleet_dir / "groups" / "staging-lab.yaml"
    lab.write_text(lab.read_text().replace("  soakTime: 30m", "   soakTime: 30m"))
    assert main(["validate", str(fleet_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [
        f"{fleet_dir}/groups/callservers-nyc.yaml:9:1: steam: unknown field `steam`",
        "    hint: did you mean `stream`?",
        f"{fleet_dir}/groups/callservers-sin.yaml:14:5: maintenanceWindows[0].timeZone: "
        "`SGT` is an abbreviation, not an IANA time zone: a window in it would not follow "
        "the place's summer time, or could mean several places; write `Asia/Singapore`; "
        "or `UTC` if the window should ignore summer time",
        f"{fleet_dir}/groups/staging-lab.yaml:12:4: YAML syntax error: while parsing a block "
        "mapping did not find expected key",
        "    hint: a line is indented differently from the lines it belongs with (e.g. a `-` "
        "item or a key one space off); align it with its siblings",
    ]
    assert "INVALID: 3 error(s)" in lines[-1]
