"""Where host reports are kept: the latest per host and a bounded history, in SQLite or
PostgreSQL (the same queries, :mod:`.database`).

Separate connections from the rollout store (for SQLite with ``synchronous=NORMAL``), and
reports are written in batches by a writer thread (group commit): a report lost to a crash
is simply sent again by its agent a minute later, while one transaction per report would cap
a server at a few hundred reports a second. The interface is small (save, flush, latest,
history).

Next to each host's latest report the store keeps the observation the service derived from
it (the same JSON as the rollout store's observation basis), written in the same batch: a
restart takes 100,000 observations back without validating 100,000 reports again. They were
validated when they arrived; a row without one (stored before the column existed) is parsed.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import TypeAdapter

from reconciler.errors import StoreUnavailable
from reconciler.rollout.observed import HostObservation
from reconciler.state.database import Database, PostgresDatabase, SqliteDatabase
from reconciler.state.store import opened

#: Reports kept per host beyond the latest, for "what did this host say before it failed".
HISTORY_PER_HOST = 100
#: A batch is written when it holds this many reports or its oldest is this old.
FLUSH_EVERY = 200
FLUSH_AFTER_SECONDS = 0.5
#: Each host's history is cut back once per this many of its reports.
TRIM_EVERY = 20


_OBSERVATION = TypeAdapter(HostObservation)

#: A queued report: host, when (ISO text), body, and the observation derived from it.
_Pending = tuple[str, str, str, HostObservation | None]


class ReportStore(Protocol):
    def save(
        self,
        host: str,
        received_at: datetime,
        body: str,
        observation: HostObservation | None = None,
    ) -> None: ...

    def flush(self) -> None: ...

    def latest(self) -> dict[str, tuple[datetime, str]]: ...

    def latest_observations(
        self,
    ) -> tuple[dict[str, HostObservation], dict[str, tuple[datetime, str]]]: ...

    def history(self, host: str, limit: int = 20) -> list[tuple[datetime, str]]: ...


class DatabaseReportStore:
    """Reports in the same database as the rollout state, written by a background thread.

    The API's event loop only queues a report; a writer thread commits batches, so neither a
    commit nor a WAL checkpoint ever stalls the answers to other agents.

    ``location``: a SQLite file (read and written on two connections of its own), a
    ``postgresql://`` URL (a pool of its own), or a database opened by the caller, who
    closes it.
    """

    def __init__(
        self, location: Path | str | Database, history_per_host: int = HISTORY_PER_HOST
    ) -> None:
        self.history_per_host = history_per_host
        self._owned: list[Database] = []
        self._reader: Database
        self._writer: Database
        if isinstance(location, SqliteDatabase | PostgresDatabase):
            self._reader = self._writer = location
        else:
            self._reader, _ = opened(location, "report database", "NORMAL")
            self._owned.append(self._reader)
            # A pool serves both threads; SQLite's writer gets a connection of its own.
            if isinstance(self._reader, PostgresDatabase):
                self._writer = self._reader
            else:
                try:
                    self._writer, _ = opened(location, "report database", "NORMAL")
                except StoreUnavailable:
                    self._reader.close()
                    raise
                self._owned.append(self._writer)
        self._pending: list[_Pending] = []
        self._writes_by_host: dict[str, int] = {}
        self._error: StoreUnavailable | None = None
        self._written = 0  # batches written, so flush() can wait for the one in flight
        self._queued = 0
        self._closing = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._write_loop, name="report-writer", daemon=True)
        self._thread.start()

    def _close_owned(self) -> None:
        for database in self._owned:
            database.close()
        self._owned.clear()

    def close(self) -> None:
        """Write what is queued, then close; a batch that could not be written is raised,
        after the connections are closed all the same."""
        try:
            self.flush()
        finally:
            with self._lock:
                self._closing = True
                self._lock.notify_all()
            self._thread.join(timeout=30)
            self._close_owned()

    def save(
        self,
        host: str,
        received_at: datetime,
        body: str,
        observation: HostObservation | None = None,
    ) -> None:
        """Queue a report as the host's latest and for its history (written within
        ``FLUSH_AFTER_SECONDS``; reads wait for it), with the ``observation`` the service
        derived from it, which a restart takes back as it is."""
        with self._lock:
            self._pending.append((host, received_at.isoformat(), body, observation))
            self._queued += 1
            if len(self._pending) >= FLUSH_EVERY:
                self._lock.notify_all()

    def flush(self) -> None:
        """Wait until every report queued so far is committed."""
        with self._lock:
            target = self._queued
            self._lock.notify_all()
            while self._written < target and self._error is None and self._thread.is_alive():
                self._lock.wait(timeout=1)
            if self._error is not None:
                raise self._error

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                if not self._pending and not self._closing:
                    self._lock.wait(timeout=FLUSH_AFTER_SECONDS)
                if not self._pending and self._closing:
                    return
                batch, self._pending = self._pending, []
            if batch:
                try:
                    self._write(batch)
                    error = None
                except StoreUnavailable as exc:
                    error = exc  # the batch is lost; its agents report again soon
                with self._lock:
                    self._error = error
            with self._lock:
                self._written += len(batch)
                self._lock.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        # Serialised here, on the writer thread, not on the event loop that queued them.
        rows = [
            (host, at, body, None if seen is None else _OBSERVATION.dump_json(seen).decode())
            for host, at, body, seen in batch
        ]
        try:
            with self._writer.transaction() as writer:
                writer.executemany(
                    "INSERT INTO host_reports (host, received_at, body, observation) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET "
                    "received_at = excluded.received_at, body = excluded.body, "
                    "observation = excluded.observation",
                    rows,
                )
                writer.executemany(
                    "INSERT INTO report_history (host, received_at, body) VALUES (?, ?, ?)",
                    [(host, at, body) for host, at, body, _ in rows],
                )
            self._trim_hosts_due([host for host, _, _, _ in batch])
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"cannot store {len(batch)} report(s): {exc}") from exc

    def _trim_hosts_due(self, hosts: list[str]) -> None:
        """Cut each host's history back to ``history_per_host`` every so many of its reports.

        One indexed delete per host now and then, rather than a scan of the whole history:
        a full-table trim stalled the server for a second at a time under load.
        """
        due = []
        for host in hosts:
            self._writes_by_host[host] = self._writes_by_host.get(host, 0) + 1
            if self._writes_by_host[host] % TRIM_EVERY == 0:
                due.append(host)
        if not due:
            return
        with self._writer.transaction() as writer:
            writer.executemany(
                "DELETE FROM report_history WHERE host = ? AND id <= (SELECT id FROM "
                "report_history WHERE host = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                [(host, host, self.history_per_host) for host in due],
            )

    def latest(self) -> dict[str, tuple[datetime, str]]:
        self.flush()
        rows = self._reader.execute("SELECT host, received_at, body FROM host_reports")
        return {host: (datetime.fromisoformat(at), body) for host, at, body in rows}

    def latest_observations(
        self,
    ) -> tuple[dict[str, HostObservation], dict[str, tuple[datetime, str]]]:
        """Each host's latest report as the observation stored with it, and, for the hosts
        whose latest report has none (stored by an older version), the report itself."""
        self.flush()
        rows = self._reader.execute(
            "SELECT host, received_at, observation, "
            "CASE WHEN observation IS NULL THEN body END FROM host_reports"
        )
        observed: dict[str, HostObservation] = {}
        unparsed: dict[str, tuple[datetime, str]] = {}
        for name, at, seen, body in rows:
            host = sys.intern(name)  # the fleet's own string (interned), not a copy per row
            if seen is not None:
                observed[host] = _OBSERVATION.validate_json(seen)
            else:
                unparsed[host] = (datetime.fromisoformat(at), body)
        return observed, unparsed

    def history(self, host: str, limit: int = 20) -> list[tuple[datetime, str]]:
        self.flush()
        rows = self._reader.execute(
            "SELECT received_at, body FROM report_history WHERE host = ? ORDER BY id DESC LIMIT ?",
            (host, limit),
        )
        return [(datetime.fromisoformat(at), body) for at, body in rows]


#: The name this class had when SQLite was its only database.
SqliteReportStore = DatabaseReportStore
