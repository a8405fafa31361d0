"""Where the state lives: a SQLite file (the embedded default) or a PostgreSQL database.

:func:`open_state` opens the three stores a daemon needs on either; :func:`copy_state` moves
a SQLite state into an empty PostgreSQL database (``reconciler store migrate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import StoreUnavailable
from reconciler.state.database import (
    Database,
    PostgresDatabase,
    SqliteDatabase,
    is_postgres_url,
    redacted,
)
from reconciler.state.gatesamples import DatabaseGateSamples
from reconciler.state.reports import DatabaseReportStore
from reconciler.state.store import Store, migrate


@dataclass(frozen=True)
class StateBackend:
    """The rollout store, the report store and the health-check log of one state."""

    location: str
    store: Store
    reports: DatabaseReportStore
    gate_samples: DatabaseGateSamples
    #: The PostgreSQL pool the three share (SQLite: each has connections of its own).
    shared: Database | None = field(default=None, repr=False)

    def close(self) -> None:
        """Close the report store first: it writes what it still holds."""
        try:
            self.reports.close()
        finally:
            self.gate_samples.close()
            self.store.close()
            if self.shared is not None:
                self.shared.close()


def open_state(location: str | Path) -> StateBackend:
    """The state at ``location``: a ``postgresql://`` or ``postgres://`` URL selects
    PostgreSQL (one connection pool for the three stores); anything else is a SQLite file."""
    if not is_postgres_url(location):
        store = Store(location)
        try:
            reports = DatabaseReportStore(location)
        except StoreUnavailable:
            store.close()
            raise
        try:
            gate_samples = DatabaseGateSamples(location)
        except StoreUnavailable:
            reports.close()
            store.close()
            raise
        return StateBackend(str(location), store, reports, gate_samples)
    database = PostgresDatabase(str(location))
    try:
        migrate(database)
        return StateBackend(
            redacted(str(location)),
            Store(database),
            DatabaseReportStore(database),
            DatabaseGateSamples(database),
            database,
        )
    except BaseException:
        database.close()
        raise


#: Every table of the state and its columns, in the order rows are copied. A table added by
#: a migration must be added here: ``tests/test_store_migrate.py`` compares this with the
#: schema.
COPIED_TABLES: dict[str, tuple[str, ...]] = {
    "group_state": ("group_name", "state", "updated_at"),
    "events": (
        "id",
        "at",
        "group_name",
        "rollout",
        "kind",
        "host",
        "commit_id",
        "wave",
        "code",
        "message",
        "revision",
    ),
    "host_reports": ("host", "received_at", "body", "observation"),
    "report_history": ("id", "host", "received_at", "body"),
    "fleet_revisions": ("id", "revision", "seen_at", "accepted", "code", "message"),
    "publication_cursors": ("name", "event_id"),
    "promotions": (
        "id",
        "stream",
        "source_stream",
        "commit_id",
        "at",
        "outcome",
        "revision",
        "branch",
        "message",
    ),
    "observation_basis": ("host", "received_at", "observation"),
    "gate_samples": ("id", "scope", "check_name", "at", "outcome", "value", "detail"),
}

#: Rows sent to PostgreSQL at a time (a large report history is never held in memory).
COPY_BATCH = 5000


def copy_state(source: SqliteDatabase, target: PostgresDatabase) -> dict[str, int]:
    """Copy every table of ``source`` into ``target`` in one transaction; rows by table.

    Both schemas are brought up to date first. Ids are kept (a publication cursor names an
    event id), and each id sequence continues after the largest copied id. A target that
    already holds rows is refused: nothing is merged, and nothing is written."""
    migrate(source)
    migrate(target)
    counts: dict[str, int] = {}
    # Both in a transaction: the copy is one view of the source (a daemon still running on
    # it waits), and the target gets all of it or nothing.
    with target.transaction() as session, source.transaction() as reading:
        # Keeps a daemon that starts on the target meanwhile from writing between the
        # emptiness check and the copy (it waits on the same lock to migrate).
        session.execute("LOCK TABLE " + ", ".join(COPIED_TABLES) + " IN EXCLUSIVE MODE")
        holding = [
            table
            for table in COPIED_TABLES
            if session.fetchone(f"SELECT 1 FROM {table} LIMIT 1") is not None
        ]
        if holding:
            raise StoreUnavailable(
                f"{target.url} already holds state (rows in {', '.join(holding)}); "
                "copy only into an empty database"
            )
        for table, columns in COPIED_TABLES.items():
            insert = (
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            counts[table] = 0
            for rows in reading.batches(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1", COPY_BATCH
            ):
                session.executemany(insert, rows)
                counts[table] += len(rows)
            if columns[0] == "id":
                session.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table}"
                )
    return counts
