"""Health checks in a prediction: each passes at every evaluation.

A prediction assumes every host succeeds, and every health check with it. As the daemon
does (:mod:`reconciler.serve.healthgates`), the soaking wave's checks are evaluated from the
soak's start and then every `interval`; here each evaluation passes, with a value that meets
the check's conditions, so a gate holds the next wave exactly as long as its
`consecutiveSuccesses` take.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.rollout.gates import GateSample, classify
from reconciler.rollout.planner import GroupPlan


def _evaluation_times(plan: GroupPlan, until: datetime) -> list[tuple[str, datetime]]:
    """Each health check of the soaking wave evaluated at the soak's start, then every
    `interval`, up to ``until``: (check, when)."""
    gate = plan.gate
    if gate is None or not gate.blocking:
        return []
    times = []
    for check in plan.spec.health_checks:
        at = gate.since
        while at <= until:
            times.append((check.name, at))
            at += check.interval
    return times


def passing_evaluations(
    plan: GroupPlan, known: Sequence[GateSample], now: datetime
) -> list[GateSample]:
    """The evaluations of ``plan``'s gate made by ``now`` and not in ``known``, all passing:
    a prediction assumes every host succeeds, and every health check with it."""
    have = {(s.check, s.at) for s in known}
    checks = {check.name: check for check in plan.spec.health_checks}
    return [
        passing_sample(checks[name], at)
        for name, at in sorted(_evaluation_times(plan, now), key=lambda e: (e[1], e[0]))
        if (name, at) not in have
    ]


def passing_sample(check: HealthCheck, at: datetime) -> GateSample:
    """An evaluation of ``check`` that passes (the fleet repo's validation refuses a check
    that no value can pass)."""
    value = check.passing_value()
    assert value is not None, f"no value passes health check {check.name}"
    outcome, worst, detail = classify(check, [value], None)
    return GateSample(check.name, at, outcome, worst, f"assumed: {detail}")


def evaluations_due(plan: GroupPlan, now: datetime) -> bool:
    return (
        plan.gate is not None
        and bool(plan.gate.blocking)
        and any(at == now for _, at in _evaluation_times(plan, now))
    )


def next_evaluation(plan: GroupPlan, now: datetime) -> datetime | None:
    """When the soaking wave's blocked gate is evaluated next."""
    gate = plan.gate
    if gate is None or not gate.blocking:
        return None
    upcoming = []
    for check in plan.spec.health_checks:
        steps = (now - gate.since) // check.interval + 1
        upcoming.append(gate.since + steps * check.interval)
    return min(upcoming, default=None)
