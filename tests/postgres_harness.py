"""A real, throwaway PostgreSQL server for the tests: one cluster per test session.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and
started as the ``postgres`` user (Debian's package creates it), in a temporary directory that
user owns; otherwise as whoever runs the tests. It listens on 127.0.0.1 on a free port (and on
a socket in its own directory), with ``trust`` authentication: a test fixture, never a setup
to copy. Each test gets a database of its own (:meth:`PostgresServer.new_database`), so
tests never see each other's rows; the cluster is stopped at the end of the session.

Without PostgreSQL the tests that need it skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.tools import free_port, missing_tool

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin(tool: str) -> Path | None:
    """The newest installed PostgreSQL's ``tool`` (initdb, pg_ctl, postgres), or None."""
    for directory in BIN_DIRS:
        if (directory / tool).is_file():
            return directory / tool
    found = shutil.which(tool)
    return Path(found) if found else None


def require_postgres() -> None:
    missing = [tool for tool in ("initdb", "pg_ctl", "postgres") if postgres_bin(tool) is None]
    if missing:
        missing_tool(
            f"PostgreSQL is not installed ({', '.join(missing)} missing; "
            "apt-get install postgresql)"
        )


class PostgresServer:
    """A cluster in ``directory``, started on 127.0.0.1:``port``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str | Path) -> None:
        args = [str(part) for part in command]
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.directory, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if not self.data.exists():
            self._run(
                postgres_bin("initdb") or "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=32MB"
            # Speed over durability for tests: the server is never killed, only its clients
            # (benchmarks/postgres_server.py runs with production durability).
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            postgres_bin("pg_ctl") or "pg_ctl",
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            self.directory / "server.log",
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(postgres_bin("pg_ctl") or "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_postgres(directory: Path | None = None) -> Iterator[PostgresServer]:
    """A cluster in ``directory``, or in a new directory under the system's temporary one:
    pytest's own are private to root, and the ``postgres`` user could not reach them."""
    require_postgres()
    own = directory is None
    where = Path(tempfile.mkdtemp(prefix="reconciler-postgres-")) if own else directory
    assert where is not None
    server = PostgresServer(where)
    try:
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        if own:
            shutil.rmtree(where, ignore_errors=True)


def wait_until(check: object, timeout: float = 10.0) -> None:
    """Poll ``check()`` until true (for asynchronous effects such as NOTIFY)."""
    deadline = time.monotonic() + timeout
    assert callable(check)
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
