"""`reconciler store migrate` and `check`: a SQLite state made by a real service is copied to
PostgreSQL, and a service opened on the copy takes back the same observations and states."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from reconciler.cli import main
from reconciler.cli.exits import ExitCode
from reconciler.clock import ManualClock
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.service import FleetService
from reconciler.state.backends import COPIED_TABLES, open_state
from reconciler.state.gatesamples import DatabaseGateSamples, group_scope
from reconciler.state.reports import DatabaseReportStore
from reconciler.state.store import Store
from tests.engine_harness import START
from tests.fleet_driver import ReportingFleet
from tests.fleets import NEW, OLD, build_fleet
from tests.postgres_harness import free_port

HOSTS: dict[str, dict[str, str]] = {f"h{n}": {} for n in range(6)}
GROUPS = {
    "g": {"hosts": list(HOSTS)[:4], "canaries": ["h0"], "rollout": {"waves": [1, 3]}},
    "k": {"hosts": list(HOSTS)[4:], "canaries": ["h4"], "rollout": {"waves": [1]}},
}


@dataclass(frozen=True)
class Attempt:
    stream: str
    source: str
    commit: str


def service_on(
    store: Store, reports: DatabaseReportStore, gates: DatabaseGateSamples, clock: ManualClock
) -> FleetService:
    return FleetService(
        build_fleet(GROUPS, HOSTS),
        store,
        reports,
        clock,
        OperationalMetrics(CollectorRegistry()),
        gate_log=gates,
    )


@pytest.fixture
def sqlite_state(tmp_path: Path) -> Path:
    """A state file a real service wrote: a rollout under way, reports with their history,
    health-check samples, a revision, a publication cursor and a promotion."""
    db = tmp_path / "state.sqlite"
    clock = ManualClock(START)
    store, reports, gates = Store(db), DatabaseReportStore(db), DatabaseGateSamples(db)
    service = service_on(store, reports, gates, clock)
    ReportingFleet(service, clock, dict.fromkeys(HOSTS, OLD)).run(timedelta(minutes=40))
    service.record_gate_sample(
        group_scope("g"), GateSample("errors", clock.now(), GateOutcome.SUCCESS, 0.5, "ok")
    )
    store.record_revision("rev-1", START, True, "accepted", "applied")
    store.advance_cursor("notes", 3)
    store.record_promotion(Attempt("prod", "main", NEW), START, "pushed", "abc", "main", "done")
    reports.close()
    gates.close()
    store.close()
    return db


def table_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as source:
        return {t: source.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in COPIED_TABLES}


def test_the_copy_restores_the_same_service(
    sqlite_state: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = table_counts(sqlite_state)
    assert all(expected[t] > 0 for t in COPIED_TABLES), expected  # every table is exercised

    code = main(["store", "migrate", "--from", str(sqlite_state), "--to", postgres_url])

    out = capsys.readouterr().out
    assert code == ExitCode.OK
    for table, count in expected.items():
        assert f"{table}  " in out
        assert any(line.split() == [table, str(count)] for line in out.splitlines()), table

    # Both restarted at the same moment, on the file and on the copy.
    clock = ManualClock(START + timedelta(minutes=41))
    before = Store(sqlite_state)
    before_reports, before_gates = (
        DatabaseReportStore(sqlite_state),
        DatabaseGateSamples(sqlite_state),
    )
    from_file = service_on(before, before_reports, before_gates, clock)
    copy = open_state(postgres_url)
    from_copy = service_on(copy.store, copy.reports, copy.gate_samples, clock)
    try:
        assert from_copy.observed == from_file.observed
        assert len(from_copy.observed) == len(HOSTS)
        assert copy.store.load_all() == before.load_all()
        assert copy.store.load_all()["g"].rollout is not None
        assert from_copy.plans == from_file.plans
        assert copy.store.events() == before.events()
        assert copy.store.observation_basis() == before.observation_basis()
        assert from_copy.gate_samples == from_file.gate_samples
        assert copy.store.revision_in_force() == before.revision_in_force()
        assert copy.store.cursor("notes") == 3
        assert copy.store.promotions() == before.promotions()
        assert copy.reports.history("h0", 1000) == before_reports.history("h0", 1000)

        # Ids go on after the copied ones: the next decision is not a duplicate key.
        last = before.events()[-1].id
        ReportingFleet(from_copy, clock, {h: NEW for h in HOSTS}).run(timedelta(minutes=30))
        assert copy.store.events(after_id=last)[0].id == last + 1
    finally:
        copy.close()
        before_reports.close()
        before_gates.close()
        before.close()


def test_a_target_that_holds_state_is_refused_and_left_alone(
    sqlite_state: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = open_state(postgres_url)
    copy.store.advance_cursor("notes", 9)
    copy.close()

    code = main(["store", "migrate", "--from", str(sqlite_state), "--to", postgres_url])

    assert code == ExitCode.USAGE
    assert "already holds state (rows in publication_cursors)" in capsys.readouterr().err
    with psycopg.connect(postgres_url) as target:
        assert target.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
        assert target.execute("SELECT * FROM publication_cursors").fetchall() == [("notes", 9)]


def test_every_table_of_the_schema_is_copied(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()
    with sqlite3.connect(tmp_path / "s.sqlite") as db:
        tables = {
            name: [column[1] for column in db.execute(f"PRAGMA table_info({name})")]
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name not in ("schema_version", "sqlite_sequence")
        }
    assert tables == {table: list(columns) for table, columns in COPIED_TABLES.items()}


def test_bad_arguments_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "none.sqlite")
    assert main(["store", "migrate", "--from", missing, "--to", "postgresql://x/y"]) == 2
    assert "no SQLite state" in capsys.readouterr().err
    Store(tmp_path / "s.sqlite").close()
    to_file = ["store", "migrate", "--from", str(tmp_path / "s.sqlite"), "--to", missing]
    assert main(to_file) == ExitCode.USAGE
    assert "--to must be a postgresql:// URL" in capsys.readouterr().err
    assert main(["store", "check", missing]) == ExitCode.USAGE


def test_check_prints_the_schema_version(
    sqlite_state: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "check", str(sqlite_state)]) == ExitCode.OK
    assert capsys.readouterr().out == "schema version 8 (current)\n"
    # An empty database has no schema yet: the daemon will create it.
    assert main(["store", "check", postgres_url]) == ExitCode.ATTENTION
    assert (
        capsys.readouterr().out == "schema version 0 of 8: migrated when the daemon next starts\n"
    )
    open_state(postgres_url).close()
    assert main(["store", "check", postgres_url]) == ExitCode.OK
    with psycopg.connect(postgres_url) as db:
        db.execute("UPDATE schema_version SET version = 9")
    assert main(["store", "check", postgres_url]) == ExitCode.ATTENTION
    assert "newer than this reconciler's (8)" in capsys.readouterr().out


def test_a_copy_that_fails_half_way_leaves_the_target_empty(
    sqlite_state: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # PostgreSQL's text cannot hold NUL, which SQLite's can: report_history (copied after
    # group_state, events and host_reports) fails part-way through the copy.
    with sqlite3.connect(sqlite_state) as source:
        source.execute(
            "INSERT INTO report_history (host, received_at, body) VALUES ('h0', ?, ?)",
            (START.isoformat(), "nul\x00"),
        )
    code = main(["store", "migrate", "--from", str(sqlite_state), "--to", postgres_url])
    assert code == ExitCode.USAGE
    assert "nothing was copied" in capsys.readouterr().err
    with psycopg.connect(postgres_url) as target:
        for table in COPIED_TABLES:
            assert target.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,), table


def test_a_password_in_the_url_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://reconciler:s3cret@127.0.0.1:{free_port()}/state"
    assert main(["store", "check", url]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert "cannot open state database postgresql://reconciler:***@127.0.0.1" in captured.err
    assert "s3cret" not in captured.err + captured.out
