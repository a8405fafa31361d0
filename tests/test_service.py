"""The service's one reconcile path: every pass goes through it, a failure stays with its
group and is retried with backoff, and reads never plan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.errors import StoreUnavailable
from reconciler.rollout import engine as engine_module
from reconciler.rollout import planner
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.service import FIRST_RETRY, FleetService
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.engine_harness import START
from tests.fleets import NEW, OLD, build_fleet

HOSTS = {"a1": {}, "b1": {}, "c1": {}}
# c depends on a: planned after it in every round
GROUPS = {
    "a": {"hosts": ["a1"]},
    "b": {"hosts": ["b1"]},
    "c": {"hosts": ["c1"], "dependsOn": ["a"]},
}


@dataclass
class Running:
    service: FleetService
    clock: ManualClock
    registry: CollectorRegistry
    requeues: list[tuple[str, datetime | None]]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    db = tmp_path / "state.sqlite"
    store, reports = Store(db), SqliteReportStore(db)
    clock, registry = ManualClock(START), CollectorRegistry()
    service = FleetService(
        build_fleet(GROUPS, HOSTS), store, reports, clock, OperationalMetrics(registry)
    )
    requeues: list[tuple[str, datetime | None]] = []
    service.requeue_listeners.append(lambda group, when: requeues.append((group, when)))
    yield Running(service, clock, registry, requeues)
    store.close()
    reports.close()


def failing(monkeypatch: pytest.MonkeyPatch, group: str, error: Exception) -> None:
    real = planner.plan_group

    def flaky(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        if spec.name == group:
            raise error
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(engine_module, "plan_group", flaky)


def errors(r: Running, group: str) -> float | None:
    return r.registry.get_sample_value("fleet_reconcile_errors_total", {"group": group})


def test_a_new_fleet_plans_every_group_it_touches_dependencies_first(running: Running) -> None:
    assert set(running.service.plans) == {"a", "b", "c"}  # the first revision, at start
    before = dict(running.service.plans)
    running.requeues.clear()
    running.service.use_fleet(
        build_fleet(GROUPS, HOSTS, streams={"main": "4a" * 32}, revision="rev-2")
    )
    assert set(running.service.plans) == {"a", "b", "c"}
    order = [group for group, _ in running.requeues]
    assert order.index("a") < order.index("c")
    assert all(running.service.plans[g] is not before[g] for g in "abc")  # all moved


def test_a_revision_that_changes_nothing_a_group_uses_plans_nothing(running: Running) -> None:
    before = dict(running.service.plans)
    running.requeues.clear()
    running.service.use_fleet(build_fleet(GROUPS, HOSTS, revision="rev-2"))
    assert running.requeues == []
    assert all(running.service.plans[g] is before[g] for g in "abc")


def test_a_failing_group_is_contained_counted_and_retried_with_backoff(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    r = running
    failing(monkeypatch, "a", RuntimeError("boom"))
    r.requeues.clear()
    r.service.plans.clear()

    r.service.reconcile_all()

    assert set(r.service.plans) == {"b", "c"}  # the others are planned all the same
    failure = r.service.failures["a"]
    assert isinstance(failure.error, RuntimeError)
    assert (failure.attempts, failure.retry_at) == (1, START + FIRST_RETRY)
    assert ("a", START + FIRST_RETRY) in r.requeues  # a retry is asked for, not lost
    assert r.service.next_look("a") == START + FIRST_RETRY
    assert errors(r, "a") == 1.0
    assert "planning group a failed (attempt 1" in caplog.text
    assert "RuntimeError: boom" in caplog.text  # a bug: logged with its traceback

    r.service.look_again("a")  # the retry fails again: it backs off further
    assert r.service.failures["a"].retry_at == START + 2 * FIRST_RETRY
    assert errors(r, "a") == 2.0

    monkeypatch.undo()
    r.clock.advance(2 * FIRST_RETRY)
    r.service.look_again("a")
    assert "a" not in r.service.failures
    assert set(r.service.plans) == {"a", "b", "c"}


def test_the_worlds_fault_reaches_the_caller_that_must_answer(
    running: Running, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing(monkeypatch, "b", StoreUnavailable("disk full"))
    with pytest.raises(StoreUnavailable):
        running.service.reconcile("b")  # the API turns this into a 503
    assert "disk full" in caplog.text
    assert "Traceback" not in caplog.text  # the world's fault: no traceback


def test_reads_never_plan(running: Running) -> None:
    store = running.service.store
    events = len(store.events())
    before = running.service.current_plan("a")
    running.clock.advance(timedelta(days=30))
    assert running.service.current_plan("a") is before
    assert running.service.next_look("a") == (before.requeue_at if before else None)
    running.service.promotion_checks()
    assert len(store.events()) == events


def test_a_group_that_left_the_fleet_is_not_looked_at_again(running: Running) -> None:
    running.service.use_fleet(build_fleet({"b": GROUPS["b"]}, HOSTS))
    running.requeues.clear()
    running.service.look_again("a")
    assert running.requeues == []
    assert "a" not in running.service.plans


def test_taking_a_group_over_never_replaces_a_newer_report_with_a_stored_one(
    running: Running,
) -> None:
    """Replicas: the reports a replica reads when it takes a group over were read while the
    lease was already its own; a host that reported here meanwhile keeps its newer report
    (tests/test_failover.py found a host told to reboot again from the older one)."""
    service = running.service
    older = HostObservation("a1", START, OLD, "boot-1", Greenboot.GREEN, NEW)
    newer = HostObservation("a1", START + timedelta(seconds=5), OLD, "boot-2", Greenboot.GREEN)
    service.observed["a1"] = newer
    service.adopt("a", {"a1": older})
    assert service.observed["a1"] is newer
    service.observed["a1"] = older
    service.adopt("a", {"a1": newer})
    assert service.observed["a1"] is newer
