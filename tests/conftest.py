"""Shared fixtures: the example fleet, a fleet builder for broken variants, and tool checks."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.postgres_harness import PostgresServer, running_postgres
from tests.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_FLEET = ROOT / "fleet-repo-schema" / "examples" / "callos"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.needs_tool("ostree")`: skip when missing, but fail when CI is set."""
    for marker in item.iter_markers("needs_tool"):
        require_tool(marker.args[0])


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """A writable copy of the example fleet."""
    target = tmp_path / "fleet"
    shutil.copytree(EXAMPLE_FLEET, target)
    return target


def git(repo: Path, *args: str) -> str:
    """Run real git with a fixed identity; return stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test Ops",
        "GIT_AUTHOR_EMAIL": "ops@example.net",
        "GIT_COMMITTER_NAME": "Test Ops",
        "GIT_COMMITTER_EMAIL": "ops@example.net",
    }
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    )
    return result.stdout.strip()


@pytest.fixture
def commit_fleet() -> Callable[[Path, str], str]:
    """Commit everything in a fleet directory (initialising the repo once); return the id."""

    def commit(directory: Path, message: str = "change") -> str:
        if not (directory / ".git").exists():
            git(directory, "init", "-q", "-b", "main")
        git(directory, "add", "-A")
        git(directory, "commit", "-q", "--allow-empty", "-m", message)
        return git(directory, "rev-parse", "HEAD")

    return commit


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """`reconciler serve` configures the root logger for the process; a test that runs it
    in-process must not leave a handler on a stream pytest closes afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (tests/postgres_harness.py)."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database of that cluster, for one test."""
    return postgres_server.new_database()
