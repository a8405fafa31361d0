"""Start-up: each host's latest observation is taken back from the report store as stored,
without validating its report again; rows from before the observation column are parsed.
And what is kept per host stays compact (shared commit strings, shared label mappings)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.rollout.observed import ApplyError, Greenboot, HostObservation, RebootDeferral
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport
from reconciler.serve.service import FleetService, observation_from_report
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import MIGRATIONS, Store
from tests.engine_harness import START
from tests.fleets import NEW, OLD, build_fleet
from tests.state_backends import state_location_fixture
from tests.test_api import report

__all__ = ["state_location_fixture"]  # the fixture, for pytest

HOSTS = {"c1": {}, "c2": {}, "c3": {}}
GROUPS = {"g": {"hosts": list(HOSTS), "canaries": ["c1"], "rollout": {"waves": [1]}}}


@pytest.fixture
def db(state_location: Path | str) -> Path | str:
    """The state, in a SQLite file or a PostgreSQL database."""
    return state_location


@pytest.fixture
def opened(db: Path | str) -> Iterator[list[tuple[Store, SqliteReportStore]]]:
    handles: list[tuple[Store, SqliteReportStore]] = []
    yield handles
    for store, reports in handles:
        reports.close()
        store.close()


def start(db: Path | str, handles: list[tuple[Store, SqliteReportStore]]) -> FleetService:
    """A service over the state file, as a restarted process opens it."""
    store, reports = Store(db), SqliteReportStore(db)
    handles.append((store, reports))
    metrics = OperationalMetrics(CollectorRegistry())
    return FleetService(build_fleet(GROUPS, HOSTS), store, reports, ManualClock(START), metrics)


def derived(host: str, body: str) -> HostObservation:
    return observation_from_report(host, START, AgentReport.model_validate_json(body))


def test_a_restart_takes_the_stored_observation_back_as_it_is(
    db: Path | str, opened: list[tuple[Store, SqliteReportStore]]
) -> None:
    reports = SqliteReportStore(db)
    body = json.dumps(report(booted=OLD))
    # Stored with its report, the observation is what a restart believes: the body is not
    # read again (here they differ on purpose, so a restart that parsed it would show OLD).
    stored = dataclasses.replace(
        derived("c1", body),
        booted_commit=NEW,
        apply_error=ApplyError(NEW, "no space left on device"),
        reboot_deferred=RebootDeferral(START, "drain failed", 1, timed_out=False),
    )
    reports.save("c1", START, body, stored)
    reports.close()
    service = start(db, opened)
    assert service.observed["c1"] == stored


def test_a_report_stored_without_an_observation_is_parsed(
    db: Path | str, opened: list[tuple[Store, SqliteReportStore]]
) -> None:
    reports = SqliteReportStore(db)
    body = json.dumps(report(booted=OLD, staged=NEW, boot_id="b7"))
    reports.save("c2", START, body)
    reports.close()
    service = start(db, opened)
    assert service.observed["c2"] == derived("c2", body)


def test_a_newer_report_replaces_the_stored_observation_with_its_own(
    db: Path | str, opened: list[tuple[Store, SqliteReportStore]]
) -> None:
    reports = SqliteReportStore(db)
    first, second = json.dumps(report(booted=OLD)), json.dumps(report(booted=NEW))
    reports.save("c1", START, first, derived("c1", first))
    reports.save("c1", START + timedelta(seconds=1), second)  # from a version without it
    reports.close()
    service = start(db, opened)
    # The row's observation belongs to the report it was stored with; a report saved
    # without one clears it, so the restart parses that report rather than trust the old.
    assert service.observed["c1"].booted_commit == NEW


def test_reports_stored_before_the_migration_are_restored_by_parsing(
    tmp_path: Path, opened: list[tuple[Store, SqliteReportStore]]
) -> None:
    # A SQLite file as the version before this one left it: no observation column.
    db = tmp_path / "old.sqlite"
    old = sqlite3.connect(db, isolation_level=None)
    old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, script in enumerate(MIGRATIONS[:-1], start=1):
        old.executescript(script)
        old.execute("DELETE FROM schema_version")
        old.execute("INSERT INTO schema_version VALUES (?)", (number,))
    body = json.dumps(report(booted=OLD, boot_id="b3"))
    old.execute(
        "INSERT INTO host_reports (host, received_at, body) VALUES (?, ?, ?)",
        ("c3", START.isoformat(), body),
    )
    old.close()
    service = start(db, opened)
    assert service.observed["c3"] == derived("c3", body)
    # And the migrated row takes the observation of the next report.
    _, reports = opened[-1]
    reports.save("c3", START, body, service.observed["c3"])
    stored, unparsed = reports.latest_observations()
    assert stored == {"c3": service.observed["c3"]}
    assert unparsed == {}


def test_observations_share_one_string_per_commit_and_version() -> None:
    def seen(host: str) -> HostObservation:
        # Built from fresh strings, as each parsed report gives its own.
        return HostObservation(
            host,
            START,
            "".join(["a1"] * 32),
            f"boot-{host}",
            Greenboot.GREEN,
            staged_commit="".join(["b2"] * 32),
            booted_version="".join(["42.", "1"]),
        )

    one, two = seen("h1"), seen("h2")
    assert one.booted_commit is two.booted_commit
    assert one.staged_commit is two.staged_commit
    assert one.booted_version is two.booted_version


def test_hosts_with_the_same_labels_share_one_mapping() -> None:
    fleet = build_fleet(GROUPS, {"c1": {"rack": "r1"}, "c2": {"rack": "r1"}, "c3": {"rack": "r2"}})
    hosts = fleet.hosts
    assert hosts["c1"].labels is hosts["c2"].labels
    assert hosts["c1"].labels == {"rack": "r1"}
    assert hosts["c3"].labels == {"rack": "r2"}
    assert hosts["c1"].labels is not hosts["c3"].labels
