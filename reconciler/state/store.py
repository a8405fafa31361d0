"""The store for rollout state: one transaction per planning pass that decided anything.

Each group's durable state is one JSON row, rewritten together with the pass's decisions
(appended to ``events``, the audit trail) in a single transaction (SQLite's ``BEGIN
IMMEDIATE``, or PostgreSQL's), so a crash leaves either all of a pass or none of it. SQLite
runs in WAL mode with ``synchronous=FULL``: a decision that was committed survives power
loss, which is what makes "persist, then act" safe. The queries are the same for both
databases (:mod:`.database`); only the DDL differs (:mod:`.pgschema` for PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import TypeAdapter

from reconciler.errors import StoreUnavailable
from reconciler.rollout.decisions import LIFECYCLE_KINDS, Decision, DecisionKind
from reconciler.rollout.observed import HostObservation
from reconciler.rollout.state import GroupState, dump_state, load_state
from reconciler.state.database import (
    Database,
    Dialect,
    PostgresDatabase,
    Session,
    SqliteDatabase,
    create_private,
    open_database,
)
from reconciler.state.pgschema import POSTGRES_MIGRATIONS

__all__ = ["MIGRATIONS", "Store", "create_private", "instant", "migrate"]


class PromotionSubject(Protocol):
    """Which promotion an attempt was for (a :class:`reconciler.promotion.check.PromotionCheck`
    provides it; the store does not depend on the promotion package)."""

    @property
    def stream(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def commit(self) -> str: ...


@dataclass(frozen=True)
class RevisionRecord:
    """The gate's verdict on one fleet-repo revision, as recorded."""

    revision: str
    accepted: bool
    code: str  # a reconciler.git.source.VerdictCode value
    message: str
    seen_at: datetime  # when the verdict was reached (for the revision in force: applied)


@dataclass(frozen=True)
class PromotionRecord:
    """One attempt to promote ``commit`` from stream ``source`` to ``stream``."""

    stream: str
    source: str
    commit: str
    at: datetime
    outcome: str  # a reconciler.promotion.commit.PromotionOutcome value, or "failed"
    revision: str | None  # the promotion commit, when one was made
    message: str


#: Schema migrations, applied in order; the database records how far it got. Append only.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE group_state (
        group_name  TEXT PRIMARY KEY,
        state       TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        group_name  TEXT NOT NULL,
        rollout     INTEGER,
        kind        TEXT NOT NULL,
        host        TEXT,
        commit_id   TEXT,
        wave        INTEGER,
        code        TEXT NOT NULL,
        message     TEXT NOT NULL,
        revision    TEXT
    );
    CREATE INDEX events_by_group ON events (group_name, id);
    """,
    """
    CREATE TABLE host_reports (
        host         TEXT PRIMARY KEY,
        received_at  TEXT NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE TABLE report_history (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        host         TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        body         TEXT NOT NULL
    );
    CREATE INDEX report_history_by_host ON report_history (host, id);
    """,
    """
    CREATE TABLE fleet_revisions (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        revision    TEXT NOT NULL,
        seen_at     TEXT NOT NULL,
        accepted    INTEGER NOT NULL,
        code        TEXT NOT NULL,
        message     TEXT NOT NULL
    );
    """,
    # Counters read from the event log by kind (metrics) must not scan the whole table.
    """
    CREATE INDEX events_by_kind ON events (kind, group_name, code);
    """,
    # How far the event log has been published elsewhere (rollout notes in Git), and every
    # automatic promotion attempted, so a promotion is never made twice.
    """
    CREATE TABLE publication_cursors (
        name        TEXT PRIMARY KEY,
        event_id    INTEGER NOT NULL
    );
    CREATE TABLE promotions (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        stream         TEXT NOT NULL,
        source_stream  TEXT NOT NULL,
        commit_id      TEXT NOT NULL,
        at             TEXT NOT NULL,
        outcome        TEXT NOT NULL,
        revision       TEXT,
        branch         TEXT,
        message        TEXT NOT NULL
    );
    CREATE INDEX promotions_by_stream ON promotions (stream, commit_id);
    """,
    # What a host reported when a decision about it was taken, written in the decision's own
    # transaction: reports are stored in batches, and a restart must never plan from a
    # report older than a decision already taken (docs/rollouts.md, "Restarts").
    """
    CREATE TABLE observation_basis (
        host         TEXT PRIMARY KEY,
        received_at  TEXT NOT NULL,
        observation  TEXT NOT NULL
    );
    """,
    # The observation the service derived from each host's latest report, so a restart
    # takes it back without validating every report again (NULL: parse the body).
    """
    ALTER TABLE host_reports ADD COLUMN observation TEXT;
    """,
    # Each evaluation of a health check (reconciler.state.gatesamples): the planner's gates
    # judge what is stored here, so a restart judges the same evaluations again.
    """
    CREATE TABLE gate_samples (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        scope       TEXT NOT NULL,
        check_name  TEXT NOT NULL,
        at          TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        value       REAL,
        detail      TEXT NOT NULL
    );
    CREATE INDEX gate_samples_by_time ON gate_samples (at);
    """,
)


def migrate(db: Database) -> int:
    """Bring the schema up to date with the migrations of the database's dialect; return
    the version."""
    if db.dialect is Dialect.POSTGRESQL:
        return db.migrate(POSTGRES_MIGRATIONS)
    return db.migrate(MIGRATIONS)


def opened(
    location: Path | str | Database,
    name: str,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
) -> tuple[Database, bool]:
    """The database at ``location`` (opened and migrated) or the one given, and whether it
    was opened here, so that its user owns it and closes it."""
    if isinstance(location, SqliteDatabase | PostgresDatabase):
        return location, False
    database = open_database(location, synchronous, name)
    try:
        migrate(database)
    except StoreUnavailable as exc:
        database.close()
        raise StoreUnavailable(f"cannot open {name} {location}: {exc}") from exc
    return database, True


#: A check run as the first statement of a pass's transaction (the lease's fencing token):
#: it is given the transaction's own driver connection (``psycopg.Connection`` or
#: ``sqlite3.Connection``, as :func:`reconciler.state.leases` fences expect) and raises to
#: write nothing.
Fence = Callable[[Any], None]


@dataclass(frozen=True)
class StoredEvent:
    id: int
    at: datetime
    group: str
    rollout: int | None
    kind: str
    host: str | None
    commit: str | None
    wave: int | None
    code: str
    message: str
    revision: str | None


_OBSERVATION = TypeAdapter(HostObservation)


_REVISION_COLUMNS = "revision, accepted, code, message, seen_at"


def _revision_record(row: Sequence[Any]) -> RevisionRecord:
    return RevisionRecord(row[0], bool(row[1]), row[2], row[3], datetime.fromisoformat(row[4]))


def instant(at: datetime) -> str:
    """A UTC time as fixed-width text, so that SQL compares instants in order."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class Store:
    """Rollout state and events in a SQLite file or a PostgreSQL database.

    ``location``: a SQLite file's path, a ``postgresql://`` URL, or a database opened by the
    caller (shared with the other stores; the caller closes it).
    """

    def __init__(self, location: Path | str | Database) -> None:
        self._db, self._owned = opened(location, "state database")

    @property
    def database(self) -> Database:
        return self._db

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[Session]:
        return self._db.transaction()

    def load(self, group: str) -> GroupState:
        """The durable state of ``group`` (empty for a group never seen)."""
        row = self._db.fetchone("SELECT state FROM group_state WHERE group_name = ?", (group,))
        return load_state(row[0]) if row else GroupState(group)

    def load_all(self) -> dict[str, GroupState]:
        rows = self._db.execute("SELECT group_name, state FROM group_state")
        return {name: load_state(state) for name, state in rows}

    def save(
        self,
        state: GroupState,
        decisions: Sequence[Decision],
        basis: Mapping[str, HostObservation] | None = None,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Persist a pass: the new state, its decisions and the observations they were based
        on (``basis``, by host), atomically. A basis never replaces a newer one.

        ``fence`` runs first in the same transaction; if it raises, nothing is written (a
        replica whose lease on the group was lost never records a decision)."""
        if not decisions:
            return
        with self._transaction() as db:
            if fence is not None:
                fence(db.connection)
            db.executemany(
                "INSERT INTO observation_basis (host, received_at, observation) "
                "VALUES (?, ?, ?) ON CONFLICT (host) DO UPDATE SET "
                "received_at = excluded.received_at, observation = excluded.observation "
                "WHERE excluded.received_at >= observation_basis.received_at",
                [
                    (host, instant(seen.received_at), _OBSERVATION.dump_json(seen).decode())
                    for host, seen in sorted((basis or {}).items())
                ],
            )
            db.execute(
                "INSERT INTO group_state (group_name, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (group_name) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (state.group, dump_state(state).decode(), decisions[-1].at.isoformat()),
            )
            db.executemany(
                "INSERT INTO events (at, group_name, rollout, kind, host, commit_id, wave, "
                "code, message, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.at.isoformat(),
                        state.group,
                        d.rollout,
                        d.kind.value,
                        d.host,
                        d.commit,
                        d.wave,
                        d.reason.code.value,
                        d.reason.message,
                        d.revision,
                    )
                    for d in decisions
                ],
            )

    def record_revision(
        self, revision: str, at: datetime, accepted: bool, code: str, message: str
    ) -> None:
        """Remember what became of a fleet-repo revision (applied, or refused and why)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO fleet_revisions (revision, seen_at, accepted, code, "
                "message) VALUES (?, ?, ?, ?, ?)",
                (revision, at.isoformat(), int(accepted), code, message),
            )

    def last_applied_revision(self) -> str | None:
        """The newest revision that was applied; survives restarts."""
        row = self._db.fetchone(
            "SELECT revision FROM fleet_revisions WHERE accepted = 1 ORDER BY id DESC LIMIT 1"
        )
        return row[0] if row else None

    def observation_basis(self) -> dict[str, HostObservation]:
        """By host, the newest observation a decision about it was based on."""
        rows = self._db.execute("SELECT observation FROM observation_basis")
        return {seen.host: seen for seen in (_OBSERVATION.validate_json(r[0]) for r in rows)}

    def last_verdict(self) -> RevisionRecord | None:
        """The verdict on the newest revision considered."""
        row = self._db.fetchone(
            f"SELECT {_REVISION_COLUMNS} FROM fleet_revisions ORDER BY id DESC LIMIT 1"
        )
        return _revision_record(row) if row else None

    def revision_in_force(self) -> RevisionRecord | None:
        """The revision applied last, with ``seen_at`` the time it was first applied: a
        refusal in between and the branch going back to it do not make it newer."""
        row = self._db.fetchone(
            f"SELECT {_REVISION_COLUMNS}, id FROM fleet_revisions WHERE accepted = 1 "
            "ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return None
        # An aggregate without GROUP BY always gives one row.
        (first,) = self._db.execute(
            "SELECT MIN(seen_at) FROM fleet_revisions WHERE accepted = 1 AND revision = ? "
            "AND id > COALESCE((SELECT MAX(id) FROM fleet_revisions "
            "WHERE accepted = 1 AND revision != ? AND id < ?), 0)",
            (row[0], row[0], row[5]),
        )
        return _revision_record((*row[:4], first[0]))

    def last_refusal(self) -> RevisionRecord | None:
        """The newest revision that was refused, whether or not a later one was applied."""
        row = self._db.fetchone(
            f"SELECT {_REVISION_COLUMNS} FROM fleet_revisions WHERE accepted = 0 "
            "ORDER BY id DESC LIMIT 1"
        )
        return _revision_record(row) if row else None

    def lifecycle_events(self) -> list[tuple[str, int, DecisionKind]]:
        """(group, rollout number, kind) of every halt, resume, completion and supersession,
        oldest first: how each rollout ended is read from them."""
        kinds = sorted(k.value for k in LIFECYCLE_KINDS)
        rows = self._db.execute(
            f"SELECT group_name, rollout, kind FROM events WHERE kind IN "
            f"({', '.join('?' * len(kinds))}) AND rollout IS NOT NULL ORDER BY id",
            kinds,
        )
        return [(group, int(number), DecisionKind(kind)) for group, number, kind in rows]

    def count_events(self, kind: str) -> list[tuple[str, str, int]]:
        """(group, reason code, count) of the events of one kind, for counters that must
        survive restarts."""
        rows = self._db.execute(
            "SELECT group_name, code, COUNT(*) FROM events WHERE kind = ? "
            "GROUP BY group_name, code",
            (kind,),
        )
        return [(group, code, int(count)) for group, code, count in rows]

    def events(
        self,
        group: str | None = None,
        after_id: int = 0,
        kinds: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        """Events in the order they were decided, optionally for one group or some kinds."""
        query = "SELECT * FROM events WHERE id > ?"
        params: list[object] = [after_id]
        if group is not None:
            query += " AND group_name = ?"
            params.append(group)
        if kinds is not None:
            query += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params.extend(kinds)
        rows = self._db.execute(query + " ORDER BY id", params)
        return [StoredEvent(r[0], datetime.fromisoformat(r[1]), *r[2:]) for r in rows]

    def host_outcomes(self, group: str, rollout: int, up_to_id: int) -> tuple[int, int]:
        """(hosts that succeeded, hosts that failed) in one rollout of a group, as of an event;
        a host that drifted and came back counts once."""
        (row,) = self._db.execute(
            "SELECT COUNT(DISTINCT CASE WHEN kind = 'host_succeeded' THEN host END), "
            "COUNT(DISTINCT CASE WHEN kind = 'host_failed' THEN host END) FROM events "
            "WHERE group_name = ? AND rollout = ? AND id <= ?",
            (group, rollout, up_to_id),
        )
        return int(row[0] or 0), int(row[1] or 0)

    def record_promotion(
        self,
        check: PromotionSubject,
        at: datetime,
        outcome: str,
        revision: str | None,
        branch: str | None,
        message: str,
    ) -> None:
        """Remember a promotion attempt; a made one is never made again."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO promotions (stream, source_stream, commit_id, at, outcome, "
                "revision, branch, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    check.stream,
                    check.source,
                    check.commit,
                    at.isoformat(),
                    outcome,
                    revision,
                    branch,
                    message,
                ),
            )

    def promoted_commits(self, stream: str) -> set[str]:
        """Source commits a promotion of ``stream`` was made for (pushed or found in Git)."""
        rows = self._db.execute(
            "SELECT commit_id FROM promotions WHERE stream = ? AND outcome != 'failed'",
            (stream,),
        )
        return {row[0] for row in rows}

    def promotions(self) -> list[PromotionRecord]:
        """Every promotion attempt, oldest first."""
        rows = self._db.execute(
            "SELECT stream, source_stream, commit_id, at, outcome, revision, message "
            "FROM promotions ORDER BY id"
        )
        return [
            PromotionRecord(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], r[5], r[6])
            for r in rows
        ]

    def cursor(self, name: str) -> int:
        """The id of the last event published to ``name`` (0: nothing yet)."""
        row = self._db.fetchone("SELECT event_id FROM publication_cursors WHERE name = ?", (name,))
        return int(row[0]) if row else 0

    def advance_cursor(self, name: str, event_id: int) -> None:
        """Remember that events up to ``event_id`` were published; never moves back."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO publication_cursors (name, event_id) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "event_id = CASE WHEN excluded.event_id > publication_cursors.event_id "
                "THEN excluded.event_id ELSE publication_cursors.event_id END",
                (name, event_id),
            )
