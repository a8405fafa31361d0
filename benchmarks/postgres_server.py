"""A throwaway PostgreSQL cluster for benchmarks, with production durability.

Adapted from tests/postgres_harness.py (benchmarks do not import tests/). PostgreSQL refuses
to run as root, so as root the cluster is created and run as the ``postgres`` user, in a
directory under /tmp that user owns. It listens on 127.0.0.1 on a free port with ``trust``
authentication (a benchmark fixture, never a setup to copy). Unlike the tests' cluster it
keeps PostgreSQL's durable defaults: fsync on, synchronous_commit on, full_page_writes on,
shared_buffers 128MB; only initdb skips its own final sync (the cluster is thrown away).

:meth:`PostgresServer.snapshot` reads PostgreSQL's own statistics, for a before/after delta:
rows written per table, the WAL position, WAL syncs, the database's size; and the CPU
seconds of the server's processes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin(tool: str) -> str:
    for directory in BIN_DIRS:
        if (directory / tool).is_file():
            return str(directory / tool)
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {tool} is not installed (apt-get install postgresql)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Snapshot:
    """PostgreSQL's cumulative statistics at one instant."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> ins + upd + hot_upd
    wal_lsn: int = 0  # bytes
    wal_syncs: int = 0
    wal_writes: int = 0
    database_bytes: int = 0
    cpu_seconds: float = 0.0


class PostgresServer:
    """A cluster in a new directory under /tmp, started on 127.0.0.1."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="reconciler-bench-postgres-", dir="/tmp"))
        self.data = self.directory / "data"
        self.sockets = self.directory / "sockets"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str | Path) -> str:
        args = [str(part) for part in command]
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout

    def start(self) -> None:
        self.sockets.mkdir()
        if self._as_postgres:
            owner = pwd.getpwnam("postgres")
            for path in (self.directory, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            postgres_bin("initdb"),
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",  # initdb's own files only; the server below syncs as in production
        )
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c max_connections=300"
        )
        self._run(
            postgres_bin("pg_ctl"),
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
        try:
            self._run(postgres_bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def settings(self) -> dict[str, str]:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        names += ("wal_sync_method", "shared_buffers", "commit_delay")
        with psycopg.connect(self.url(), autocommit=True) as connection:
            return {name: str(connection.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]

    def snapshot(self, url: str, settle: float = 15.0) -> Snapshot:
        """Statistics of the database at ``url``, once its table counters have settled (for
        up to ``settle`` seconds): backends publish them at most once a second once idle,
        and later still when another holds the lock; the daemon's writer batches too."""
        deadline = time.monotonic() + settle
        last = self._read(url)
        while time.monotonic() < deadline:
            time.sleep(1.1)
            now = self._read(url)
            if _report_rows(now) == _report_rows(last):
                return now
            last = now
        return last

    def _read(self, url: str) -> Snapshot:
        with psycopg.connect(url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_hot_upd FROM pg_stat_user_tables"
            ).fetchall()
            lsn, syncs, writes, size = connection.execute(
                "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, wal_sync, wal_write, "
                "pg_database_size(current_database()) FROM pg_stat_wal"
            ).fetchone()  # type: ignore[misc]
        return Snapshot(
            rows={str(name): int(count) for name, count in rows},
            wal_lsn=int(lsn),
            wal_syncs=int(syncs),
            wal_writes=int(writes),
            database_bytes=int(size),
            cpu_seconds=self.cpu_seconds(),
        )

    def cpu_seconds(self) -> float:
        """CPU of the postmaster, its live children, and the children it has reaped."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid == postmaster:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick


def _report_rows(snapshot: Snapshot) -> int:
    """Rows written to every table but the leases' (renewed every few seconds, load or not)."""
    leases = ("group_leases", "replicas")
    return sum(n for table, n in snapshot.rows.items() if table not in leases)
