"""The rollout planner: a pure function from desired, observed and durable state to decisions.

``plan_group(spec, state, observed, completed_elsewhere, now)`` reads no clock, disk, network
or metric. It returns the decisions to persist (each with its reason), what every host should
do now and why, and when to look again. Level-triggered: it decides from scratch on every
pass, so a missed event costs nothing and a restart decides the same as before.

A pass is three parts: the facts it starts from (:mod:`.facts`), the steps that decide
(:mod:`.steps`, run in the order of :data:`STEPS` over a :mod:`.ledger` of decisions), and the
explanation of where they left the group (:mod:`.explanation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.rollout.decisions import Decision
from reconciler.rollout.explanation import (
    Action,
    GroupPhase,
    GroupStatus,
    HostPlan,
    HostState,
    group_status,
    host_plans,
)
from reconciler.rollout.facts import PassFacts
from reconciler.rollout.gates import GateSample
from reconciler.rollout.ledger import Ledger
from reconciler.rollout.locks import grant_locks, lock_answers, release_locks
from reconciler.rollout.observed import HostObservation, LockRequests
from reconciler.rollout.reasons import Reason
from reconciler.rollout.spec import GroupSpec
from reconciler.rollout.state import FailureRecord, GroupState, Lifecycle
from reconciler.rollout.steps import (
    Step,
    StepResult,
    advance_waves,
    assess_hosts,
    complete_if_done,
    ensure_rollout,
    grant_reboots,
    halt_if_revoked,
    halt_on_failures,
    offer_target,
    resume_if_asked,
    revoke_lapsed_reboots,
    settle_superseded_hosts,
    watch_silence,
)
from reconciler.rollout.wavegate import WaveGate

__all__ = [
    "STEPS",
    "Action",
    "GroupPhase",
    "GroupPlan",
    "GroupStatus",
    "HostPlan",
    "HostState",
    "plan_group",
]


@dataclass(frozen=True)
class GroupPlan:
    """The result of one planning pass over one group."""

    spec: GroupSpec
    state: GroupState  # the state after the decisions below
    decisions: tuple[Decision, ...]
    hosts: Mapping[str, HostPlan]
    status: GroupStatus
    requeue_at: datetime | None  # look again then at the latest, even if nothing happens
    # For each host whose FleetLock client asked for a lock in this pass: why it holds one,
    # or why not (the code is `lock_granted` only for a holder).
    locks: Mapping[str, Reason] = field(default_factory=dict)
    # The soaking wave's health gate: what the daemon must evaluate now, and the verdicts.
    gate: WaveGate | None = None

    def requeue_after(self, now: datetime) -> timedelta | None:
        return None if self.requeue_at is None else max(timedelta(0), self.requeue_at - now)


# The steps after the rollout is settled, in order: each sees the decisions of those before.
STEPS: tuple[Step, ...] = (
    resume_if_asked,
    settle_superseded_hosts,
    watch_silence,
    assess_hosts,
    release_locks,
    halt_if_revoked,
    halt_on_failures,
    advance_waves,
    offer_target,
    revoke_lapsed_reboots,
    grant_reboots,
    grant_locks,
    complete_if_done,
)


def plan_group(
    spec: GroupSpec,
    state: GroupState,
    observed: Mapping[str, HostObservation],
    completed_elsewhere: Mapping[str, Mapping[str, datetime]],
    now: datetime,
    failed_elsewhere: Mapping[str, Mapping[str, FailureRecord]] | None = None,
    locks: LockRequests | None = None,
    gate_samples: Sequence[GateSample] = (),
) -> GroupPlan:
    """Decide what ``spec``'s group does at ``now``.

    ``completed_elsewhere`` maps each group in ``spec.depends_on`` to the commits it has
    completed; ``failed_elsewhere``, each of the group's hosts to the commits it failed on
    in other groups (a failure follows the host); ``locks``, what FleetLock clients ask;
    ``gate_samples``, the group's health-check evaluations, oldest first.
    ``state`` is not modified.
    """
    ledger = Ledger(state.copy(), now)
    rollout = ensure_rollout(spec, ledger)
    facts = PassFacts.gather(
        spec,
        observed,
        completed_elsewhere,
        now,
        rollout.started_at,
        failed_elsewhere,
        locks,
        gate_samples,
    )
    result = StepResult()
    for step in STEPS:
        result = result.then(step(facts, ledger))
    hosts = host_plans(facts, ledger.state)
    return GroupPlan(
        spec,
        ledger.state,
        tuple(ledger.decisions),
        hosts,
        group_status(facts, ledger.state, hosts, result.soak_until, result.gate),
        result.wake_at,
        lock_answers(facts, ledger) if facts.locks.acquire else {},
        result.gate if ledger.rollout.lifecycle is Lifecycle.ACTIVE else None,
    )
