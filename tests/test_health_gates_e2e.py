"""Health gates against a real Prometheus scraping exporters the test controls.

A group of three call servers (c1 the canary) rolls out a new build through the real
service, its hosts reporting and obeying as agents do (tests/fleet_driver.py), in virtual
time; the gate runner queries a real Prometheus (tests/prometheus_harness.py) for the
canary's call-failure ratio, stores each evaluation, and the planner judges them:

- a failure ratio that rises halts the rollout, with the value and threshold in the reason;
- one that stays healthy lets the next wave open;
- Prometheus stopped mid-soak: inconclusive, the wave waits, and goes on once it is back;
- a promotion is blocked while its stream's gate fails and due once it passes again;
- a dry-run check is recorded but never blocks.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.clock import ManualClock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Stream
from reconciler.promotion.check import PromotionStatus
from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.gates import GateOutcome
from reconciler.rollout.planner import GroupPhase
from reconciler.rollout.reasons import ReasonCode
from reconciler.serve.healthgates import GateRunner
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.prometheus import PrometheusClient, PrometheusConnection
from reconciler.serve.service import FleetService
from reconciler.state.gatesamples import SqliteGateSamples, group_scope
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.fleet_driver import ReportingFleet
from tests.fleets import NEW, OLD, build_fleet
from tests.prometheus_harness import PrometheusServer, running_prometheus

HOSTS = ("c1", "c2", "c3")
METRIC = "sip_call_failure_ratio"
START = datetime.now(UTC).replace(microsecond=0)


def failure_check(**fields: Any) -> dict[str, Any]:
    return {
        "name": "call-failures",
        "query": f'max({METRIC}{{instance=~"$hosts"}})',
        "failureCondition": ">= 0.05",
        "successCondition": "< 0.02",
        "interval": "10s",
        "consecutiveSuccesses": 2,
        **fields,
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), HOSTS) as server:
        yield server


def set_failure_ratio(prometheus: PrometheusServer, value: float) -> None:
    """What the canary's telephony exporter says, once Prometheus has scraped it."""
    for host in HOSTS:
        prometheus.hosts[host].gauge(METRIC).set(value)
    prometheus.wait_for(
        f'{METRIC}{{instance="c1"}} == {value}', lambda result: len(result) == 1, timeout=30
    )


@dataclasses.dataclass
class Rollout:
    service: FleetService
    clock: ManualClock
    hosts: ReportingFleet
    runner: GateRunner
    gate_log: SqliteGateSamples

    def evaluate(self) -> int:
        """One round of the runner, then time moves past the checks' interval."""
        evaluated = asyncio.run(self.runner.evaluate_due())
        self.clock.advance(timedelta(seconds=10))
        return evaluated

    def status(self) -> Any:
        plan = self.service.current_plan("calls")
        assert plan is not None
        return plan.status

    def events(self, kind: DecisionKind) -> list[Any]:
        return [e for e in self.service.store.events(group="calls") if e.kind == kind.value]


def gated_fleet(
    check: dict[str, Any], streams: dict[str, Stream] | None = None, soak: str = "0s"
) -> Fleet:
    fleet = build_fleet(
        {
            "calls": {
                "hosts": list(HOSTS),
                "canaries": ["c1"],
                "rollout": {
                    "waves": [1, "100%"],
                    "soakTime": soak,
                    "healthTimeout": "30m",
                    "rebootBudget": {"maxUnavailable": 1},
                },
                "healthChecks": [check],
            }
        },
        {host: {"site": "a"} for host in HOSTS},
    )
    return fleet if streams is None else dataclasses.replace(fleet, streams=streams)


def start(tmp_path: Path, prometheus: PrometheusServer, fleet: Fleet) -> Rollout:
    db = tmp_path / "state.sqlite"
    clock = ManualClock(START)
    gate_log = SqliteGateSamples(db)
    service = FleetService(
        fleet, Store(db), SqliteReportStore(db), clock, OperationalMetrics(), gate_log=gate_log
    )
    hosts = ReportingFleet(service, clock, dict.fromkeys(HOSTS, OLD))
    client = PrometheusClient(PrometheusConnection(prometheus.url, timeout=5))
    return Rollout(service, clock, hosts, GateRunner(service, client.query, clock), gate_log)


def canary_updated(tmp_path: Path, prometheus: PrometheusServer, check: dict[str, Any]) -> Rollout:
    """The canary runs the new build, green: wave 1 is done and its soak (0 s) is over, so
    only the gate holds wave 2 back."""
    rollout = start(tmp_path, prometheus, gated_fleet(check))
    rollout.hosts.run(timedelta(minutes=20), dt=timedelta(minutes=1))
    assert rollout.hosts.hosts["c1"].booted == NEW
    assert rollout.hosts.hosts["c2"].booted == OLD
    status = rollout.status()
    assert (status.phase, status.reason.code) == (
        GroupPhase.SOAKING,
        ReasonCode.WAITING_FOR_HEALTH_CHECKS,
    )
    return rollout


def test_a_rising_failure_ratio_on_the_canary_halts_the_rollout(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    rollout = canary_updated(tmp_path, prometheus, failure_check())
    set_failure_ratio(prometheus, 0.2)
    assert rollout.evaluate() == 1
    status = rollout.status()
    assert status.phase is GroupPhase.HALTED
    [halt] = rollout.events(DecisionKind.ROLLOUT_HALTED)
    assert halt.code == ReasonCode.HEALTH_CHECK_FAILED.value
    assert "call-failures" in halt.message
    assert "0.2 >= 0.05" in halt.message
    rollout.hosts.run(timedelta(minutes=10), dt=timedelta(minutes=1))
    assert rollout.hosts.hosts["c2"].booted == OLD  # the halt held: nothing more was offered


def test_a_healthy_canary_lets_the_next_wave_open(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    rollout = canary_updated(tmp_path, prometheus, failure_check())
    set_failure_ratio(prometheus, 0.001)
    rollout.evaluate()
    assert rollout.status().reason.code is ReasonCode.WAITING_FOR_HEALTH_CHECKS  # 1 of 2
    rollout.evaluate()
    opened = rollout.events(DecisionKind.WAVE_OPENED)
    assert len(opened) == 2
    assert "health checks passed: call-failures" in opened[-1].message
    rollout.hosts.run(timedelta(minutes=40), dt=timedelta(minutes=1))
    assert {h.booted for h in rollout.hosts.hosts.values()} == {NEW}


def test_prometheus_down_mid_soak_is_inconclusive_and_the_wave_waits(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    rollout = canary_updated(tmp_path, prometheus, failure_check())
    set_failure_ratio(prometheus, 0.001)
    rollout.evaluate()  # one success
    prometheus.stop()
    try:
        rollout.evaluate()
        rollout.evaluate()
        samples = rollout.service.gate_samples[group_scope("calls")]
        assert [s.outcome for s in samples[-2:]] == [GateOutcome.INCONCLUSIVE] * 2
        assert "Prometheus" in samples[-1].detail or "connect" in samples[-1].detail
        assert rollout.status().reason.code is ReasonCode.WAITING_FOR_HEALTH_CHECKS
        assert len(rollout.events(DecisionKind.WAVE_OPENED)) == 1
    finally:
        prometheus.start()
    set_failure_ratio(prometheus, 0.001)
    rollout.evaluate()
    rollout.evaluate()
    assert len(rollout.events(DecisionKind.WAVE_OPENED)) == 2


def test_a_dry_run_check_is_recorded_but_never_blocks(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    set_failure_ratio(prometheus, 0.3)
    rollout = start(tmp_path, prometheus, gated_fleet(failure_check(dryRun=True), soak="1h"))
    rollout.hosts.run(timedelta(minutes=20), dt=timedelta(minutes=1))
    assert rollout.status().reason.code is ReasonCode.SOAKING
    rollout.evaluate()
    rollout.evaluate()
    stored = rollout.gate_log.since(START)[group_scope("calls")]
    assert [s.outcome for s in stored] == [GateOutcome.FAILURE] * 2  # evaluated, kept durably
    rollout.clock.advance(timedelta(hours=1))
    rollout.hosts.step(timedelta(0))
    assert len(rollout.events(DecisionKind.WAVE_OPENED)) == 2
    assert not rollout.events(DecisionKind.ROLLOUT_HALTED)


def test_a_promotion_waits_while_its_gate_fails_and_is_due_once_it_passes(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    def stream(name: str, commit: str, **fields: Any) -> Stream:
        body = {"remote": "os", "ref": f"os/{name}", "commit": commit, **fields}
        return Stream.model_validate(
            {"apiVersion": "ostree-fleet/v1alpha1", "kind": "Stream", "name": name, **body}
        )

    promotion = {
        "from": "main",
        "soakTime": "1m",
        "minHealthyHosts": 2,
        "healthChecks": [failure_check(name="fleet-call-failures")],
    }
    streams = {
        "main": stream("main", NEW),
        "production": stream("production", OLD, promotion=promotion),
    }
    fleet = gated_fleet(failure_check(dryRun=True), streams)
    set_failure_ratio(prometheus, 0.001)
    rollout = start(tmp_path, prometheus, fleet)
    rollout.hosts.run(timedelta(minutes=60), dt=timedelta(minutes=1))
    assert {h.booted for h in rollout.hosts.hosts.values()} == {NEW}

    def production() -> Any:
        [check] = rollout.service.promotion_checks()
        return check

    assert production().status is PromotionStatus.WAITING_FOR_HEALTH_CHECKS  # not evaluated yet
    set_failure_ratio(prometheus, 0.2)
    rollout.evaluate()
    check = production()
    assert check.status is PromotionStatus.WAITING_FOR_HEALTH_CHECKS
    assert "0.2 >= 0.05" in check.message
    set_failure_ratio(prometheus, 0.001)
    rollout.evaluate()
    rollout.evaluate()
    assert production().status is PromotionStatus.DUE
    set_failure_ratio(prometheus, 0.2)  # failing after it was found due revokes that
    rollout.evaluate()
    assert production().status is PromotionStatus.WAITING_FOR_HEALTH_CHECKS
