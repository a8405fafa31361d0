"""Rule 16, over several passes: a host whose agent holds an allowed reboot back to drain it.

The engine on a real SQLite file with simulated hosts, one of which runs a pre-reboot command
that fails while it has active calls; then the service, fed the agent's JSON reports, for the
timeout that fires with no report (the group's look-again time), and a restart in the middle
of a drain (the reports replayed, or only the decision's basis if the batch was lost).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.observed import Greenboot
from reconciler.rollout.planner import Action, HostState
from reconciler.rollout.reasons import ReasonCode
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport
from reconciler.serve.service import FleetService
from reconciler.state import reports as reports_module
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.engine_harness import START, BusyHost, Harness
from tests.fleets import NEW, OLD, build_fleet
from tests.state_backends import harness_on_both_stores
from tests.test_api import report

MIN = timedelta(minutes=1)
HOSTS = {"h1": {}, "h2": {}, "h3": {}}
POLICY = {
    "waves": ["100%"],
    "soakTime": "0s",
    "healthTimeout": "20m",
    "drainTimeout": "30m",
    "staleAfter": "1d",
    "skipStaleAfter": "2d",
    "rebootBudget": {"maxUnavailable": 1},
}
GROUP = {"hosts": list(HOSTS), "canaries": list(HOSTS), "rollout": POLICY}


def busy_harness(tmp_path: Path, calls: int = 3) -> tuple[Harness, BusyHost]:
    h = Harness(tmp_path, {"g": GROUP}, HOSTS)
    busy = BusyHost("h1", OLD, calls=calls)
    h.sim.hosts["h1"] = busy
    return h, busy


def updating_now(h: Harness) -> set[str]:
    """Hosts that hold a slot of the reboot budget in the last plan."""
    plan = h.sim.last_plans["g"]
    return {
        name
        for name, p in plan.hosts.items()
        if p.state in (HostState.UPDATING, HostState.DRAINING)
    }


@pytest.mark.usefixtures("harness_on_both_stores")
def test_a_draining_host_holds_the_only_slot_then_reboots_once_drained(tmp_path: Path) -> None:
    h, busy = busy_harness(tmp_path)
    for _ in range(10):
        h.step()
        assert len(updating_now(h)) <= 1
    plan = h.sim.last_plans["g"]
    assert plan.hosts["h1"].state is HostState.DRAINING
    assert plan.hosts["h1"].action is Action.REBOOT
    assert "3 active calls" in plan.hosts["h1"].reason.message
    assert [d.host for d in h.kinds(DecisionKind.REBOOT_ALLOWED)] == ["h1"]
    [started] = h.kinds(DecisionKind.HOST_DRAINING, "h1")
    assert busy.deferred_since is not None
    assert started.at > busy.deferred_since
    assert not h.kinds(DecisionKind.HOST_FAILED)  # 10 minutes: past no timeout yet

    busy.calls = 0  # the calls ended: the command passes and the agent reboots
    h.run(10 * MIN)
    assert busy.booted == NEW
    assert len(busy.reboots_at) == 1
    assert h.sim.last_plans["g"].hosts["h1"].state is HostState.IN_SYNC
    assert next(d.host for d in h.kinds(DecisionKind.HOST_SUCCEEDED)) == "h1"
    assert "h2" in [d.host for d in h.kinds(DecisionKind.REBOOT_ALLOWED)]


@pytest.mark.usefixtures("harness_on_both_stores")
def test_health_timeout_counts_from_the_end_of_the_drain(tmp_path: Path) -> None:
    """A drain longer than the health timeout does not fail the host once it reboots."""
    h, busy = busy_harness(tmp_path)
    busy.greenboot_after_boot = Greenboot.UNKNOWN  # greenboot takes its time after the boot
    h.run(25 * MIN)  # draining for more than the 20-minute health timeout
    assert h.sim.last_plans["g"].hosts["h1"].state is HostState.DRAINING
    busy.calls = 0
    h.run(5 * MIN)
    assert busy.booted == NEW
    [drained] = h.kinds(DecisionKind.HOST_DRAINED, "h1")
    assert not h.kinds(DecisionKind.HOST_FAILED)
    busy.greenboot = Greenboot.GREEN
    h.step()
    assert next(d.host for d in h.kinds(DecisionKind.HOST_SUCCEEDED)) == "h1"
    assert h.kinds(DecisionKind.HOST_SUCCEEDED, "h1")[0].at - drained.at < 20 * MIN


@pytest.mark.usefixtures("harness_on_both_stores")
def test_a_host_that_never_drains_fails_and_the_rollout_goes_on(tmp_path: Path) -> None:
    h, busy = busy_harness(tmp_path)
    h.run(3 * 60 * MIN)
    [failed] = h.kinds(DecisionKind.HOST_FAILED)
    [started] = h.kinds(DecisionKind.HOST_DRAINING, "h1")
    assert failed.host == "h1"
    assert failed.reason.code is ReasonCode.DRAIN_TIMEOUT
    assert failed.reason.message == "h1 did not drain within 30m: 3 active calls"
    assert started.since is not None
    assert failed.at == started.since + 30 * MIN
    assert not h.kinds(DecisionKind.ROLLOUT_HALTED)
    assert [d.host for d in h.kinds(DecisionKind.HOST_SUCCEEDED)] == ["h2", "h3"]
    [completed] = h.kinds(DecisionKind.ROLLOUT_COMPLETED)
    assert "2 of 3 hosts" in completed.reason.message
    assert busy.booted == OLD
    assert busy.staged == NEW
    assert not busy.reboots_at
    assert h.sim.last_plans["g"].hosts["h1"].state is HostState.FAILED


# -- the service: the agent's reports, the look-again time, restarts ---------------------------

SERVICE_GROUPS = {"g": {**GROUP, "hosts": ["c1", "c2"], "canaries": ["c1", "c2"]}}
SERVICE_HOSTS = {"c1": {}, "c2": {}}


@dataclass
class Opened:
    service: FleetService
    store: Store
    reports: SqliteReportStore

    def post(self, host: str, **fields: Any) -> dict[str, Any]:
        answer = self.service.ingest(host, AgentReport.model_validate(report(**fields)))
        return answer.model_dump()


@pytest.fixture
def open_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Reports stay queued until flushed by hand, so a test chooses what a crash loses.
    monkeypatch.setattr(reports_module, "FLUSH_AFTER_SECONDS", 3600.0)
    monkeypatch.setattr(reports_module, "FLUSH_EVERY", 10**6)
    clock = ManualClock(START)
    opened: list[Opened] = []

    def open_() -> Opened:
        db = tmp_path / "state.sqlite"
        store, reports = Store(db), SqliteReportStore(db)
        fleet = build_fleet(SERVICE_GROUPS, SERVICE_HOSTS)
        metrics = OperationalMetrics(CollectorRegistry())
        opened.append(Opened(FleetService(fleet, store, reports, clock, metrics), store, reports))
        return opened[-1]

    yield open_
    for each in opened:
        each.store.close()


def deferred(since: datetime, message: str = "3 active calls") -> dict[str, Any]:
    return {"since": since.isoformat(), "message": message, "exitCode": 1, "timedOut": False}


def start_draining(first: Opened) -> datetime:
    """c1 is allowed to reboot; a minute later c2 waits for the budget and c1's agent
    defers its reboot. Returns when the drain began."""
    clock = first.service.clock
    assert isinstance(clock, ManualClock)
    assert first.post("c1")["action"] == "stage"
    assert first.post("c2")["action"] == "stage"
    assert first.post("c1", staged=NEW)["action"] == "reboot"
    clock.advance(MIN)
    assert first.post("c2", staged=NEW)["reason"]["code"] == "waiting_for_budget"
    since = clock.now()
    answer = first.post("c1", staged=NEW, rebootDeferred=deferred(since))
    assert (answer["state"], answer["action"], answer["reason"]["code"]) == (
        "draining",
        "reboot",
        "draining",
    )
    return since


def test_the_drain_timeout_fires_at_the_look_again_time_without_a_report(
    open_service: Any,
) -> None:
    first = open_service()
    since = start_draining(first)
    service, clock = first.service, first.service.clock
    assert service.next_look("g") == since + 30 * MIN
    clock.advance(since + 30 * MIN - clock.now())
    service.look_again("g")  # what the daemon's timer does then
    plan = service.current_plan("g")
    assert plan is not None
    assert plan.hosts["c1"].state is HostState.FAILED
    assert plan.hosts["c1"].reason.code is ReasonCode.DRAIN_TIMEOUT
    assert plan.hosts["c2"].action is Action.REBOOT  # the slot went to the next host
    failures = first.store.count_events("host_failed")
    assert failures == [("g", "drain_timeout", 1)]


@pytest.mark.parametrize("batch_lost", [False, True], ids=["reports replayed", "batch lost"])
def test_a_restart_keeps_the_drain_and_its_deadline(open_service: Any, batch_lost: bool) -> None:
    first = open_service()
    since = start_draining(first)
    if not batch_lost:
        first.reports.flush()
    # kill -9; the decision `host_draining` and the report it was based on are in the store.

    second = open_service()
    plan = second.service.reconcile("g")
    assert plan.hosts["c1"].state is HostState.DRAINING
    assert plan.hosts["c2"].action is not Action.REBOOT
    if not batch_lost:  # else c2's report that it staged the target is lost with the batch
        assert plan.hosts["c2"].reason.code is ReasonCode.WAITING_FOR_BUDGET
    assert second.service.next_look("g") == since + 30 * MIN
    kinds = [e.kind for e in second.store.events("g") if e.host == "c1"]
    assert kinds.count(DecisionKind.HOST_DRAINING) == 1
    observed = second.service.observed["c1"].reboot_deferred
    assert observed is not None
    assert observed.message == "3 active calls"


def test_a_deferral_that_ends_without_a_reboot_is_a_drain_that_ended(open_service: Any) -> None:
    first = open_service()
    start_draining(first)
    first.service.clock.advance(MIN)  # type: ignore[attr-defined]
    answer = first.post("c1", staged=NEW)  # the command passed; the agent reboots next
    assert (answer["state"], answer["action"]) == ("updating", "reboot")
    kinds = [e.kind for e in first.store.events("g") if e.host == "c1"]
    assert kinds[-2:] == [DecisionKind.HOST_DRAINING, DecisionKind.HOST_DRAINED]


__all__ = ["harness_on_both_stores"]  # the fixture, for pytest
