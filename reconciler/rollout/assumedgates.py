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
    """The evaluations of the soaking wave's checks that its gate needs, up to ``until``:
    (check, when). Each check is evaluated at the soak's start and then every `interval`;
    as each passes, its gate needs no more than `consecutiveSuccesses` of them."""
    gate = plan.gate
    if gate is None or not gate.blocking:
        return []
    times = []
    for check in plan.spec.health_checks:
        for k in range(check.consecutive_successes):
            at = gate.since + k * check.interval
            if at > until:
                break
            times.append((check.name, at))
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


def _passes_at(plan: GroupPlan) -> datetime | None:
    """When the soaking wave's blocked gate has all the passing evaluations it needs: the
    last check's `consecutiveSuccesses`-th evaluation. The ones before it change nothing
    (the gate stays pending), so a prediction steps straight there."""
    gate = plan.gate
    if gate is None or not gate.blocking:
        return None
    return max(
        (
            gate.since + (check.consecutive_successes - 1) * check.interval
            for check in plan.spec.health_checks
        ),
        default=None,
    )


def evaluations_due(plan: GroupPlan, now: datetime) -> bool:
    """Whether the gate can pass now, with the evaluations made by now."""
    return _passes_at(plan) == now


def next_evaluation(plan: GroupPlan, now: datetime) -> datetime | None:
    """When the soaking wave's blocked gate can pass (None: not blocked, or already due)."""
    at = _passes_at(plan)
    return at if at is not None and at > now else None
