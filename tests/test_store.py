"""The rollout store, on SQLite and on PostgreSQL: state and decisions land together or not
at all, and a fence that raises stops the whole pass."""

from __future__ import annotations

import math
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from reconciler.errors import StoreUnavailable
from reconciler.rollout.decisions import Decision, DecisionKind, apply_decision
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import GroupState, Lifecycle, dump_state, load_state
from reconciler.state.database import SqliteDatabase, schema_version
from reconciler.state.gatesamples import DatabaseGateSamples, group_scope
from reconciler.state.pgschema import POSTGRES_MIGRATIONS
from reconciler.state.reports import DatabaseReportStore
from reconciler.state.store import MIGRATIONS, Store, migrate
from tests.fleets import NEW, OLD
from tests.postgres_harness import free_port
from tests.state_backends import on_postgres, state_location_fixture

__all__ = ["state_location_fixture"]  # the fixture, for pytest

AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _started() -> tuple[GroupState, list[Decision]]:
    state = GroupState("g")
    decisions = [
        Decision(
            DecisionKind.ROLLOUT_STARTED,
            AT,
            Reason(ReasonCode.DESIRED_COMMIT_CHANGED, "x"),
            rollout=1,
            commit=NEW,
            revision="abc",
        ),
        Decision(
            DecisionKind.HOST_OFFERED,
            AT,
            Reason(ReasonCode.STAGE_TARGET, "y"),
            host="h1",
            rollout=1,
            commit=NEW,
            wave=0,
        ),
    ]
    for decision in decisions:
        apply_decision(state, decision)
    return state, decisions


def _seen(host: str) -> HostObservation:
    return HostObservation(host, AT, OLD, "b1", Greenboot.GREEN)


def test_state_and_events_round_trip(state_location: Path | str) -> None:
    store = Store(state_location)
    state, decisions = _started()
    store.save(state, decisions)
    store.close()
    reopened = Store(state_location)
    assert reopened.load("g") == state
    assert reopened.load("other") == GroupState("other")
    events = reopened.events("g")
    assert [(e.kind, e.host, e.rollout, e.revision, e.code) for e in events] == [
        ("rollout_started", None, 1, "abc", "desired_commit_changed"),
        ("host_offered", "h1", 1, None, "stage_target"),
    ]
    reopened.close()


def _fail_inserts_into_events(store: Store, location: Path | str) -> None:
    """Make the database refuse every new event, as a full disk would."""
    if on_postgres(location):
        store.database.execute(
            "CREATE FUNCTION no_events() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
        )
        store.database.execute(
            "CREATE TRIGGER no_events BEFORE INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION no_events()"
        )
    else:
        store.database.execute(
            "CREATE TRIGGER no_events BEFORE INSERT ON events "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )


def test_a_failed_write_leaves_the_previous_state(state_location: Path | str) -> None:
    store = Store(state_location)
    state, decisions = _started()
    store.save(state, decisions[:1])
    before = store.load("g")
    _fail_inserts_into_events(store, state_location)
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.save(state, decisions)
    assert store.load("g") == before
    assert len(store.events()) == 1
    store.close()


class LeaseLost(Exception):
    pass


def test_a_fence_that_raises_leaves_nothing_written(state_location: Path | str) -> None:
    store = Store(state_location)
    state, decisions = _started()
    seen: list[bool] = []

    def fence(connection: Any) -> None:
        # It runs inside the pass's transaction: what it writes goes back with the pass.
        connection.execute("INSERT INTO publication_cursors (name, event_id) VALUES ('f', 1)")
        seen.append(True)
        raise LeaseLost("the lease on g was taken over")

    with pytest.raises(LeaseLost):
        store.save(state, decisions, {"h1": _seen("h1")}, fence=fence)
    assert seen == [True]
    assert store.load("g") == GroupState("g")
    assert store.events() == []
    assert store.observation_basis() == {}
    assert store.cursor("f") == 0
    store.close()


def test_a_fence_that_passes_runs_first_in_the_same_transaction(
    state_location: Path | str,
) -> None:
    store = Store(state_location)
    state, decisions = _started()
    before_events: list[int] = []

    def fence(connection: Any) -> None:
        # The driver's own connection (a lease's fence runs SELECT ... FOR UPDATE on it).
        assert isinstance(connection, psycopg.Connection | sqlite3.Connection)
        before_events.append(len(connection.execute("SELECT id FROM events").fetchall()))
        connection.execute("INSERT INTO publication_cursors (name, event_id) VALUES ('f', 7)")

    store.save(state, decisions, fence=fence)
    assert before_events == [0]
    assert store.load("g") == state
    assert len(store.events()) == 2
    assert store.cursor("f") == 7  # committed with the pass
    store.close()


def test_revisions_promotions_and_cursors(state_location: Path | str) -> None:
    """The queries that differ most between the dialects give the same answers on both."""
    store = Store(state_location)
    store.record_revision("r1", AT, True, "accepted", "ok")
    store.record_revision("r2", AT.replace(hour=13), False, "invalid", "bad")
    store.record_revision("r1", AT.replace(hour=14), True, "accepted", "ok")
    in_force = store.revision_in_force()
    assert in_force is not None
    assert (in_force.revision, in_force.seen_at) == ("r1", AT)
    refusal = store.last_refusal()
    assert refusal is not None
    assert (refusal.revision, refusal.accepted) == ("r2", False)
    assert store.last_applied_revision() == "r1"
    store.advance_cursor("notes", 5)
    store.advance_cursor("notes", 3)  # never moves back
    assert store.cursor("notes") == 5
    state, decisions = _started()
    store.save(state, decisions)
    assert store.count_events("host_offered") == [("g", "stage_target", 1)]
    assert store.host_outcomes("g", 1, 10**9) == (0, 0)
    assert store.events(kinds=["rollout_started"])[0].revision == "abc"
    store.close()


def test_unopenable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StoreUnavailable, match="cannot open state database"):
        Store(tmp_path / "dir.sqlite")


def test_an_unreachable_postgres_is_a_clear_error_without_its_password() -> None:
    url = f"postgresql://reconciler:s3cret@127.0.0.1:{free_port()}/state"
    with pytest.raises(StoreUnavailable, match="cannot open state database") as raised:
        Store(url)
    assert "s3cret" not in str(raised.value)
    assert "reconciler:***@127.0.0.1" in str(raised.value)


def test_wal_mode_is_on(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    mode = sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_an_older_schema_is_migrated_in_place(tmp_path: Path) -> None:
    db_path = tmp_path / "old.sqlite"
    db = sqlite3.connect(db_path)
    db.executescript(MIGRATIONS[0])
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1)")
    db.execute(
        "INSERT INTO group_state VALUES ('g', ?, '2026-01-01')",
        (dump_state(GroupState("g")).decode(),),
    )
    db.commit()
    db.close()
    store = Store(db_path)
    assert store.load("g") == GroupState("g")
    assert schema_version(store.database) == len(MIGRATIONS)
    tables = {r[0] for r in store.database.execute("SELECT name FROM sqlite_master")}
    assert {"host_reports", "report_history"} <= tables
    store.close()


def test_an_older_postgres_schema_is_migrated_in_place(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as old:
        old.execute(POSTGRES_MIGRATIONS[0])
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        old.execute("INSERT INTO schema_version VALUES (1)")
        old.execute(
            "INSERT INTO group_state VALUES ('g', %s, '2026-01-01')",
            (dump_state(GroupState("g")).decode(),),
        )
    store = Store(postgres_url)
    assert store.load("g") == GroupState("g")
    assert schema_version(store.database) == len(POSTGRES_MIGRATIONS)
    store.close()


def _sqlite_columns(path: Path, version: int) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {
        table: [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
        for table in tables
        if table != "sqlite_sequence"
    }
    db.close()
    return columns


def _postgres_columns(url: str, version: int) -> dict[str, list[str]]:
    with psycopg.connect(url, autocommit=True) as db:
        for script in POSTGRES_MIGRATIONS[:version]:
            db.execute(script)
        rows = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
        for table in {table for table, _ in rows}:
            db.execute(f"DROP TABLE {table}")
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def test_both_schemas_have_the_same_tables_and_columns_at_every_version(
    tmp_path: Path, postgres_url: str
) -> None:
    assert len(POSTGRES_MIGRATIONS) == len(MIGRATIONS)
    for version in range(1, len(MIGRATIONS) + 1):
        sqlite_columns = _sqlite_columns(tmp_path / f"v{version}.sqlite", version)
        assert _postgres_columns(postgres_url, version) == sqlite_columns, version


def test_postgres_orders_times_bytewise(postgres_url: str) -> None:
    Store(postgres_url).close()
    with psycopg.connect(postgres_url) as db:
        rows = db.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name IN "
            "('at', 'received_at', 'seen_at', 'updated_at')"
        ).fetchall()
    assert len(rows) == 8
    assert {collation for _, _, collation in rows} == {"C"}


def test_processes_starting_at_once_migrate_a_postgres_database_once(
    postgres_url: str,
) -> None:
    """Each opener is its own session, as separate processes are: the advisory lock lets
    one apply the migrations while the others wait, then find the schema current."""
    openers = 6
    barrier = threading.Barrier(openers)
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(Store(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(stores) == openers
    assert schema_version(stores[0].database) == len(POSTGRES_MIGRATIONS)
    versions = stores[0].database.execute("SELECT version FROM schema_version")
    assert versions == [(len(POSTGRES_MIGRATIONS),)]
    for store in stores:
        store.close()


def test_gate_samples_round_trip_and_prune(state_location: Path | str) -> None:
    samples = DatabaseGateSamples(state_location)
    for minutes, value in ((0, 2.0), (10, math.nan), (20, 1.5)):
        sample = GateSample(
            "errors", AT + timedelta(minutes=minutes), GateOutcome.SUCCESS, value, "d"
        )
        samples.append(group_scope("g"), sample)
    found = samples.since(AT + timedelta(minutes=5))
    assert [(s.at, s.value) for s in found[group_scope("g")]] == [
        (AT + timedelta(minutes=10), None),
        (AT + timedelta(minutes=20), 1.5),
    ]
    assert samples.prune(AT + timedelta(minutes=15)) == 2
    assert [s.value for s in samples.since(AT)[group_scope("g")]] == [1.5]
    samples.close()


def test_a_state_that_stored_the_rollout_count_still_loads() -> None:
    """States written before the count was derived from the rollout's number carry
    `rollouts_started`; it is ignored, and the next rollout is numbered from the current one."""
    row = (
        '{"group":"g","rollout":{"number":4,"target":"' + "a" * 64 + '","previous":null,'
        '"revision":"r","started_at":"2026-01-01T00:00:00Z"},'
        '"rollouts_started":4,"finishing":{},"failed":{},"completed_commits":{}}'
    )
    state = load_state(row)
    assert state.rollout is not None
    assert state.rollouts_started == 4
    assert b"rollouts_started" not in dump_state(state)


def test_a_state_that_stored_the_lifecycle_as_phase_still_loads() -> None:
    row = (
        '{"group":"g","rollout":{"number":1,"target":"' + "a" * 64 + '","previous":null,'
        '"revision":"r","started_at":"2026-01-01T00:00:00Z","phase":"halted"},'
        '"finishing":{},"failed":{},"completed_commits":{}}'
    )
    state = load_state(row)
    assert state.rollout is not None
    assert state.rollout.lifecycle is Lifecycle.HALTED
    assert b'"lifecycle":"halted"' in dump_state(state)


def test_stores_sharing_one_sqlite_connection_never_interleave_transactions(
    tmp_path: Path,
) -> None:
    """A database opened once and handed to the stores is used by the loop thread and the
    report writer at once; each transaction runs whole before another begins."""
    database = SqliteDatabase(tmp_path / "shared.sqlite")
    migrate(database)
    store, reports = Store(database), DatabaseReportStore(database)
    state, decisions = _started()
    # Enough of both for the writer's batches to land in the middle of passes (without the
    # lock: "cannot start a transaction within a transaction").
    for n in range(2000):
        for host in range(5):
            reports.save(f"h{host}", AT + timedelta(seconds=n), "{}")
        store.save(state, decisions)
    assert len(reports.latest()) == 5
    reports.close()
    assert len(store.events()) == 4000
    store.close()
    database.close()
