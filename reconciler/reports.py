"""Where host reports are kept: the latest per host and a bounded history, in SQLite.

A separate connection from the rollout store with ``synchronous=NORMAL``: a report lost to a
power cut is simply sent again by its agent a minute later, and not waiting for an fsync per
report is what lets one server take thousands of reports a second. The interface is small
(save, latest, history) so another backend (PostgreSQL) can stand behind it later.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconciler.errors import StoreUnavailable
from reconciler.store import migrate

#: Reports kept per host beyond the latest, for "what did this host say before it failed".
HISTORY_PER_HOST = 100


class ReportStore(Protocol):
    def save(self, host: str, received_at: datetime, body: str) -> None: ...

    def latest(self) -> dict[str, tuple[datetime, str]]: ...

    def history(self, host: str, limit: int = 20) -> list[tuple[datetime, str]]: ...


class SqliteReportStore:
    """Reports in the same SQLite file as the rollout state."""

    def __init__(self, path: Path | str, history_per_host: int = HISTORY_PER_HOST) -> None:
        self.history_per_host = history_per_host
        try:
            self._db = sqlite3.connect(
                str(path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open report database {path}: {exc}") from exc
        self._saved = 0

    def close(self) -> None:
        self._db.close()

    def save(self, host: str, received_at: datetime, body: str) -> None:
        """Store a report as the host's latest and append it to its history, atomically."""
        at = received_at.isoformat()
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT INTO host_reports (host, received_at, body) VALUES (?, ?, ?) "
                    "ON CONFLICT (host) DO UPDATE SET received_at = excluded.received_at, "
                    "body = excluded.body",
                    (host, at, body),
                )
                self._db.execute(
                    "INSERT INTO report_history (host, received_at, body) VALUES (?, ?, ?)",
                    (host, at, body),
                )
            self._saved += 1
            if self._saved % 1000 == 0:
                self.trim()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot store report of {host}: {exc}") from exc

    def trim(self) -> None:
        """Keep only the newest ``history_per_host`` reports of each host."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM report_history WHERE id IN (SELECT id FROM (SELECT id, "
                "ROW_NUMBER() OVER (PARTITION BY host ORDER BY id DESC) AS n "
                "FROM report_history) WHERE n > ?)",
                (self.history_per_host,),
            )

    def latest(self) -> dict[str, tuple[datetime, str]]:
        rows = self._db.execute("SELECT host, received_at, body FROM host_reports")
        return {host: (datetime.fromisoformat(at), body) for host, at, body in rows}

    def history(self, host: str, limit: int = 20) -> list[tuple[datetime, str]]:
        rows = self._db.execute(
            "SELECT received_at, body FROM report_history WHERE host = ? ORDER BY id DESC LIMIT ?",
            (host, limit),
        )
        return [(datetime.fromisoformat(at), body) for at, body in rows]
