"""The agent's apply logic, greenboot reading, backoff, and its stdlib-only promise."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.agent.agent import Agent
from reconciler.agent.client import Backoff
from reconciler.agent.greenboot import greenboot_status
from reconciler.agent.rpmostree import RpmOstreeBackend
from reconciler.agent.runner import CommandFailed, Runner
from tests.agent_support import RecordingRunner

FIXTURES = Path(__file__).parent / "fixtures" / "rpm-ostree"
STAGED = "967b7b8d624e6d10ff51c2e81ef198fae966c567ac2e9b479771c693d0987949"
ROOT = Path(__file__).resolve().parent.parent


def agent_on(fixture: str, tmp_path: Path, **answers: object) -> tuple[Agent, RecordingRunner]:
    status = (FIXTURES / fixture).read_text()
    runner = RecordingRunner({("rpm-ostree", "status"): status, **answers})  # type: ignore[dict-item]
    (tmp_path / "boot_id").write_text("boot-1\n")
    (tmp_path / "motd").write_text("Boot Status is GREEN - Health Check SUCCESS\n")
    agent = Agent(
        RpmOstreeBackend(runner),
        ["systemctl", "reboot"],
        runner,
        boot_id_file=str(tmp_path / "boot_id"),
        greenboot_file=str(tmp_path / "motd"),
    )
    return agent, runner


def assignment(action: str, commit: str = STAGED) -> dict[str, object]:
    return {
        "action": action,
        "assignmentId": "a1",
        "target": {"commit": commit, "remote": "fedora", "ref": "fedora/x86_64/coreos/stable"},
    }


def changes(runner: RecordingRunner) -> list[list[str]]:
    """Commands that change the host (not status reads)."""
    reads = (["rpm-ostree", "status"], ["systemctl", "is-failed"])
    return [c for c in runner.commands if c[:2] not in reads]


def test_report_body(tmp_path: Path) -> None:
    agent, _ = agent_on("staged-update.json", tmp_path)
    body = agent.report()
    assert body["bootId"] == "boot-1"
    assert body["greenboot"] == "green"
    assert body["booted"]["version"] == "31.20200505.3.0"
    assert body["staged"]["baseChecksum"] == STAGED
    assert body["statusError"] is None
    json.dumps(body)  # it is what goes on the wire


def test_already_staged_target_is_not_deployed_again(tmp_path: Path) -> None:
    agent, runner = agent_on("staged-update.json", tmp_path)
    assert agent.apply(assignment("stage")) == "target already staged"
    assert changes(runner) == []


def test_reboot_only_when_told_and_only_into_a_staged_target(tmp_path: Path) -> None:
    agent, runner = agent_on("staged-update.json", tmp_path)
    agent.apply(assignment("reboot"))
    assert changes(runner) == [["systemctl", "reboot"]]
    agent2, runner2 = agent_on("layered-packages.json", tmp_path)
    agent2.apply(assignment("reboot", "e" * 64))  # not staged: stage first, then reboot
    assert changes(runner2) == [
        ["rpm-ostree", "rebase", "fedora:fedora/x86_64/coreos/stable", "e" * 64],
        ["systemctl", "reboot"],
    ]


def test_failed_stage_is_reported_and_never_followed_by_a_reboot(tmp_path: Path) -> None:
    agent, runner = agent_on("staged-update.json", tmp_path)
    runner.answers[("rpm-ostree", "deploy")] = CommandFailed(
        "`rpm-ostree deploy` exited 1: error: No such metadata object"
    )
    outcome = agent.apply(assignment("reboot", "e" * 64))
    assert outcome.startswith("stage failed")
    assert ["systemctl", "reboot"] not in runner.commands
    last = agent.report()["lastApply"]
    assert (last["ok"], last["commit"]) == (False, "e" * 64)
    assert "No such metadata object" in last["error"]


def test_no_action_while_a_transaction_runs_or_status_is_unreadable(tmp_path: Path) -> None:
    agent, runner = agent_on("transaction-running.json", tmp_path)
    assert "transaction is running" in agent.apply(assignment("stage", "e" * 64))
    agent2, runner2 = agent_on("staged-update.json", tmp_path)
    runner2.answers[("rpm-ostree", "status")] = "garbage"
    assert "cannot read" in agent2.apply(assignment("reboot"))
    assert changes(runner) == changes(runner2) == []
    assert agent2.report()["statusError"].startswith("cannot understand")


def test_booted_target_needs_nothing_and_unstage_cleans_up(tmp_path: Path) -> None:
    agent, runner = agent_on("rollback-present.json", tmp_path)
    assert agent.apply(assignment("reboot")) == "already booted the target"
    agent2, runner2 = agent_on("staged-update.json", tmp_path)
    agent2.apply({"action": "unstage", "target": None})
    assert changes(runner2) == [["rpm-ostree", "cleanup", "--pending"]]
    assert changes(runner) == []


@pytest.mark.parametrize(
    ("motd", "expected"),
    [
        ("Boot Status is GREEN - Health Check SUCCESS\n", "green"),
        ("Boot Status is RED - Health Check FAILURE!\n", "red"),
        ("", "unknown"),
    ],
)
def test_greenboot_motd(tmp_path: Path, motd: str, expected: str) -> None:
    (tmp_path / "motd").write_text(motd)
    assert greenboot_status(str(tmp_path / "motd")) == expected


def test_greenboot_falls_back_to_the_unit_state(tmp_path: Path) -> None:
    failed = RecordingRunner({("systemctl", "is-failed"): "failed\n"})
    assert greenboot_status(str(tmp_path / "none"), failed) == "red"
    running = RecordingRunner({("systemctl", "is-failed"): CommandFailed("exited 1: active")})
    assert greenboot_status(str(tmp_path / "none"), running) == "unknown"


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base=5, cap=60, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0 <= d <= 60 for d in delays)
    assert len({round(d, 3) for d in delays}) == 10  # jittered, not lockstep
    backoff.reset()
    assert backoff.next_delay() <= 5


def test_importing_the_agent_loads_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # site hooks loaded at start-up are not the agent's
        "import reconciler.agent.__main__\n"
        "names = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print('\\n'.join(sorted(n for n in names if n not in sys.stdlib_module_names)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert [name for name in out if name not in ("reconciler", "__main__")] == []


@pytest.mark.parametrize(
    "answer",
    [
        {"action": "stage", "target": "abc"},
        {"action": "stage", "target": {"commit": "--reboot"}},
        {"action": "reboot", "target": {"commit": STAGED, "remote": 5}},
        {"action": "stage", "target": {"commit": "e" * 64, "ref": "-x"}},
        {"action": ["reboot"], "reason": "x", "assignmentId": 7},
        # `re.match(...$)` let a trailing newline through to the command line and origin file
        {"action": "stage", "target": {"commit": "e" * 64 + "\n"}},
        {"action": "stage", "target": {"commit": "e" * 64, "remote": "callos\n"}},
        {"action": "stage", "target": {"commit": "e" * 64, "ref": "callos/9/x86_64/prod\n"}},
        # values the fleet repo used to accept and no host could apply
        {"action": "stage", "target": {"commit": "e" * 64, "remote": "-oops"}},
        {"action": "stage", "target": {"commit": "e" * 64, "ref": "--help"}},
        {"action": "stage", "target": {"commit": "e" * 64, "ref": "a/../../b"}},
        {"action": "reboot", "target": {"commit": STAGED, "remote": "callos/x"}},
    ],
)
def test_odd_answers_change_nothing_and_never_crash(
    tmp_path: Path, answer: dict[str, object]
) -> None:
    agent, runner = agent_on("staged-update.json", tmp_path)
    outcome = agent.apply(answer)
    assert outcome.startswith(("not applying", "nothing to do"))
    assert changes(runner) == []


def test_backoff_survives_a_very_long_outage() -> None:
    backoff = Backoff(base=5, cap=300, rng=random.Random(2))
    assert all(0 <= backoff.next_delay() <= 300 for _ in range(5000))


def test_command_output_that_is_not_utf8_does_not_crash() -> None:
    assert "\ufffd" in Runner().run(["printf", "\\377ok"])
