"""Health gates in the planner (docs/health-gates.md, docs/rollouts.md rule 17): a wave's soak
ends only when each check passed over it; a failed check halts like a greenboot failure, with
the query's value and the threshold in the reason; a dry run never blocks.

Evaluations enter a pass as data (``gate_samples``), so every case here is one pure pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest

from reconciler.rollout.decisions import DecisionKind as K
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.rollout.planner import GroupPhase, GroupPlan, plan_group
from reconciler.rollout.reasons import ReasonCode as R
from reconciler.rollout.state import GroupState
from tests.planner_builders import MIN, NOW, SUCCEEDED, TARGET, reports, rollout, running, spec

SOAK_DONE = NOW - 40 * MIN  # wave 1 was done then; its 30-minute soak ended 10 minutes ago


def check(**fields: Any) -> dict[str, Any]:
    return {
        "name": "call-failures",
        "query": 'sum(rate(sip_calls_failed_total{instance=~"$hosts"}[5m]))',
        "failureCondition": ">= 0.05",
        "successCondition": "< 0.02",
        "interval": "1m",
        "consecutiveSuccesses": 3,
        **fields,
    }


def gated(**fields: Any) -> Any:
    return spec(rollout={"waves": [1, "100%"], "soakTime": "30m"}, healthChecks=[check(**fields)])


GATED = gated()


def soaked(of: Any = GATED, **changes: Any) -> GroupState:
    """Wave 1 (h1) done and updated at SOAK_DONE; wave 2 not open."""
    state = rollout(of, {"h1": SUCCEEDED}, done={0: SOAK_DONE})
    assert state.rollout is not None
    return dataclasses.replace(state, rollout=dataclasses.replace(state.rollout, **changes))


def samples(*outcomes: tuple[int, GateOutcome, float | None]) -> list[GateSample]:
    """(minutes after the wave was done, outcome, value) -> samples of `call-failures`."""
    return [
        GateSample("call-failures", SOAK_DONE + minutes * MIN, outcome, value, f"value {value}")
        for minutes, outcome, value in outcomes
    ]


OK, BAD, NONE, MEH = (
    GateOutcome.SUCCESS,
    GateOutcome.FAILURE,
    GateOutcome.INCONCLUSIVE,
    GateOutcome.NEUTRAL,
)


def plan(
    state: GroupState,
    gate_samples: Sequence[GateSample],
    of: Any = GATED,
    now: datetime = NOW,
) -> GroupPlan:
    observed = reports(of, h1=running(TARGET))
    empty: Mapping[str, Mapping[str, datetime]] = {}
    return plan_group(of, state, observed, empty, now, gate_samples=gate_samples)


def kinds(result: GroupPlan) -> list[K]:
    """The rollout's decisions (an opened wave also offers the target to its hosts)."""
    return [d.kind for d in result.decisions if d.kind is not K.HOST_OFFERED]


def test_a_soaked_wave_opens_the_next_once_its_checks_passed() -> None:
    result = plan(soaked(), samples((31, OK, 0.01), (32, OK, 0.01), (33, OK, 0.0)))
    assert kinds(result) == [K.WAVE_OPENED]
    assert "health checks passed: call-failures" in result.decisions[0].reason.message


def test_the_soak_time_alone_is_not_enough() -> None:
    result = plan(soaked(), samples((31, OK, 0.01), (32, MEH, 0.03), (33, OK, 0.01)))
    assert kinds(result) == []
    assert result.status.phase is GroupPhase.SOAKING
    assert result.status.reason.code is R.WAITING_FOR_HEALTH_CHECKS
    assert "call-failures" in result.status.reason.message
    # What the daemon evaluates next: the soaking wave's hosts, since the soak began.
    assert result.gate is not None
    assert (result.gate.wave, result.gate.hosts, result.gate.since) == (0, ("h1",), SOAK_DONE)


def test_successes_during_the_soak_count_but_the_wave_waits_for_its_soak_time() -> None:
    early = NOW - 35 * MIN  # 5 minutes into the 30-minute soak
    result = plan(soaked(), samples((1, OK, 0.0), (2, OK, 0.0), (3, OK, 0.0)), now=early + 1 * MIN)
    assert kinds(result) == []
    assert result.status.reason.code is R.SOAKING
    assert result.requeue_at == SOAK_DONE + 30 * MIN
    assert plan(soaked(), samples((1, OK, 0.0), (2, OK, 0.0), (3, OK, 0.0))).decisions


def test_a_failed_check_halts_the_rollout_with_value_and_threshold() -> None:
    result = plan(soaked(), samples((5, OK, 0.01), (6, BAD, 0.081)), now=SOAK_DONE + 7 * MIN)
    assert kinds(result) == [K.ROLLOUT_HALTED]
    reason = result.decisions[0].reason
    assert reason.code is R.HEALTH_CHECK_FAILED
    assert "call-failures" in reason.message
    assert "0.081" in reason.message
    assert ">= 0.05" in reason.message
    assert result.status.phase is GroupPhase.HALTED
    assert result.gate is None  # a halted rollout is not evaluated further


def test_failures_before_the_soak_began_do_not_count() -> None:
    result = plan(soaked(), samples((-5, BAD, 0.2), (31, OK, 0.0), (32, OK, 0.0), (33, OK, 0.0)))
    assert kinds(result) == [K.WAVE_OPENED]


def test_after_a_resume_only_evaluations_since_count() -> None:
    resumed = soaked(failures_counted_since=SOAK_DONE + 20 * MIN)
    found = samples((10, BAD, 0.2), (31, OK, 0.0), (32, OK, 0.0), (33, OK, 0.0))
    assert kinds(plan(resumed, found)) == [K.WAVE_OPENED]
    assert kinds(plan(soaked(), found)) == [K.ROLLOUT_HALTED]


def test_a_failure_limit_above_one_tolerates_fewer_failures() -> None:
    tolerant = gated(failureLimit=2)
    found = samples((5, BAD, 0.2), (31, OK, 0.0), (32, OK, 0.0), (33, OK, 0.0))
    assert kinds(plan(soaked(tolerant), found, tolerant)) == [K.WAVE_OPENED]
    found = samples((5, BAD, 0.2), (6, BAD, 0.3))
    assert kinds(plan(soaked(tolerant), found, tolerant)) == [K.ROLLOUT_HALTED]


def test_a_dry_run_is_recorded_but_never_blocks() -> None:
    dry = gated(dryRun=True)
    result = plan(soaked(dry), samples((5, BAD, 0.3), (6, BAD, 0.4)), dry)
    assert kinds(result) == [K.WAVE_OPENED]
    assert "health checks passed" not in result.decisions[0].reason.message


@pytest.mark.parametrize(
    ("when", "expected"), [("halt", [K.ROLLOUT_HALTED]), ("alert", [])], ids=["halt", "alert"]
)
def test_inconclusive_past_the_limit_halts_or_keeps_waiting(when: str, expected: list[K]) -> None:
    of = gated(inconclusiveLimit=3, whenInconclusive=when)
    result = plan(soaked(of), samples((31, NONE, None), (32, NONE, None), (33, NONE, None)), of)
    assert kinds(result) == expected
    if when == "alert":
        assert result.status.reason.code is R.WAITING_FOR_HEALTH_CHECKS
        assert result.gate is not None
        assert result.gate.blocking[0].status == "stalled"


def test_inconclusive_below_the_limit_waits_and_resumes_when_data_returns() -> None:
    waiting = samples((31, NONE, None), (32, NONE, None))
    assert kinds(plan(soaked(), waiting)) == []
    back = [*waiting, *samples((33, OK, 0.0), (34, OK, 0.0), (35, OK, 0.0))]
    assert kinds(plan(soaked(), back)) == [K.WAVE_OPENED]


def test_a_group_without_checks_is_not_gated() -> None:
    plain = spec(rollout={"waves": [1, "100%"], "soakTime": "30m"})
    result = plan(soaked(plain), samples((5, BAD, 0.9)), plain)
    assert kinds(result) == [K.WAVE_OPENED]
    assert result.gate is None
