"""How a rollout ended, counted once: the table behind fleet_rollouts_finished_total."""

from __future__ import annotations

import pytest

from reconciler.rollout.decisions import DecisionKind, RolloutResult, rollout_results

HALTED = DecisionKind.ROLLOUT_HALTED
RESUMED = DecisionKind.ROLLOUT_RESUMED
COMPLETED = DecisionKind.ROLLOUT_COMPLETED
SUPERSEDED = DecisionKind.ROLLOUT_SUPERSEDED


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ([], None),
        ([HALTED], None),  # halted is not an end: it may be resumed
        ([COMPLETED], RolloutResult.COMPLETED),
        ([SUPERSEDED], RolloutResult.SUPERSEDED),
        ([HALTED, SUPERSEDED], RolloutResult.HALTED),  # once, as halted (was: twice)
        ([HALTED, RESUMED, SUPERSEDED], RolloutResult.SUPERSEDED),
        ([HALTED, RESUMED, COMPLETED], RolloutResult.COMPLETED),
        # a completed rollout superseded while a drifted host was brought back: once
        ([COMPLETED, SUPERSEDED], RolloutResult.COMPLETED),
    ],
)
def test_each_rollout_counts_once_by_how_it_ended(
    kinds: list[DecisionKind], expected: RolloutResult | None
) -> None:
    results = rollout_results(("g", 1, kind) for kind in kinds)
    assert results.get(("g", 1)) == expected


def test_rollouts_and_groups_are_told_apart() -> None:
    results = rollout_results(
        [("a", 1, HALTED), ("b", 1, SUPERSEDED), ("a", 1, SUPERSEDED), ("a", 2, COMPLETED)]
    )
    assert results == {
        ("a", 1): RolloutResult.HALTED,
        ("b", 1): RolloutResult.SUPERSEDED,
        ("a", 2): RolloutResult.COMPLETED,
    }
