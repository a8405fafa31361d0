"""The drain hook end to end: a real `reconciler-agent --once` per cycle (each one a restart,
as from a timer), a real HTTP server answering `reboot`, real shell scripts as the
pre-reboot command, and `rpm-ostree` faked by a script printing a captured status. The
reboot itself is a script that records it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.agent.__main__ import main
from reconciler.agent.drain import PreRebootHook
from tests.agent_http import Reply, Server, serving
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "rpm-ostree"
STAGED = "967b7b8d624e6d10ff51c2e81ef198fae966c567ac2e9b479771c693d0987949"
TARGET = {"commit": STAGED, "remote": "fedora", "ref": "fedora/x86_64/coreos/stable"}


def answer(action: str, commit: str = STAGED) -> Reply:
    body = {"action": action, "assignmentId": f"{action}-{commit[:8]}", "reportAfterSeconds": 5}
    body["target"] = {**TARGET, "commit": commit}
    return Reply(chunks=(json.dumps(body).encode(),))


class Host:
    """A host whose staged deployment is STAGED; its reboots are recorded, not made."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = tmp_path
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        self.commands = tmp_path / "rpm-ostree-commands"
        executable(
            bin_dir / "rpm-ostree",
            f'if [ "$1" = status ]; then cat {FIXTURES / "staged-update.json"}; exit 0; fi\n'
            f'echo "$@" >> {self.commands}\n',
        )
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        self.reboots = tmp_path / "reboots"
        executable(tmp_path / "reboot.sh", f"echo rebooted >> {self.reboots}\n")
        (tmp_path / "token").write_text("t\n")
        (tmp_path / "boot_id").write_text("boot-1\n")
        (tmp_path / "motd").write_text("Boot Status is GREEN - Health Check SUCCESS\n")
        self.state = tmp_path / "state"

    def once(self, server: Server, hook: Path, timeout: str = "30") -> int:
        return main(
            [
                *("--once", "--config", "/nonexistent", "--server", server.url),
                *("--token-file", str(self.root / "token")),
                *("--boot-id-file", str(self.root / "boot_id")),
                *("--greenboot-status-file", str(self.root / "motd")),
                *("--reboot-command", str(self.root / "reboot.sh")),
                *("--state-dir", str(self.state)),
                *("--pre-reboot-command", f"{hook} --drain"),
                *("--pre-reboot-timeout", timeout),
            ]
        )

    def rebooted(self) -> int:
        return len(self.reboots.read_text().splitlines()) if self.reboots.exists() else 0


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return Host(tmp_path, monkeypatch)


def serving_answers(answers: list[Reply]) -> Callable[[], Reply]:
    """Answer from the front of ``answers``; the test swaps what is there between runs."""
    return lambda: answers[0]


def test_a_failing_command_defers_the_reboot_and_every_report_says_so(
    host: Host, tmp_path: Path
) -> None:
    busy = executable(
        tmp_path / "calls.sh", "echo 'checking calls'\necho '3 active calls'\nexit 1\n"
    )
    with serving(lambda: answer("reboot")) as server:
        assert host.once(server, busy) == 0
        first = server.bodies[-1]["rebootDeferred"]
        assert host.once(server, busy) == 0  # a new agent: the deferral came from disk
    assert host.rebooted() == 0
    assert first["message"] == "3 active calls"  # the last line of its output
    assert (first["exitCode"], first["timedOut"]) == (1, False)
    assert "rebootDeferred" not in server.bodies[0]  # nothing was held back before the first
    # The second run's report, sent before it ran the command again: `since` is kept, and
    # the unchanged deferral needs no second report.
    assert [body["rebootDeferred"] for body in server.bodies[2:]] == [first]
    kept = host.state / "reboot-deferral.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert json.loads(kept.read_text())["commit"] == STAGED


def test_the_reboot_follows_once_the_command_succeeds(host: Host, tmp_path: Path) -> None:
    drained = tmp_path / "drained"
    drain = executable(
        tmp_path / "drain.sh",
        f'if [ -e {drained} ]; then echo "0 active calls"; exit 0; fi\n'
        f'touch {drained}; echo "1 active call"; exit 7\n',
    )
    with serving(lambda: answer("reboot")) as server:
        assert host.once(server, drain) == 0
        assert host.rebooted() == 0
        assert server.bodies[-1]["rebootDeferred"]["exitCode"] == 7
        assert host.once(server, drain) == 0
    assert host.rebooted() == 1
    assert "rebootDeferred" not in server.bodies[-1]
    assert not (host.state / "reboot-deferral.json").exists()


def test_a_command_past_its_timeout_is_killed_with_its_children(host: Host, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    slow = executable(
        tmp_path / "slow.sh",
        f"sleep 60 &\necho $! > {pid_file}\necho 'waiting for 2 calls'\nwait\n",
    )
    started = time.monotonic()
    result = PreRebootHook([str(slow)], timeout=1).run()
    assert time.monotonic() - started < 2  # killed within its timeout and a second
    assert (result.exit_code, result.timed_out) == (None, True)
    assert result.message == "timed out after 1s; last output: waiting for 2 calls"
    assert gone(int(pid_file.read_text()))  # the whole process group was killed
    with serving(lambda: answer("reboot")) as server:
        assert host.once(server, slow, timeout="1") == 0
    assert host.rebooted() == 0
    deferred = server.bodies[-1]["rebootDeferred"]
    assert (deferred["exitCode"], deferred["timedOut"]) == (None, True)
    assert deferred["message"].startswith("timed out after 1s")


def gone(pid: int) -> bool:
    """Whether ``pid`` ended (or is a zombie) within a second: a SIGKILL takes effect
    asynchronously, and a sleep that was not killed would still be there."""
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    "next_answer", [answer("none"), answer("stage")], ids=["nothing-to-do", "stage-only"]
)
def test_the_deferral_ends_when_the_server_stops_asking_for_that_reboot(
    host: Host, tmp_path: Path, next_answer: Reply
) -> None:
    busy = executable(tmp_path / "calls.sh", "echo '1 active call'\nexit 1\n")
    answers = [answer("reboot")]
    with serving(serving_answers(answers)) as server:
        host.once(server, busy)
        assert server.bodies[-1]["rebootDeferred"]["message"] == "1 active call"
        answers[0] = next_answer
        host.once(server, busy)
    assert host.rebooted() == 0
    assert "rebootDeferred" in server.bodies[-2]  # still held when it reported
    assert "rebootDeferred" not in server.bodies[-1]  # dropped once told otherwise
    assert not (host.state / "reboot-deferral.json").exists()


def test_a_reboot_into_another_commit_is_a_new_deferral(host: Host, tmp_path: Path) -> None:
    busy = executable(tmp_path / "calls.sh", "echo '1 active call'\nexit 1\n")
    answers = [answer("reboot")]
    with serving(serving_answers(answers)) as server:
        host.once(server, busy)
        first = server.bodies[-1]["rebootDeferred"]
        time.sleep(1.1)  # `since` has a resolution of a second
        answers[0] = answer("reboot", "e" * 64)  # not staged: staged first, then drained
        host.once(server, busy)
    assert host.commands.read_text().split() == ["deploy", "e" * 64]
    assert host.rebooted() == 0
    second = server.bodies[-1]["rebootDeferred"]
    assert second["since"] > first["since"]


def test_a_timeout_that_is_not_a_number_is_a_usage_error(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(lambda: answer("reboot")) as server:
        assert host.once(server, tmp_path / "none", timeout="soon") == 2
    assert "--pre-reboot-timeout must be a number" in capsys.readouterr().err
    assert server.requests == []


def test_a_command_that_cannot_start_defers_the_reboot(host: Host, tmp_path: Path) -> None:
    with serving(lambda: answer("reboot")) as server:
        assert host.once(server, tmp_path / "missing.sh") == 0
    assert host.rebooted() == 0
    deferred = server.bodies[-1]["rebootDeferred"]
    assert (deferred["exitCode"], deferred["timedOut"]) == (None, False)
    assert deferred["message"].startswith("cannot start")


def test_every_output_line_is_logged_and_the_command_has_no_input(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    script = executable(
        tmp_path / "calls.sh",
        "echo 'asked the proxy to stop new calls' >&2\n"
        'if read line; then echo "read: $line"; else echo "no input"; fi\nexit 1\n',
    )
    with (
        caplog.at_level(logging.INFO, logger="reconciler-agent"),
        serving(lambda: answer("reboot")) as server,
    ):
        host.once(server, script)
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.endswith(": asked the proxy to stop new calls") for m in logged)
    assert any(m.endswith(": no input") for m in logged)
    assert server.bodies[-1]["rebootDeferred"]["message"] == "no input"


def test_a_state_dir_that_cannot_be_written_keeps_the_deferral_in_memory(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("")
    host.state = tmp_path / "a-file" / "state"  # cannot be a directory
    busy = executable(tmp_path / "calls.sh", "echo '1 active call'\nexit 1\n")
    with (
        caplog.at_level(logging.WARNING, logger="reconciler-agent"),
        serving(lambda: answer("reboot")) as server,
    ):
        assert host.once(server, busy) == 0
    assert server.bodies[-1]["rebootDeferred"]["message"] == "1 active call"
    assert host.rebooted() == 0
    assert any("cannot keep the reboot deferral" in r.getMessage() for r in caplog.records)


def drain_calls_example() -> str:
    """The telephony drain script of docs/agent.md, as printed there."""
    docs = (ROOT / "docs" / "agent.md").read_text()
    after = docs.split("<!-- drain-calls example", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize(
    ("counts", "wait", "code", "message"),
    [
        (["0"], "0", 0, "no active calls"),
        (["2", "1", "0"], "30", 0, "no active calls"),
        (["3"], "0", 1, "3 active calls after 0s"),
        (["oops"], "30", 1, "cannot count active calls"),
    ],
)
def test_the_documented_drain_script_waits_for_zero_calls(
    tmp_path: Path, counts: list[str], wait: str, code: int, message: str
) -> None:
    """With a fake `asterisk` that answers as Asterisk's `core show channels count` does."""
    answers = tmp_path / "answers"
    answers.write_text("".join(f"{count}\n" for count in counts))
    executable(
        tmp_path / "asterisk",
        f"count=$(head -n 1 {answers})\n"
        f"[ $(wc -l < {answers}) -gt 1 ] && sed -i 1d {answers}\n"
        'printf "%s active channels\\n%s active calls\\n7 calls processed\\n" "$count" "$count"\n',
    )
    script = executable(tmp_path / "drain-calls", drain_calls_example().split("\n", 1)[1])
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env |= {"WAIT": wait, "POLL": "0"}
    done = subprocess.run(
        [str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert (done.returncode, done.stdout.strip().splitlines()[-1]) == (code, message)
