"""What one planning pass knows: its inputs and what follows from them, frozen for the pass.

Every step and the explanation read the same :class:`PassFacts`. Questions whose answer also
depends on the decisions made so far (is the rollout blocked, has a host settled) take the
state as an argument and are asked afresh, so no step has to know what another step changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.rollout.freezes import FreezeState, freeze_at
from reconciler.rollout.gates import GateSample
from reconciler.rollout.observed import HostObservation, LockRequests
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.spec import GroupSpec
from reconciler.rollout.state import FailureRecord, GroupState, Lifecycle, Rollout
from reconciler.rollout.windows import RebootWindow, reboot_window


def current_rollout(state: GroupState) -> Rollout:
    """The rollout a pass works on; every pass has one once it has begun."""
    assert state.rollout is not None
    return state.rollout


@dataclass(frozen=True, slots=True)
class PassFacts:
    """The inputs of one pass over one group, and what they say before any decision."""

    spec: GroupSpec
    observed: Mapping[str, HostObservation]
    completed_elsewhere: Mapping[str, Mapping[str, datetime]]
    now: datetime
    target: str  # the desired commit
    silent_since: datetime  # a host that never reported is silent since its rollout began
    window: RebootWindow  # may a reboot start now in the group's windows, and until when
    stale_cutoff: datetime  # a host last heard of at or before this is stale
    skip_cutoff: datetime  # ... and at or before this, skipped
    # Failures the group's hosts had in other groups (host -> commit -> record): a failure
    # follows the host, so one moved to another group is not offered the commit again.
    failed_elsewhere: Mapping[str, Mapping[str, FailureRecord]] = field(default_factory=dict)
    # Is every reboot frozen now, and until when.
    freeze: FreezeState = field(default_factory=FreezeState)
    # The same answer as ``window`` for each of ``spec.window_sets``, in their order.
    host_windows: tuple[RebootWindow, ...] = ()
    # What FleetLock clients ask of this pass.
    locks: LockRequests = field(default_factory=LockRequests)
    # The group's health-check evaluations, oldest first (the daemon queries Prometheus).
    gate_samples: Sequence[GateSample] = ()

    @classmethod
    def gather(
        cls,
        spec: GroupSpec,
        observed: Mapping[str, HostObservation],
        completed_elsewhere: Mapping[str, Mapping[str, datetime]],
        now: datetime,
        silent_since: datetime,
        failed_elsewhere: Mapping[str, Mapping[str, FailureRecord]] | None = None,
        locks: LockRequests | None = None,
        gate_samples: Sequence[GateSample] = (),
    ) -> PassFacts:
        """The facts of a pass at ``now`` over a rollout that began at ``silent_since``."""
        policy = spec.policy
        margin = policy.reboot_margin
        return cls(
            spec,
            observed,
            completed_elsewhere,
            now,
            spec.target.commit,
            silent_since,
            reboot_window(spec.windows, now, margin),
            now - policy.stale_after,
            now - policy.skip_stale_after,
            failed_elsewhere or {},
            freeze_at(spec.freezes, now),
            tuple(reboot_window(windows, now, margin) for windows in spec.window_sets),
            locks or LockRequests(),
            gate_samples,
        )

    def window_of(self, host: str) -> RebootWindow:
        """May ``host`` start a reboot now, in its own windows (its site's or its group's)?"""
        index = self.spec.window_set_of.get(host)
        return self.window if index is None else self.host_windows[index]

    def windows_in_use(self) -> tuple[RebootWindow, ...]:
        """The answers for every window set some host of the group reboots in."""
        if self.spec.uses_group_windows:
            return (self.window, *self.host_windows)
        return self.host_windows

    def windows_change_at(self) -> datetime | None:
        """When the first of those answers flips: the pass must look again then."""
        changes = [w.changes_at for w in self.windows_in_use() if w.changes_at is not None]
        return min(changes) if changes else None

    def last_heard(self, obs: HostObservation | None) -> datetime:
        """When the host last reported; one that never did is silent since the rollout began."""
        return self.silent_since if obs is None else obs.received_at

    def stale(self, obs: HostObservation | None) -> bool:
        return self.last_heard(obs) <= self.stale_cutoff

    def skipped(self, obs: HostObservation | None) -> bool:
        return self.last_heard(obs) <= self.skip_cutoff

    def failure_on_target(self, state: GroupState, host: str) -> FailureRecord | None:
        """How ``host`` failed on the target before, in this group or another, if it did."""
        here = state.failed.get(host)
        if here is not None and self.target in here:
            return here[self.target]
        return self.failed_elsewhere.get(host, {}).get(self.target)

    def failed_here(self, state: GroupState, host: str) -> bool:
        """Has ``host`` failed on the target, in this rollout, an earlier one, or another
        group?"""
        return self.failure_on_target(state, host) is not None

    def settled(self, state: GroupState, host: str) -> bool:
        """Finished for wave purposes: succeeded, failed on the target, held, skipped as
        stale, or a FleetLock client without an agent."""
        if host in self.spec.held:
            return True
        if host in self.spec.lock_clients and host not in self.observed:
            # It reboots through FleetLock for updates of its own and no agent reports
            # for it: there is nothing to wait for.
            return True
        progress = current_rollout(state).hosts.get(host)
        if progress is not None and (progress.succeeded_at or progress.failed_at):
            return True
        if self.failed_here(state, host):
            return True
        return self.skipped(self.observed.get(host))

    def blocked(self, state: GroupState) -> Reason | None:
        """Why no new wave may open and no new host may be offered, if anything stops it."""
        rollout = current_rollout(state)
        if rollout.lifecycle is Lifecycle.HALTED and rollout.halt is not None:
            return Reason(ReasonCode.HALTED, rollout.halt.reason.message)
        if self.spec.paused:
            return Reason(ReasonCode.PAUSED, "paused in the fleet repo")
        if rollout.waves_opened == 0:
            waiting = [
                g
                for g in self.spec.depends_on
                if self.target not in self.completed_elsewhere.get(g, {})
            ]
            if waiting:
                return Reason(
                    ReasonCode.WAITING_FOR_DEPENDENCY,
                    f"waiting for {', '.join(waiting)} to complete {self.target[:12]}",
                )
            if state.finishing:
                return Reason(
                    ReasonCode.WAITING_FOR_SUPERSEDED_HOSTS,
                    f"waiting for {len(state.finishing)} host(s) still updating "
                    "to a superseded commit",
                )
        return None
