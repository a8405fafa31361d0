"""The runner: loads state, calls the planner, persists its decisions, hands back the plan.

This is the only place that joins the pure planner to the store and the clock. It plans one
group at a time, so a host report costs a pass over its own group, not the fleet. The store is
a port (:class:`RolloutStore`) that :mod:`reconciler.state` implements, so the rollout package
depends on no storage technology.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from reconciler.clock import Clock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.rollout.decisions import Decision
from reconciler.rollout.gates import GateSample
from reconciler.rollout.observed import HostObservation, LockRequests
from reconciler.rollout.planner import GroupPlan, plan_group
from reconciler.rollout.spec import GroupSpec, dependency_order, fleet_specs, group_spec
from reconciler.rollout.state import FailureRecord, GroupState


class RolloutStore(Protocol):
    """Where the engine keeps each group's state and appends the decisions that changed it."""

    def load_all(self) -> dict[str, GroupState]:
        """The state of every group that has one."""
        ...

    def load(self, group: str) -> GroupState:
        """The state of ``group`` as stored now (empty for a group never planned)."""
        ...

    def save(
        self,
        state: GroupState,
        decisions: Sequence[Decision],
        basis: Mapping[str, HostObservation] | None = None,
        *,
        fence: Callable[[Any], None] | None = None,
    ) -> None:
        """Persist one pass atomically: its new state, its decisions, and what each host the
        decisions name had reported (``basis``), so no older report can outlive them; with
        ``fence``, run it first in that transaction (it raises when the writer lost the
        group's lease, and nothing is written)."""
        ...


StoreT_co = TypeVar("StoreT_co", bound=RolloutStore, covariant=True)


class Engine(Generic[StoreT_co]):
    """Plans groups against the store; keeps specs of the fleet revision in force."""

    def __init__(self, store: StoreT_co, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.specs: dict[str, GroupSpec] = {}
        self._states: dict[str, GroupState] = store.load_all()

    def use_fleet(self, fleet: Fleet, touched: Mapping[str, GroupSpec] | None = None) -> None:
        """Make ``fleet`` (a validated revision) the desired state from now on.

        ``touched``: the new specs of the only groups whose spec inputs may differ from the
        fleet in force (:func:`reconciler.rollout.changes.fleet_changes` makes them); the
        other groups keep their spec, the same but for the revision it names as the cause
        of later decisions: the one that last changed the group. None: every group's spec
        is made again.
        """
        if touched is None:
            self.specs = fleet_specs(fleet)
            return
        kept = self.specs
        self.specs = {
            name: touched.get(name) or kept.get(name) or group_spec(fleet, name)
            for name in fleet.groups
        }

    def reload(self, group: str) -> None:
        """Forget what is remembered of ``group``'s state and read it again (a replica that
        takes a group over plans from what its last holder wrote)."""
        self._states[group] = self.store.load(group)

    def refresh_others(self, stored: Mapping[str, GroupState], planned_here: set[str]) -> None:
        """Take in ``stored`` (every group's state as the database holds it) for the groups
        not in ``planned_here``: other replicas plan those, and this one reads their states
        only for dependencies and failures that follow a host."""
        for group, state in stored.items():
            if group not in planned_here:
                self._states[group] = state

    def states(self) -> Mapping[str, GroupState]:
        """The durable state of every group that has one (read-only view)."""
        return MappingProxyType(self._states)

    def state(self, group: str) -> GroupState:
        return self._states.get(group) or GroupState(group)

    def completed_commits(self, groups: tuple[str, ...]) -> dict[str, Mapping[str, datetime]]:
        return {g: self.state(g).completed_commits for g in groups}

    def reconcile_group(
        self,
        group: str,
        observed: Mapping[str, HostObservation],
        locks: LockRequests | None = None,
        gate_samples: Sequence[GateSample] = (),
        fence: Callable[[Any], None] | None = None,
    ) -> GroupPlan:
        """Plan ``group`` now (with what FleetLock clients ask, ``locks``, and the group's
        health-check evaluations, ``gate_samples``); persist the decisions before anyone acts
        on the plan. ``fence``, when replicas share the groups, runs first in the transaction
        that writes the decisions and raises if this replica no longer holds the group."""
        plan = self._plan(group, observed, locks, gate_samples)
        if plan.decisions:
            named = {d.host for d in plan.decisions if d.host is not None}
            basis = {host: observed[host] for host in named if host in observed}
            self.store.save(plan.state, plan.decisions, basis, fence=fence)
            self._states[group] = plan.state
        return plan

    def preview(self, group: str, observed: Mapping[str, HostObservation]) -> GroupPlan:
        """What a pass of ``group`` would say now, decided nowhere and persisted nowhere: a
        view of a group another replica plans (its state as last read from the store)."""
        return self._plan(group, observed)

    def _plan(
        self,
        group: str,
        observed: Mapping[str, HostObservation],
        locks: LockRequests | None = None,
        gate_samples: Sequence[GateSample] = (),
    ) -> GroupPlan:
        """``plan_group`` over what the engine knows of ``group`` now: one list of inputs
        for a pass and a preview, so the two never plan from different facts."""
        spec = self.specs[group]
        return plan_group(
            spec,
            self.state(group),
            observed,
            self.completed_commits(spec.depends_on),
            self.clock.now(),
            self.failures_elsewhere(group),
            locks,
            gate_samples,
        )

    def failures_elsewhere(self, group: str) -> dict[str, dict[str, FailureRecord]]:
        """What ``group``'s hosts failed on while in other groups: host -> commit -> record."""
        members = self.specs[group].wave_of
        found: dict[str, dict[str, FailureRecord]] = {}
        for name, state in self._states.items():
            if name == group:
                continue
            for host, commits in state.failed.items():
                if host in members:
                    found.setdefault(host, {}).update(commits)
        return found

    def groups_in_order(self) -> list[str]:
        """The groups in force, each after the groups it depends on, so that planning them in
        this order lets a completion unblock its dependents in the same round."""
        return dependency_order({n: s.depends_on for n, s in self.specs.items()})
