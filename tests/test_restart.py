"""Restarts: a decision is never undone by a report older than it.

Reports are written in batches; decisions at once. A crash inside a batch used to lose the
report a decision had just been taken on, and the restart planned from the older stored
report: a host that had just succeeded was recorded as drifted, offered the commit again and
given a reboot slot again. Here the crash is a report store that is abandoned with its batch
still queued, and a new service opened on the same SQLite file, as after ``kill -9``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.observed import HostObservation
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import GroupState
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport
from reconciler.serve.service import FleetService
from reconciler.state import reports as reports_module
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.engine_harness import START
from tests.fleets import NEW, OLD, build_fleet
from tests.test_api import report

HOSTS = {"c1": {}, "c2": {}}
GROUPS = {"g": {"hosts": list(HOSTS), "canaries": ["c1"], "rollout": {"waves": [1]}}}


@dataclass
class Opened:
    """One 'process': a service over the state file, and what it had open."""

    service: FleetService
    store: Store
    reports: SqliteReportStore
    answers: list[dict[str, Any]] = field(default_factory=list)

    def post(self, host: str, **fields: Any) -> str:
        answer = self.service.ingest(host, AgentReport.model_validate(report(**fields)))
        self.answers.append({"host": host, **answer.model_dump()})
        return answer.action


@pytest.fixture
def open_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Reports stay queued until flushed by hand: the batch window is as long as the test.
    monkeypatch.setattr(reports_module, "FLUSH_AFTER_SECONDS", 3600.0)
    monkeypatch.setattr(reports_module, "FLUSH_EVERY", 10**6)
    clock = ManualClock(START)
    opened: list[Opened] = []

    def open_() -> Opened:
        db = tmp_path / "state.sqlite"
        store, reports = Store(db), SqliteReportStore(db)
        metrics = OperationalMetrics(CollectorRegistry())
        service = FleetService(build_fleet(GROUPS, HOSTS), store, reports, clock, metrics)
        opened.append(Opened(service, store, reports))
        return opened[-1]

    yield open_
    for each in opened:
        each.store.close()


def kinds(store: Store, host: str) -> list[str]:
    return [e.kind for e in store.events("g") if e.host == host]


def test_a_success_whose_report_was_lost_in_a_crash_stays_a_success(
    open_service: Any,
) -> None:
    first = open_service()
    assert first.post("c1", booted=OLD) == "stage"
    assert first.post("c1", booted=OLD, staged=NEW) == "reboot"
    first.reports.flush()  # everything up to the reboot is on disk...
    assert first.post("c1", booted=NEW, boot_id="b2") == "none"  # ...but not this report
    assert kinds(first.store, "c1")[-1] == DecisionKind.HOST_SUCCEEDED
    # kill -9: the queued batch (the report of c1 on the new build) is never written.

    second = open_service()
    plan = second.service.reconcile("g")
    assert plan.hosts["c1"].state.value == "in_sync"
    assert plan.hosts["c1"].action.value == "none"
    steps = kinds(second.store, "c1")
    assert steps.count(DecisionKind.HOST_SUCCEEDED) == 1
    assert DecisionKind.HOST_DRIFTED not in steps
    assert steps.count(DecisionKind.HOST_OFFERED) == 1
    assert steps.count(DecisionKind.REBOOT_ALLOWED) == 1
    assert second.service.observed["c1"].booted_commit == NEW  # what c1 last said, kept


def test_a_newer_stored_report_wins_over_an_older_basis(open_service: Any) -> None:
    first = open_service()
    first.post("c1", booted=OLD)
    first.post("c1", booted=OLD, staged=NEW)
    first.post("c1", booted=NEW, boot_id="b2")
    first.post("c1", booted=NEW, boot_id="b2", greenboot="red")  # no decision: already done
    first.reports.flush()
    second = open_service()
    assert second.service.observed["c1"].greenboot.value == "red"


def test_a_basis_never_goes_back_in_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite")
    decision = Decision(
        DecisionKind.HOST_OFFERED, START, Reason(ReasonCode.STAGE_TARGET, "offered"), host="c1"
    )
    newer = HostObservation("c1", START, NEW, "b2")
    older = HostObservation("c1", START - timedelta(microseconds=1), OLD, "b1")
    store.save(GroupState("g"), [decision], {"c1": newer})
    store.save(GroupState("g"), [decision], {"c1": older})
    assert store.observation_basis() == {"c1": newer}
    store.close()
