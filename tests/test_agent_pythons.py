"""The agent on every Python the machine has, 3.6 (CentOS 8's platform-python) to 3.13.

For each interpreter found — pyenv's (/root/.pyenv/versions/3.*), `python3.X` on PATH and
the one running the tests, one per version — two tests: a self-check run by that Python
(every agent module imports and loads nothing outside the standard library; the pure parts
answer as they do here: rpm-ostree fixtures, answer limits, the inventory entry, the drain
hook's timeout), and the zipapp of `make agent-pyz` doing one real `--once` cycle against a
real reconciler, with `rpm-ostree` faked by a script that prints a captured status.

Under CI, when /root/.pyenv exists, 3.6 and the running Python must be among those found
(test_the_promised_pythons_are_found); elsewhere an interpreter that is missing is simply
not a test case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.agent.enroll import inventory_entry
from reconciler.agent.rpmostree import parse_status
from reconciler.clock import SystemClock
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from tests.agent_support import (
    PYENV,
    PYZ_INTERPRETER,
    PYZ_MAIN,
    ROOT,
    agent_pythons,
    build_agent_pyz,
    write_one_host_fleet,
)
from tests.api_support import running_api

PYTHONS = agent_pythons()
FIXTURES = ROOT / "tests" / "fixtures" / "rpm-ostree"
MODULES = sorted(
    "reconciler.agent." + p.stem if p.stem != "__init__" else "reconciler.agent"
    for p in (ROOT / "reconciler" / "agent").glob("*.py")
)
TOKEN = "pythons-agent-token"
TARGET = "e" * 64

#: Run by each interpreter with the repository as its working directory; prints JSON.
SELF_CHECK = r"""
import json, os, sys, sysconfig, importlib
modules, fixtures = sys.argv[1].split(","), sys.argv[2]
before = set(sys.modules)
for name in modules:
    importlib.import_module(name)
stdlib = [os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")]
own = os.path.realpath("reconciler")
outside = []
for name in sorted(set(sys.modules) - before):
    path = getattr(sys.modules[name], "__file__", None)
    if path is None:
        continue  # built into the interpreter
    path = os.path.realpath(path)
    in_stdlib = any(path.startswith(d + os.sep) for d in stdlib) and "-packages" not in path
    if not (in_stdlib or path.startswith(own + os.sep)):
        outside.append(name)

from reconciler.agent.rpmostree import parse_status
from reconciler.agent.client import AnswerRefused, parse_answer
from reconciler.agent.enroll import inventory_entry
from reconciler.agent.drain import PreRebootHook
from reconciler.agent.rules import is_commit, is_ref

def shown(d):
    return d.to_json() if d is not None else None

statuses = {}
for name in sorted(os.listdir(fixtures)):
    if name.endswith(".json"):
        with open(os.path.join(fixtures, name)) as handle:
            s = parse_status(handle.read())
        statuses[name] = [shown(s.booted), shown(s.staged), shown(s.rollback), s.transaction,
                          s.error]
try:
    parse_answer(b"[" * 100000 + b"]" * 100000)
    refused = None
except AnswerRefused as exc:
    refused = str(exc)
hook = PreRebootHook(["sh", "-c", "echo 2 active calls; sleep 30"], 1.0).run()
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "outside": outside,
    "statuses": statuses,
    "refused": refused,
    "rules": [is_commit("e" * 64), is_commit("e" * 64 + "\n"), is_ref("a/../b")],
    "entry": inventory_entry("dub-call-01", {"rack": "01"}, "t0ken"),
    "hook": [hook.exit_code, hook.timed_out, hook.message],
}))
"""


def shown(deployment):  # type: ignore[no-untyped-def]
    return deployment.to_json() if deployment is not None else None


def statuses_here() -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for fixture in sorted(FIXTURES.glob("*.json")):
        s = parse_status(fixture.read_text())
        found[fixture.name] = [
            shown(s.booted),
            shown(s.staged),
            shown(s.rollback),
            s.transaction,
            s.error,
        ]
    return found


@pytest.mark.parametrize("version", list(PYTHONS))
def test_the_agent_checks_itself_on(version: str) -> None:
    done = subprocess.run(
        [PYTHONS[version], "-c", SELF_CHECK, ",".join(MODULES), str(FIXTURES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert ".".join(map(str, found["version"])) == version
    assert found["outside"] == []  # the standard library and the agent, nothing else
    assert found["statuses"] == statuses_here()  # what this Python's agent reads, too
    staged = found["statuses"]["staged-update.json"]
    assert staged[0]["version"] == "31.20200505.3.0"
    assert staged[1]["baseChecksum"].startswith("967b7b8d624e")
    assert found["statuses"]["transaction-running.json"][3] is True
    assert "nested deeper than 32" in found["refused"]
    assert found["rules"] == [True, False, False]
    assert found["entry"] == inventory_entry("dub-call-01", {"rack": "01"}, "t0ken")
    assert found["hook"] == [None, True, "timed out after 1s; last output: 2 active calls"]


@pytest.fixture(scope="module")
def agent_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_agent_pyz(tmp_path_factory.mktemp("pyz"))


def fake_rpm_ostree(directory: Path, fixture: str) -> Path:
    """An `rpm-ostree` that prints a captured status and records every other command."""
    directory.mkdir()
    script = directory / "rpm-ostree"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = status ]; then cat {FIXTURES / fixture}; exit 0; fi\n'
        f'echo "$@" >> {directory / "commands"}\n'
    )
    script.chmod(0o755)
    return directory / "commands"


@pytest.mark.parametrize("version", list(PYTHONS))
def test_the_zipapp_runs_a_cycle_against_a_real_reconciler_on(
    version: str, agent_pyz: Path, tmp_path: Path
) -> None:
    status = parse_status((FIXTURES / "staged-update.json").read_text())
    assert status.booted is not None
    assert status.booted.origin is not None
    remote, ref = status.booted.origin.split(":", 1)
    write_one_host_fleet(tmp_path / "fleet", TARGET, TOKEN, remote, ref)
    fleet = load_fleet_or_raise(DirectorySource(tmp_path / "fleet"))
    commands = fake_rpm_ostree(tmp_path / "bin", "staged-update.json")
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "boot_id").write_text("boot-1\n")
    (tmp_path / "motd").write_text("Boot Status is GREEN - Health Check SUCCESS\n")
    with running_api(fleet, tmp_path / "state.sqlite", SystemClock()) as api:
        done = subprocess.run(
            [
                *(PYTHONS[version], str(agent_pyz), "--once", "--config", "/nonexistent"),
                *("--server", api.url, "--token-file", str(tmp_path / "token")),
                *("--boot-id-file", str(tmp_path / "boot_id")),
                *("--greenboot-status-file", str(tmp_path / "motd")),
                *("--state-dir", str(tmp_path / "state")),
            ],
            env={**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        observed = api.service.observed["call-01"]
        assert observed.booted_commit == status.booted.base_checksum
        assert observed.greenboot.value == "green"
    assert "assignment stage: stage" in done.stderr
    assert commands.read_text().split() == ["deploy", TARGET]  # same remote:ref, no rebase


def test_the_promised_pythons_are_found() -> None:
    """Under CI on a machine with pyenv, the floor (3.6) and this Python must be tested."""
    if not (os.environ.get("CI") and PYENV.exists()):
        pytest.skip("only enforced under CI where /root/.pyenv exists")
    found = {tuple(int(p) for p in version.split(".")[:2]) for version in PYTHONS}
    assert (3, 6) in found
    assert sys.version_info[:2] in found


@pytest.mark.needs_tool("make")
def test_the_test_zipapp_is_built_as_make_builds_it(tmp_path: Path) -> None:
    """build_agent_pyz mirrors `make agent-pyz`; a changed recipe must change it too."""
    target = tmp_path / "reconciler-agent.pyz"
    recipe = subprocess.run(
        ["make", "--dry-run", "--always-make", f"AGENT_PYZ={target}", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cp reconciler/__init__.py build/agent-src/reconciler/" in recipe
    assert "cp reconciler/agent/*.py build/agent-src/reconciler/agent/" in recipe
    assert "printf '" + PYZ_MAIN.replace("\n", "\\n") + "' > build/agent-src/__main__.py" in recipe
    assert f"--python '{PYZ_INTERPRETER}' --compress" in recipe
    assert shutil.which("make") is not None
