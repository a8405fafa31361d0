"""End to end with real OSTree: real repo over HTTP, real sysroot, real API, real agent.

The only fake is the reboot: a script that makes the sysroot's default deployment "booted"
and gives the host a new boot id, as a real reboot would.

The agent runs twice over: as the installed `reconciler-agent`, and as the fleet's hosts get
it, the zipapp of `make agent-pyz` on the oldest Python here (3.6, CentOS 8's
platform-python, where pyenv has it), with a drain hook that holds the first reboot back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.clock import SystemClock
from reconciler.demo.testbed import (
    OS_NAME,
    REF,
    SIMULATED_REBOOT,
    make_archive_repo,
    ostree,
    serve_directory,
    sysroot,
)
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from tests.agent_support import build_agent_pyz, oldest_python, write_one_host_fleet
from tests.api_support import running_api

TOKEN = "e2e-agent-token"
AGENT = Path(sys.executable).parent / "reconciler-agent"

#: Busy on its first run (the call is still up), drained on the next.
DRAIN = """\
#!/bin/sh
if [ -e "$0.ran" ]; then echo "no active calls"; exit 0; fi
touch "$0.ran"; echo "1 active call"; exit 1
"""


def write_fleet(root: Path, target: str) -> None:
    write_one_host_fleet(root, target, TOKEN, OS_NAME, REF)


def agent_program(packaging: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    """How to start the agent, and its drain hook's flags (the zipapp's only)."""
    if packaging == "entry-point":
        return [str(AGENT)], []
    drain = tmp_path / "drain.sh"
    drain.write_text(DRAIN)
    drain.chmod(0o755)
    program = [oldest_python(), str(build_agent_pyz(tmp_path))]
    return program, ["--pre-reboot-command", str(drain), "--pre-reboot-timeout", "30"]


@pytest.mark.needs_tool("ostree")
@pytest.mark.parametrize("packaging", ["entry-point", "zipapp"])
def test_agent_moves_a_real_sysroot_from_a_to_b(tmp_path: Path, packaging: str) -> None:
    program, hook = agent_program(packaging, tmp_path)
    a, b = make_archive_repo(tmp_path / "repo", ["1.0", "2.0"])
    write_fleet(tmp_path / "fleet", target=b)
    fleet = load_fleet_or_raise(DirectorySource(tmp_path / "fleet"))
    booted_file, boot_id_file = tmp_path / "booted", tmp_path / "boot_id"
    booted_file.write_text(a + "\n")
    boot_id_file.write_text("boot-1\n")
    (tmp_path / "motd").write_text("Boot Status is GREEN - Health Check SUCCESS\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "reboot.py").write_text(SIMULATED_REBOOT)

    with (
        serve_directory(tmp_path / "repo") as repo_url,
        sysroot(tmp_path / "sysroot", repo_url, booted=a) as root,
        running_api(fleet, tmp_path / "state.sqlite", SystemClock()) as api,
    ):
        reboot = f"{sys.executable} {tmp_path / 'reboot.py'} {root} {booted_file} {boot_id_file}"
        agent = [
            *program,
            "--once",
            "--config",
            "/nonexistent",
            "--server",
            api.url,
            "--token-file",
            str(tmp_path / "token"),
            "--backend",
            "ostree",
            "--sysroot",
            str(root),
            "--os",
            OS_NAME,
            "--booted-commit-file",
            str(booted_file),
            "--boot-id-file",
            str(boot_id_file),
            "--greenboot-status-file",
            str(tmp_path / "motd"),
            "--reboot-command",
            reboot,
            "--state-dir",
            str(tmp_path / "state"),
            *hook,
        ]

        def run_agent() -> str:
            done = subprocess.run(agent, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            return done.stderr

        first = api.service.assignment("call-01")
        assert first.action == "none"  # not reported yet: no report, nothing to do
        log = run_agent()  # reports A, is told to stage B, pulls and deploys it
        assert "assignment stage: stage" in log
        status = ostree("admin", "status", f"--sysroot={root}")
        assert status.index(b) < status.index(a)  # B is the default for the next boot
        assert api.service.observed["call-01"].staged_commit == b
        assert api.service.observed["call-01"].booted_commit == a

        if hook:  # the first reboot is held back while a call is up, and reported so
            log = run_agent()
            assert "reboot deferred" in log
            assert "1 active call" in log
            assert booted_file.read_text().strip() == a
            assert boot_id_file.read_text().strip() == "boot-1"
            deferral = (tmp_path / "state" / "reboot-deferral.json").read_text()
            assert '"exitCode": 1' in deferral
            # The server heard it in the same cycle: the host drains, in the budget.
            held_back = api.service.assignment("call-01")
            assert (held_back.state, held_back.reason.code) == ("draining", "draining")
            assert "1 active call" in held_back.reason.message
        log = run_agent()  # reports B staged, is told to reboot, "reboots"
        assert "assignment reboot: reboot" in log
        assert booted_file.read_text().strip() == b
        assert not (tmp_path / "state" / "reboot-deferral.json").exists()
        assert boot_id_file.read_text().strip() != "boot-1"

        run_agent()  # reports B booted with a new boot id and greenboot green
        observed = api.service.observed["call-01"]
        assert (observed.booted_commit, observed.greenboot.value) == (b, "green")
        final = api.service.assignment("call-01")
        assert (final.action, final.state, final.reason.code) == ("none", "in_sync", "in_sync")
        kinds = [e.kind for e in api.service.engine.store.events("call")]
        assert kinds[-3:] == ["host_succeeded", "wave_completed", "rollout_completed"]
