"""Health gates: what a health check's results say, from one evaluation to a verdict.

Pure: the caller queries Prometheus, stores each evaluation as a :class:`GateSample`, and
hands the samples back here with the time the gate opened. A wave's gate
(:func:`gate_verdict`) counts failures over the whole soak, so a failure is not forgotten
once it passes; a promotion's gate (:func:`stream_gate_verdict`) follows the latest result,
so a build that starts failing is not promoted until it passes again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reconciler.fleetrepo.healthchecks import Condition, HealthCheck


class GateOutcome(StrEnum):
    """What one evaluation of a check said."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"  # met neither condition: not a failure, but restarts the successes
    INCONCLUSIVE = "inconclusive"  # no data, NaN, or Prometheus did not answer


@dataclass(frozen=True, slots=True)
class GateSample:
    """One stored evaluation of a check."""

    check: str
    at: datetime
    outcome: GateOutcome
    value: float | None  # the worst value for the check's conditions; None when inconclusive
    detail: str  # "0.031 >= 0.05 is false; 0.031 < 0.02 is false"


def classify(
    check: HealthCheck, values: Sequence[float] | None, error: str | None
) -> tuple[GateOutcome, float | None, str]:
    """The outcome of one evaluation of ``check`` whose query gave ``values`` (one per series,
    or one for a scalar), or failed with ``error``; with the worst value and a sentence.

    Failure if any value meets `failureCondition` (or, with only a `successCondition`, if any
    misses it); success if every value meets `successCondition` (or, with only a
    `failureCondition`, if none meets it); neutral otherwise.
    """
    if error is not None:
        return GateOutcome.INCONCLUSIVE, None, error
    if not values:
        return GateOutcome.INCONCLUSIVE, None, "the query returned no data"
    if any(math.isnan(value) for value in values):
        return GateOutcome.INCONCLUSIVE, None, "the query returned NaN"
    return _judge(check, values)


def _judge(check: HealthCheck, values: Sequence[float]) -> tuple[GateOutcome, float | None, str]:
    """:func:`classify` for values that are all numbers, at least one."""
    failure, success = check.failure_condition, check.success_condition
    clauses: list[str] = []
    # For each condition, the one value that decides it: the value most likely to meet the
    # failure condition meets it iff any value does; the value least likely to meet the
    # success condition meets it iff every value does.
    worst = failure.extreme(values, meeting=True) if failure is not None else None
    weakest = success.extreme(values, meeting=False) if success is not None else None
    if failure is not None and worst is not None:
        clauses.append(_clause(worst, failure))
    if success is not None and weakest is not None:
        clauses.append(_clause(weakest, success))
    detail = "; ".join(clauses) + (f" (worst of {len(values)} series)" if len(values) > 1 else "")
    if failure is not None and worst is not None and failure.met_by(worst):
        return GateOutcome.FAILURE, worst, detail
    if success is None or weakest is None:  # only a failure condition, and no value meets it
        return GateOutcome.SUCCESS, worst, detail
    if success.met_by(weakest):
        return GateOutcome.SUCCESS, weakest, detail
    if failure is None:  # only a success condition: missing it is a failure
        return GateOutcome.FAILURE, weakest, detail
    return GateOutcome.NEUTRAL, weakest, detail


def _clause(value: float, condition: Condition) -> str:
    met = "true" if condition.met_by(value) else "false"
    return f"{_value(value)} {condition} is {met}"


def _value(value: float) -> str:
    """An observed value to six significant digits: reasons are read, not recomputed."""
    return f"{value:.6g}"


class GateStatus(StrEnum):
    """Where a check's gate stands."""

    PENDING = "pending"  # not enough successes in a row yet
    PASSED = "passed"
    FAILED = "failed"
    STALLED = "stalled"  # inconclusive past its limit, with `whenInconclusive: alert`


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """A check's gate over the evaluations that count, and why, in a sentence."""

    check: str
    status: GateStatus
    dry_run: bool  # recorded and shown, never blocks
    failures: int
    consecutive_successes: int
    consecutive_inconclusive: int
    last: GateSample | None
    reason: str

    @property
    def blocks(self) -> bool:
        """Whether this gate holds a wave or a promotion back."""
        return not self.dry_run and self.status is not GateStatus.PASSED

    @property
    def halts(self) -> bool:
        """Whether this gate stops the rollout (a failure that is not a dry run)."""
        return not self.dry_run and self.status is GateStatus.FAILED


def gate_verdict(check: HealthCheck, samples: Sequence[GateSample], since: datetime) -> GateVerdict:
    """A wave's gate: ``check``'s samples taken at or after ``since`` (when the soak began),
    in time order; samples of other checks are ignored.

    Failed once `failureLimit` failures are seen, or once `inconclusiveLimit` inconclusive
    results in a row end the list under `whenInconclusive: halt` (stalled under `alert`);
    passed once the list ends in `consecutiveSuccesses` successes; pending otherwise.
    """
    window = _of_check(check, (s for s in samples if s.at >= since))
    tally = _Tally.of(window)
    if tally.failures >= check.failure_limit:
        failed = [s for s in window if s.outcome is GateOutcome.FAILURE]
        why = (
            f"{_failure_sentence(check, failed[-1])} in {tally.failures} of "
            f"{len(window)} evaluations, limit {check.failure_limit}"
        )
        return tally.verdict(check, GateStatus.FAILED, f"health check {check.name} failed: {why}")
    return _by_inconclusive_or_successes(check, tally)


def stream_gate_verdict(check: HealthCheck, samples: Sequence[GateSample]) -> GateVerdict:
    """A promotion's gate: ``check``'s samples (the caller picks the window), in time order.

    Failed while the latest success-or-failure is a failure, whatever came before: a later
    failure revokes a pass until the check passes again. Otherwise as :func:`gate_verdict`:
    stalled or failed by the inconclusive limit, passed on `consecutiveSuccesses` successes
    in a row at the end, pending else. `failureLimit` does not apply.
    """
    window = _of_check(check, samples)
    tally = _Tally.of(window)
    decisive = [s for s in window if s.outcome in (GateOutcome.SUCCESS, GateOutcome.FAILURE)]
    if decisive and decisive[-1].outcome is GateOutcome.FAILURE:
        why = (
            f"{_failure_sentence(check, decisive[-1])} at the latest result; "
            "blocks until it passes again"
        )
        return tally.verdict(check, GateStatus.FAILED, f"health check {check.name} failed: {why}")
    return _by_inconclusive_or_successes(check, tally)


def blocking(verdicts: Iterable[GateVerdict]) -> tuple[GateVerdict, ...]:
    """The verdicts that hold a wave or a promotion back: not passed, and not a dry run."""
    return tuple(verdict for verdict in verdicts if verdict.blocks)


def halting(verdicts: Iterable[GateVerdict]) -> tuple[GateVerdict, ...]:
    """The verdicts that stop a rollout: failed, and not a dry run."""
    return tuple(verdict for verdict in verdicts if verdict.halts)


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tally:
    """What the verdicts count over a window of samples."""

    failures: int
    consecutive_successes: int  # at the end of the window
    consecutive_inconclusive: int  # at the end of the window
    total: int
    last: GateSample | None

    @classmethod
    def of(cls, window: Sequence[GateSample]) -> _Tally:
        return cls(
            failures=sum(1 for s in window if s.outcome is GateOutcome.FAILURE),
            consecutive_successes=_trailing(window, GateOutcome.SUCCESS),
            consecutive_inconclusive=_trailing(window, GateOutcome.INCONCLUSIVE),
            total=len(window),
            last=window[-1] if window else None,
        )

    def verdict(self, check: HealthCheck, status: GateStatus, reason: str) -> GateVerdict:
        if check.dry_run:
            reason += " (dry run: recorded, never blocks)"
        return GateVerdict(
            check=check.name,
            status=status,
            dry_run=check.dry_run,
            failures=self.failures,
            consecutive_successes=self.consecutive_successes,
            consecutive_inconclusive=self.consecutive_inconclusive,
            last=self.last,
            reason=reason,
        )


def _by_inconclusive_or_successes(check: HealthCheck, tally: _Tally) -> GateVerdict:
    """The verdict once failures have had their say: the inconclusive limit, then passing."""
    name = check.name
    if tally.consecutive_inconclusive >= check.inconclusive_limit:
        assert tally.last is not None  # a run of at least one sample
        run = (
            f"no usable result in {tally.consecutive_inconclusive} evaluations in a row "
            f"(limit {check.inconclusive_limit}); last: {tally.last.detail}"
        )
        if check.when_inconclusive == "halt":
            return tally.verdict(check, GateStatus.FAILED, f"health check {name} failed: {run}")
        return tally.verdict(
            check,
            GateStatus.STALLED,
            f"health check {name} stalled: {run}; waiting, never advancing, until it answers",
        )
    if tally.consecutive_successes >= check.consecutive_successes:
        assert tally.last is not None  # a run of at least one sample
        assert tally.last.value is not None  # a success has a value
        return tally.verdict(
            check,
            GateStatus.PASSED,
            f"health check {name} passed: {_success_sentence(check, tally.last.value)} in "
            f"{tally.consecutive_successes} evaluations in a row, "
            f"{check.consecutive_successes} needed",
        )
    if tally.last is None:
        return tally.verdict(check, GateStatus.PENDING, f"health check {name} not evaluated yet")
    return tally.verdict(
        check,
        GateStatus.PENDING,
        f"health check {name} pending: {tally.consecutive_successes} of "
        f"{check.consecutive_successes} successes in a row; last {tally.last.outcome}: "
        f"{tally.last.detail}",
    )


def _of_check(check: HealthCheck, samples: Iterable[GateSample]) -> list[GateSample]:
    """``check``'s samples in time order (a stable sort: equal times keep their order)."""
    return sorted((s for s in samples if s.check == check.name), key=lambda s: s.at)


def _trailing(window: Sequence[GateSample], outcome: GateOutcome) -> int:
    """How many samples at the end of ``window`` in a row have ``outcome``."""
    count = 0
    for sample in reversed(window):
        if sample.outcome is not outcome:
            break
        count += 1
    return count


def _failure_sentence(check: HealthCheck, sample: GateSample) -> str:
    """ "value 0.031 >= 0.02 (failureCondition)", for a failed sample."""
    assert sample.value is not None  # a failure has a value
    value = _value(sample.value)
    failure = check.failure_condition
    if failure is not None and failure.met_by(sample.value):
        return f"value {value} {failure} (failureCondition)"
    return f"value {value} is not {check.success_condition} (successCondition)"


def _success_sentence(check: HealthCheck, value: float) -> str:
    """ "value 0.004 < 0.02 (successCondition)", for a successful sample."""
    if check.success_condition is not None:
        return f"value {_value(value)} {check.success_condition} (successCondition)"
    return f"value {_value(value)} is not {check.failure_condition} (failureCondition)"
