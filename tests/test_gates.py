"""Health gates: one evaluation's outcome, and a wave's and a promotion's verdict over many."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.rollout.gates import (
    GateOutcome,
    GateSample,
    GateStatus,
    GateVerdict,
    blocking,
    classify,
    gate_verdict,
    halting,
    stream_gate_verdict,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NAME = "call-failures"


def check(**fields: Any) -> HealthCheck:
    """A check named `call-failures`; with no condition given, success is `< 0.02`."""
    if not {"successCondition", "failureCondition"} & fields.keys():
        fields = {"successCondition": "< 0.02", **fields}
    return HealthCheck.model_validate({"name": NAME, "query": "sum(up)", **fields})


# ---------------------------------------------------------------------------------------------
# classify


@dataclass(frozen=True)
class Evaluation:
    name: str
    conditions: dict[str, str]
    values: list[float] | None
    outcome: GateOutcome
    value: float | None
    detail: str
    error: str | None = None


BOTH = {"successCondition": "< 0.02", "failureCondition": ">= 0.05"}
SUCCESS_ONLY = {"successCondition": "< 0.02"}
FAILURE_ONLY = {"failureCondition": ">= 0.05"}
NAN = float("nan")

EVALUATIONS = [
    Evaluation(
        "Prometheus down",
        BOTH,
        None,
        GateOutcome.INCONCLUSIVE,
        None,
        "Prometheus unreachable: connection refused",
        error="Prometheus unreachable: connection refused",
    ),
    Evaluation(
        "an error wins over values",
        BOTH,
        [0.01],
        GateOutcome.INCONCLUSIVE,
        None,
        "query timed out",
        error="query timed out",
    ),
    Evaluation(
        "no result", BOTH, None, GateOutcome.INCONCLUSIVE, None, "the query returned no data"
    ),
    Evaluation(
        "empty vector", BOTH, [], GateOutcome.INCONCLUSIVE, None, "the query returned no data"
    ),
    Evaluation("NaN", BOTH, [NAN], GateOutcome.INCONCLUSIVE, None, "the query returned NaN"),
    Evaluation(
        "one NaN series",
        BOTH,
        [0.01, NAN],
        GateOutcome.INCONCLUSIVE,
        None,
        "the query returned NaN",
    ),
    Evaluation("success", SUCCESS_ONLY, [0.01], GateOutcome.SUCCESS, 0.01, "0.01 < 0.02 is true"),
    Evaluation(
        "a missed success condition alone is a failure",
        SUCCESS_ONLY,
        [0.03],
        GateOutcome.FAILURE,
        0.03,
        "0.03 < 0.02 is false",
    ),
    Evaluation(
        "every series must succeed",
        SUCCESS_ONLY,
        [0.01, 0.031, 0.015],
        GateOutcome.FAILURE,
        0.031,
        "0.031 < 0.02 is false (worst of 3 series)",
    ),
    Evaluation(
        "no series meets the failure condition",
        FAILURE_ONLY,
        [0.01, 0.049],
        GateOutcome.SUCCESS,
        0.049,
        "0.049 >= 0.05 is false (worst of 2 series)",
    ),
    Evaluation(
        "any series meeting the failure condition fails",
        FAILURE_ONLY,
        [0.01, 0.07, 0.06],
        GateOutcome.FAILURE,
        0.07,
        "0.07 >= 0.05 is true (worst of 3 series)",
    ),
    Evaluation(
        "between the two conditions is neutral",
        BOTH,
        [0.031],
        GateOutcome.NEUTRAL,
        0.031,
        "0.031 >= 0.05 is false; 0.031 < 0.02 is false",
    ),
    Evaluation(
        "both: success",
        BOTH,
        [0.01],
        GateOutcome.SUCCESS,
        0.01,
        "0.01 >= 0.05 is false; 0.01 < 0.02 is true",
    ),
    Evaluation(
        "both: failure",
        BOTH,
        [0.01, 0.06],
        GateOutcome.FAILURE,
        0.06,
        "0.06 >= 0.05 is true; 0.06 < 0.02 is false (worst of 2 series)",
    ),
    Evaluation(
        "both: one neutral series makes the result neutral",
        BOTH,
        [0.01, 0.03],
        GateOutcome.NEUTRAL,
        0.03,
        "0.03 >= 0.05 is false; 0.03 < 0.02 is false (worst of 2 series)",
    ),
    Evaluation(
        "a lower bound",
        {"successCondition": ">= 0.99", "failureCondition": "< 0.9"},
        [0.995, 0.85],
        GateOutcome.FAILURE,
        0.85,
        "0.85 < 0.9 is true; 0.85 >= 0.99 is false (worst of 2 series)",
    ),
    Evaluation(
        "a scalar compared for equality",
        {"successCondition": "== 1"},
        [1.0],
        GateOutcome.SUCCESS,
        1.0,
        "1 == 1 is true",
    ),
    Evaluation(
        "infinity is a value",
        SUCCESS_ONLY,
        [math.inf],
        GateOutcome.FAILURE,
        math.inf,
        "inf < 0.02 is false",
    ),
]


@pytest.mark.parametrize("case", EVALUATIONS, ids=[e.name for e in EVALUATIONS])
def test_classify(case: Evaluation) -> None:
    outcome = classify(check(**case.conditions), case.values, case.error)
    assert outcome == (case.outcome, case.value, case.detail)


# ---------------------------------------------------------------------------------------------
# Verdicts

# The failure condition `>= 0.02` with the success condition `< 0.01`: the samples below are
# evaluations of this check.
CONDITIONS = {"successCondition": "< 0.01", "failureCondition": ">= 0.02"}
_RESULTS: dict[str, tuple[list[float] | None, str | None]] = {
    "S": ([0.004], None),
    "F": ([0.031], None),
    "N": ([0.015], None),
    "I": (None, "Prometheus unreachable: connection refused"),
}


def samples(pattern: str, start: datetime = T0, name: str = NAME) -> list[GateSample]:
    """One evaluation a minute from ``start``: S success, F failure, N neutral, I inconclusive."""
    evaluated = check(**CONDITIONS)
    made = []
    for index, letter in enumerate(pattern):
        outcome = classify(evaluated, *_RESULTS[letter])
        assert (
            outcome[0]
            is {
                "S": GateOutcome.SUCCESS,
                "F": GateOutcome.FAILURE,
                "N": GateOutcome.NEUTRAL,
                "I": GateOutcome.INCONCLUSIVE,
            }[letter]
        )
        made.append(GateSample(name, start + index * MINUTE, *outcome))
    return made


@dataclass(frozen=True)
class Gate:
    name: str
    pattern: str
    status: GateStatus
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)
    since: int = 0  # minutes after T0
    counts: tuple[int, int, int] | None = None  # failures, successes and inconclusive in a row


WAVE_GATES = [
    Gate("no sample", "", GateStatus.PENDING, "health check call-failures not evaluated yet"),
    Gate(
        "one success is enough by default",
        "S",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 1 "
        "evaluations in a row, 1 needed",
    ),
    Gate(
        "not yet enough successes",
        "SS",
        GateStatus.PENDING,
        "health check call-failures pending: 2 of 3 successes in a row; last success: "
        "0.004 >= 0.02 is false; 0.004 < 0.01 is true",
        {"consecutiveSuccesses": 3},
        counts=(0, 2, 0),
    ),
    Gate(
        "enough successes in a row",
        "SSS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 3 "
        "evaluations in a row, 3 needed",
        {"consecutiveSuccesses": 3},
        counts=(0, 3, 0),
    ),
    Gate(
        "a neutral result restarts the successes",
        "SSNSS",
        GateStatus.PENDING,
        "health check call-failures pending: 2 of 3 successes in a row; last success: "
        "0.004 >= 0.02 is false; 0.004 < 0.01 is true",
        {"consecutiveSuccesses": 3},
        counts=(0, 2, 0),
    ),
    Gate(
        "an inconclusive result restarts the successes",
        "SSISS",
        GateStatus.PENDING,
        "health check call-failures pending: 2 of 3 successes in a row; last success: "
        "0.004 >= 0.02 is false; 0.004 < 0.01 is true",
        {"consecutiveSuccesses": 3},
        counts=(0, 2, 0),
    ),
    Gate(
        "last result neutral",
        "SN",
        GateStatus.PENDING,
        "health check call-failures pending: 0 of 1 successes in a row; last neutral: "
        "0.015 >= 0.02 is false; 0.015 < 0.01 is false",
        counts=(0, 0, 0),
    ),
    Gate(
        "one failure fails by default",
        "SF",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 1 of 2 "
        "evaluations, limit 1",
        counts=(1, 0, 0),
    ),
    Gate(
        "a failure in the soak is not forgotten",
        "FSSS",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 1 of 4 "
        "evaluations, limit 1",
        {"consecutiveSuccesses": 3},
        counts=(1, 3, 0),
    ),
    Gate(
        "failures under the limit",
        "FSS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 2 "
        "evaluations in a row, 2 needed",
        {"failureLimit": 2, "consecutiveSuccesses": 2},
        counts=(1, 2, 0),
    ),
    Gate(
        "failures reach the limit",
        "FSF",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 2 of 3 "
        "evaluations, limit 2",
        {"failureLimit": 2},
        counts=(2, 0, 0),
    ),
    Gate(
        "samples before the soak began do not count",
        "FFSS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 2 "
        "evaluations in a row, 1 needed",
        since=2,
        counts=(0, 2, 0),
    ),
    Gate(
        "a sample taken as the soak began counts",
        "FFSS",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 1 of 3 "
        "evaluations, limit 1",
        since=1,
        counts=(1, 2, 0),
    ),
    Gate(
        "inconclusive under the limit",
        "SII",
        GateStatus.PENDING,
        "health check call-failures pending: 0 of 1 successes in a row; last inconclusive: "
        "Prometheus unreachable: connection refused",
        {"inconclusiveLimit": 3},
        counts=(0, 0, 2),
    ),
    Gate(
        "inconclusive at the limit, alert",
        "SIII",
        GateStatus.STALLED,
        "health check call-failures stalled: no usable result in 3 evaluations in a row "
        "(limit 3); last: Prometheus unreachable: connection refused; waiting, never "
        "advancing, until it answers",
        {"inconclusiveLimit": 3},
        counts=(0, 0, 3),
    ),
    Gate(
        "inconclusive at the limit, halt",
        "SIII",
        GateStatus.FAILED,
        "health check call-failures failed: no usable result in 3 evaluations in a row "
        "(limit 3); last: Prometheus unreachable: connection refused",
        {"inconclusiveLimit": 3, "whenInconclusive": "halt"},
        counts=(0, 0, 3),
    ),
    Gate(
        "inconclusive results not in a row",
        "IISII",
        GateStatus.PENDING,
        "health check call-failures pending: 0 of 1 successes in a row; last inconclusive: "
        "Prometheus unreachable: connection refused",
        {"inconclusiveLimit": 3, "whenInconclusive": "halt"},
        counts=(0, 0, 2),
    ),
    Gate(
        "an answer after inconclusive ones",
        "IIIIS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 1 "
        "evaluations in a row, 1 needed",
        {"inconclusiveLimit": 3, "whenInconclusive": "halt"},
        counts=(0, 1, 0),
    ),
    Gate(
        "a dry run fails all the same, and says it never blocks",
        "F",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 1 of 1 "
        "evaluations, limit 1 (dry run: recorded, never blocks)",
        {"dryRun": True},
    ),
]


def _verdict_counts(verdict: GateVerdict) -> tuple[int, int, int]:
    return verdict.failures, verdict.consecutive_successes, verdict.consecutive_inconclusive


@pytest.mark.parametrize("case", WAVE_GATES, ids=[g.name for g in WAVE_GATES])
def test_gate_verdict(case: Gate) -> None:
    the_check = check(**CONDITIONS, **case.fields)
    given_samples = samples(case.pattern)
    verdict = gate_verdict(the_check, given_samples, since=T0 + case.since * MINUTE)
    assert (verdict.status, verdict.reason) == (case.status, case.reason)
    assert verdict.check == NAME
    assert verdict.dry_run is the_check.dry_run
    assert verdict.last == (given_samples[-1] if given_samples else None)
    if case.counts is not None:
        assert _verdict_counts(verdict) == case.counts


def test_the_reason_names_the_value_and_the_threshold() -> None:
    """The sentence of the design, word for word."""
    the_check = check(successCondition="< 0.01", failureCondition=">= 0.02", failureLimit=2)
    verdict = gate_verdict(the_check, samples("FSF"), since=T0)
    assert verdict.reason == (
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) in 2 of 3 "
        "evaluations, limit 2"
    )


def test_a_failure_of_the_success_condition_alone_is_explained_as_such() -> None:
    the_check = check(successCondition="< 0.02")
    failed = GateSample(NAME, T0, GateOutcome.FAILURE, 0.031, "0.031 < 0.02 is false")
    assert gate_verdict(the_check, [failed], since=T0).reason == (
        "health check call-failures failed: value 0.031 is not < 0.02 (successCondition) in 1 "
        "of 1 evaluations, limit 1"
    )
    passed = GateSample(NAME, T0, GateOutcome.SUCCESS, 0.01, "0.01 >= 0.02 is false")
    only_failure = check(failureCondition=">= 0.02")
    assert gate_verdict(only_failure, [passed], since=T0).reason == (
        "health check call-failures passed: value 0.01 is not >= 0.02 (failureCondition) in 1 "
        "evaluations in a row, 1 needed"
    )


def test_samples_are_taken_in_time_order_and_other_checks_ignored() -> None:
    the_check = check(**CONDITIONS, consecutiveSuccesses=2)
    mixed = [*samples("SS", start=T0 + 5 * MINUTE), *samples("F", start=T0)]
    assert gate_verdict(the_check, mixed, since=T0 + MINUTE).status is GateStatus.PASSED
    # the failure at T0 is older than the successes: a stream's gate passes on them
    assert stream_gate_verdict(the_check, mixed).status is GateStatus.PASSED
    other = samples("FFF", name="other-check")
    assert gate_verdict(the_check, other, since=T0).status is GateStatus.PENDING
    assert stream_gate_verdict(the_check, other).last is None


STREAM_GATES = [
    Gate("no sample", "", GateStatus.PENDING, "health check call-failures not evaluated yet"),
    Gate(
        "successes in a row pass",
        "SSS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 3 "
        "evaluations in a row, 3 needed",
        {"consecutiveSuccesses": 3},
    ),
    Gate(
        "a later failure revokes the pass",
        "SSSF",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) at the "
        "latest result; blocks until it passes again",
        {"consecutiveSuccesses": 3},
        counts=(1, 0, 0),
    ),
    Gate(
        "one success after the failure is not yet a pass",
        "SSSFS",
        GateStatus.PENDING,
        "health check call-failures pending: 1 of 3 successes in a row; last success: "
        "0.004 >= 0.02 is false; 0.004 < 0.01 is true",
        {"consecutiveSuccesses": 3},
        counts=(1, 1, 0),
    ),
    Gate(
        "passing again after the failure",
        "SSSFSSS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 3 "
        "evaluations in a row, 3 needed",
        {"consecutiveSuccesses": 3},
        counts=(1, 3, 0),
    ),
    Gate(
        "a neutral result does not clear a failure",
        "FN",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) at the "
        "latest result; blocks until it passes again",
    ),
    Gate(
        "an inconclusive result does not clear a failure",
        "FI",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) at the "
        "latest result; blocks until it passes again",
    ),
    Gate(
        "a failure outranks the inconclusive limit",
        "FIII",
        GateStatus.FAILED,
        "health check call-failures failed: value 0.031 >= 0.02 (failureCondition) at the "
        "latest result; blocks until it passes again",
        {"inconclusiveLimit": 3},
    ),
    Gate(
        "the failure limit does not apply",
        "FFFFS",
        GateStatus.PASSED,
        "health check call-failures passed: value 0.004 < 0.01 (successCondition) in 1 "
        "evaluations in a row, 1 needed",
        {"failureLimit": 5},
        counts=(4, 1, 0),
    ),
    Gate(
        "inconclusive at the limit, alert",
        "SIII",
        GateStatus.STALLED,
        "health check call-failures stalled: no usable result in 3 evaluations in a row "
        "(limit 3); last: Prometheus unreachable: connection refused; waiting, never "
        "advancing, until it answers",
        {"inconclusiveLimit": 3},
    ),
    Gate(
        "inconclusive at the limit, halt",
        "SIII",
        GateStatus.FAILED,
        "health check call-failures failed: no usable result in 3 evaluations in a row "
        "(limit 3); last: Prometheus unreachable: connection refused",
        {"inconclusiveLimit": 3, "whenInconclusive": "halt"},
    ),
]


@pytest.mark.parametrize("case", STREAM_GATES, ids=[g.name for g in STREAM_GATES])
def test_stream_gate_verdict(case: Gate) -> None:
    verdict = stream_gate_verdict(check(**CONDITIONS, **case.fields), samples(case.pattern))
    assert (verdict.status, verdict.reason) == (case.status, case.reason)
    if case.counts is not None:
        assert _verdict_counts(verdict) == case.counts


# ---------------------------------------------------------------------------------------------
# What blocks


def _verdict(status: GateStatus, *, dry_run: bool = False) -> GateVerdict:
    return GateVerdict(f"{status}-{dry_run}", status, dry_run, 0, 0, 0, None, "why")


def test_only_passed_or_dry_run_verdicts_let_things_through() -> None:
    verdicts = [
        passed := _verdict(GateStatus.PASSED),
        failed := _verdict(GateStatus.FAILED),
        pending := _verdict(GateStatus.PENDING),
        stalled := _verdict(GateStatus.STALLED),
        *(_verdict(status, dry_run=True) for status in GateStatus),
    ]
    assert blocking(verdicts) == (failed, pending, stalled)
    assert halting(verdicts) == (failed,)
    assert not passed.blocks
    assert blocking([]) == halting([]) == ()


def test_a_dry_run_check_never_blocks_a_wave() -> None:
    dry = check(**CONDITIONS, dryRun=True)
    verdict = gate_verdict(dry, samples("FFF"), since=T0)
    assert (verdict.status, verdict.dry_run, verdict.blocks, verdict.halts) == (
        GateStatus.FAILED,
        True,
        False,
        False,
    )
    assert blocking([verdict]) == ()


# ---------------------------------------------------------------------------------------------
# Properties

patterns = st.text(alphabet="SFNI", max_size=12)
checks = st.builds(
    lambda successes, failures, inconclusive, when, dry: check(
        **CONDITIONS,
        consecutiveSuccesses=successes,
        failureLimit=failures,
        inconclusiveLimit=inconclusive,
        whenInconclusive=when,
        dryRun=dry,
    ),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 4),
    st.sampled_from(["alert", "halt"]),
    st.booleans(),
)


@given(checks, patterns, patterns)
def test_samples_before_the_soak_never_matter(
    the_check: HealthCheck, before: str, during: str
) -> None:
    since = T0 + len(before) * MINUTE
    with_history = samples(before + during)
    without = samples(during, start=since)
    assert gate_verdict(the_check, with_history, since) == gate_verdict(the_check, without, since)


@given(checks, patterns, patterns)
def test_a_failed_wave_stays_failed_within_its_soak(
    the_check: HealthCheck, first: str, later: str
) -> None:
    verdict = gate_verdict(the_check, samples(first), T0)
    if verdict.status is GateStatus.FAILED and verdict.failures >= the_check.failure_limit:
        after = gate_verdict(the_check, samples(first + later), T0)
        assert after.status is GateStatus.FAILED


@given(checks, patterns)
def test_a_promotion_follows_the_latest_results(the_check: HealthCheck, history: str) -> None:
    assert stream_gate_verdict(the_check, samples(history + "F")).status is GateStatus.FAILED
    passing = history + "S" * the_check.consecutive_successes
    assert stream_gate_verdict(the_check, samples(passing)).status is GateStatus.PASSED


@given(checks, patterns)
def test_a_gate_passes_only_on_successes_in_a_row(the_check: HealthCheck, pattern: str) -> None:
    for verdict in (
        gate_verdict(the_check, samples(pattern), T0),
        stream_gate_verdict(the_check, samples(pattern)),
    ):
        trailing = len(pattern) - len(pattern.rstrip("S"))
        assert (verdict.status is GateStatus.PASSED) <= (
            trailing >= the_check.consecutive_successes
        )
        assert verdict.blocks == (not the_check.dry_run and verdict.status is not GateStatus.PASSED)
