"""The working state of one planning pass and the decisions that produced it, in order.

Decisions are the only way a step changes the state (through :func:`apply_decision`), so the
state a later step reads is what the earlier steps decided, and replaying :attr:`decisions`
over the pass's input gives :attr:`state`.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.rollout.decisions import Decision, DecisionKind, apply_decision
from reconciler.rollout.facts import current_rollout
from reconciler.rollout.reasons import Reason
from reconciler.rollout.state import GroupState, Rollout


class Ledger:
    """A working copy of a group's state and the decisions made on it at ``now``."""

    def __init__(self, state: GroupState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.decisions: list[Decision] = []

    @property
    def rollout(self) -> Rollout:
        return current_rollout(self.state)

    def decide(
        self,
        kind: DecisionKind,
        reason: Reason,
        *,
        host: str | None = None,
        wave: int | None = None,
        boot_id: str | None = None,
        resume_token: str | None = None,
        caused_by: str | None = None,
        since: datetime | None = None,
    ) -> None:
        """Record a decision of the current rollout.

        It is stamped with that rollout's number and target and the fleet-repo revision that
        caused it, so every event traces to a commit: the rollout's own revision for what
        follows from the rollout (offers, reboots, successes, waves), or ``caused_by`` for
        what a later revision caused (a resume, a halt, a supersession).
        """
        rollout = self.rollout
        self.record(
            Decision(
                kind,
                self.now,
                reason,
                host=host,
                rollout=rollout.number,
                commit=rollout.target,
                revision=caused_by or rollout.revision,
                wave=wave,
                boot_id=boot_id,
                resume_token=resume_token,
                since=since,
            )
        )

    def record(self, decision: Decision) -> None:
        """Apply ``decision`` to the working state and append it to the pass's decisions."""
        apply_decision(self.state, decision)
        self.decisions.append(decision)
