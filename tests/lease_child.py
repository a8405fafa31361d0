"""A replica in a child process, for the fencing tests of tests/test_leases.py: the test
freezes it (SIGSTOP), takes its lease over, and resumes or kills it.

    python -m tests.lease_child URL GROUP HOLDER TTL_SECONDS MODE SIGNAL_DIR [IDLE_SECONDS]

IDLE_SECONDS: how long its fenced transaction may sit idle (default: half the ttl).

It acquires GROUP's lease and writes ``acquired`` (the token) into SIGNAL_DIR, then by MODE:

* ``write-later``: waits for a ``go`` file, then writes one decision under its (possibly old)
  lease; writes ``result``: ``written`` or ``lost: <message>``.
* ``hold-fence``: opens the writing transaction and runs the fence (the lease row is locked),
  writes ``fenced``, waits for ``go``, then inserts its decision and commits; writes ``result``.

Decisions go to ``decisions_test`` (the test creates it) through :func:`write_decision`, the
minimal stand-in for the store's fenced save: fence first, then the insert, one transaction.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from reconciler.state.leases import Fence, Lease, LeaseLost, PostgresLeases

DECISIONS_TABLE = """
CREATE TABLE decisions_test (
    group_name  TEXT NOT NULL,
    holder      TEXT NOT NULL,
    token       BIGINT NOT NULL
)
"""

_INSERT = "INSERT INTO decisions_test (group_name, holder, token) VALUES (%s, %s, %s)"


def insert_decision(connection: psycopg.Connection, lease: Lease) -> None:
    connection.execute(_INSERT, (lease.group, lease.holder, lease.token))


def write_decision(url: str, lease: Lease, fence: Fence) -> None:
    """One decision under ``lease``, in one transaction that runs ``fence`` first."""
    with psycopg.connect(url) as connection, connection.transaction():
        fence(connection)
        insert_decision(connection, lease)


def signal(directory: Path, name: str, text: str) -> None:
    """Write a signal file atomically, so the test never reads half of one."""
    partial = directory / f".{name}.tmp"
    partial.write_text(text)
    os.replace(partial, directory / name)


def wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"no {path.name} signal within {timeout}s")
        time.sleep(0.02)


def main(
    url: str, group: str, holder: str, ttl: float, mode: str, directory: Path, idle: float
) -> None:
    limit = timedelta(seconds=idle) if idle else None
    with PostgresLeases(url, timedelta(seconds=ttl), fence_idle_limit=limit) as leases:
        lease = leases.acquire(group, holder)
        if lease is None:
            sys.exit(f"{holder} could not acquire {group}")
        signal(directory, "acquired", str(lease.token))
        if mode == "write-later":
            wait_for(directory / "go")
            try:
                write_decision(url, lease, leases.fence(lease))
            except LeaseLost as exc:
                signal(directory, "result", f"lost: {exc}")
            else:
                signal(directory, "result", "written")
        elif mode == "hold-fence":
            with psycopg.connect(url) as connection, connection.transaction():
                leases.fence(lease)(connection)
                signal(directory, "fenced", str(lease.token))
                wait_for(directory / "go")
                insert_decision(connection, lease)
            signal(directory, "result", "written")
        else:
            sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    url, group, holder, ttl, mode, directory, *idle = sys.argv[1:]
    main(url, group, holder, float(ttl), mode, Path(directory), float(idle[0]) if idle else 0)
