"""The demo's check that its real rollout matched the prediction (reconciler/demo/forecast.py)
is a check that can fail: a missing milestone, one out of order, or one too far off."""

from __future__ import annotations

from datetime import timedelta

from reconciler.demo.forecast import TOLERANCE, Step, compare

S = timedelta(seconds=1)
PREDICTED = [
    Step("lab wave 1 opened", 0 * S),
    Step("lab wave 1 done", 2 * S),
    Step("production promoted", 7 * S),
    Step("callservers wave 1 opened", 7 * S),
    Step("callservers halted", 15 * S),
]


def test_a_rollout_as_predicted_matches_even_with_ties_the_other_way_round() -> None:
    real = [
        Step("lab wave 1 opened", S / 10),
        Step("lab wave 1 done", 1.8 * S),
        Step("callservers wave 1 opened", 6.8 * S),  # a tie in the prediction
        Step("production promoted", 6.9 * S),
        Step("callservers halted", 13.5 * S),
    ]
    comparison = compare(PREDICTED, real)
    assert comparison.matches
    assert comparison.worst == 1.5 * S
    assert [row[0] for row in comparison.rows] == [step.what for step in PREDICTED]


def test_a_missing_an_extra_a_reordered_or_a_late_milestone_does_not_match() -> None:
    missing = compare(PREDICTED, PREDICTED[:-1])
    assert not missing.same_steps
    assert not missing.matches
    assert missing.rows[-1] == ("callservers halted", 15 * S, None)

    extra = compare(PREDICTED, [*PREDICTED, Step("callservers wave 2 opened", 16 * S)])
    assert not extra.matches

    swapped = [PREDICTED[0], Step("lab wave 1 done", 8 * S), *PREDICTED[2:]]
    reordered = compare(PREDICTED, swapped)
    assert reordered.same_steps
    assert not reordered.same_order
    assert not reordered.matches

    late = compare(PREDICTED, [*PREDICTED[:-1], Step("callservers halted", 15 * S + TOLERANCE + S)])
    assert late.same_order
    assert not late.matches
