"""Test doubles for the agent's command runner (a fake only for what cannot run here), and
the agent as the fleet's hosts get it: the zipapp of `make agent-pyz`."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.agent.runner import CommandFailed, Runner

ROOT = Path(__file__).resolve().parent.parent
#: The zipapp's entry point, as the Makefile's `agent-pyz` recipe writes it.
PYZ_MAIN = "import sys\nfrom reconciler.agent.__main__ import main\nsys.exit(main())\n"
#: The interpreter line `make agent-pyz` gives the zipapp.
PYZ_INTERPRETER = "/usr/bin/env python3"


class RecordingRunner(Runner):
    """Records commands; answers from ``answers`` (argv prefix -> output or exception)."""

    def __init__(
        self, answers: dict[tuple[str, ...], str | Exception | Callable[[], str]] | None = None
    ) -> None:
        super().__init__()
        self.commands: list[list[str]] = []
        self.answers = answers or {}

    def run(self, argv: Sequence[str], timeout: float | None = None) -> str:
        self.commands.append(list(argv))
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                if isinstance(answer, Exception):
                    raise answer
                return answer() if callable(answer) else answer
        return ""


def build_agent_pyz(directory: Path) -> Path:
    """`make agent-pyz`'s steps, into ``directory`` instead of the shared build/ (tests and
    other builds may run at once); tests/test_agent_pythons.py checks the recipe matches."""
    source = directory / "agent-src"
    (source / "reconciler" / "agent").mkdir(parents=True)
    shutil.copy(ROOT / "reconciler" / "__init__.py", source / "reconciler")
    for module in (ROOT / "reconciler" / "agent").glob("*.py"):
        shutil.copy(module, source / "reconciler" / "agent")
    (source / "__main__.py").write_text(PYZ_MAIN)
    pyz = directory / "reconciler-agent.pyz"
    subprocess.run(
        [
            *(sys.executable, "-m", "zipapp", str(source), "--output", str(pyz)),
            *("--python", PYZ_INTERPRETER, "--compress"),
        ],
        check=True,
    )
    shutil.rmtree(source)
    return pyz


def write_one_host_fleet(root: Path, target: str, token: str, remote: str, ref: str) -> None:
    """A fleet repo with one stream at ``target`` and one group of one host, `call-01`."""
    header = "apiVersion: ostree-fleet/v1alpha1\n"
    (root / "streams").mkdir(parents=True)
    (root / "groups").mkdir()
    (root / "hosts").mkdir()
    (root / "fleet.yaml").write_text(header + "kind: Fleet\nname: e2e\n")
    (root / "streams" / "production.yaml").write_text(
        header + f"kind: Stream\nname: production\nremote: {remote}\nref: {ref}\n"
        f"commit: {target}\nversion: '2.0'\n"
    )
    (root / "groups" / "call.yaml").write_text(
        header + "kind: Group\nname: call\nstream: production\nhosts: [call-01]\n"
        "rollout: {waves: ['100%']}\n"
    )
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    (root / "hosts" / "site.yaml").write_text(
        header + f"kind: HostInventory\nhosts:\n  - name: call-01\n    tokenSha256: {token_hash}\n"
    )


def python_version(python: str) -> tuple[int, int, int] | None:
    """The version of the interpreter at ``python``, None when it does not run."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d %d %d' % sys.version_info[:3])"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor, micro = (int(part) for part in done.stdout.split())
    return major, minor, micro


def agent_pythons() -> dict[str, str]:
    """Every Python 3.6+ on this machine, one per version ("3.6.15" -> its path): pyenv's,
    `python3.X` on PATH, and the one running the tests."""
    candidates = sorted(str(p) for p in PYENV.glob("3.*/bin/python"))
    candidates += [found for n in range(6, 20) if (found := shutil.which(f"python3.{n}"))]
    candidates.append(sys.executable)
    found: dict[str, str] = {}
    for python in candidates:
        version = python_version(python)
        if version is not None and version >= (3, 6):
            found.setdefault(".".join(map(str, version)), python)
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


def oldest_python() -> str:
    """The oldest Python the agent supports that this machine has (3.6 where pyenv has it)."""
    return next(iter(agent_pythons().values()), sys.executable)


PYENV = Path("/root/.pyenv/versions")

__all__ = ["CommandFailed", "RecordingRunner", "build_agent_pyz", "write_one_host_fleet"]
