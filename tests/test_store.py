"""The SQLite store: state and decisions land together or not at all."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.errors import StoreUnavailable
from reconciler.rollout.decisions import Decision, DecisionKind, apply_decision
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import GroupState, Lifecycle, dump_state, load_state
from reconciler.state.store import MIGRATIONS, Store
from tests.fleets import NEW

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


def test_state_and_events_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    state, decisions = _started()
    store.save(state, decisions)
    store.close()
    reopened = Store(tmp_path / "s.sqlite")
    assert reopened.load("g") == state
    assert reopened.load("other") == GroupState("other")
    events = reopened.events("g")
    assert [(e.kind, e.host, e.rollout, e.revision, e.code) for e in events] == [
        ("rollout_started", None, 1, "abc", "desired_commit_changed"),
        ("host_offered", "h1", 1, None, "stage_target"),
    ]


def test_a_failed_write_leaves_the_previous_state(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    state, decisions = _started()
    store.save(state, decisions[:1])
    before = store.load("g")
    store._db.execute(
        "CREATE TRIGGER no_events BEFORE INSERT ON events "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(StoreUnavailable, match="disk full"):
        store.save(state, decisions)
    assert store.load("g") == before
    assert len(store.events()) == 1


def test_unopenable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(StoreUnavailable, match="cannot open state database"):
        Store(tmp_path / "dir.sqlite")


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
    version = store._db.execute("SELECT version FROM schema_version").fetchone()
    assert version == (len(MIGRATIONS),)
    tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
    assert {"host_reports", "report_history"} <= tables


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
