"""A group's desired state, precomputed once per fleet revision for fast planning passes.

Turning the fleet repo into rollout order, wave boundaries and budget buckets costs more than
a planning pass; it changes only when Git does, so it is done here, not in the planner.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from reconciler.fleetrepo.fleet import Fleet, Target
from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.fleetrepo.models import Freeze, MaintenanceWindow, RolloutPolicy

BudgetKey = tuple[str, ...]


@dataclass(frozen=True)
class GroupSpec:
    """What one group should run and how it gets there, ready for :func:`plan_group`."""

    name: str
    target: Target
    revision: str | None
    order: tuple[str, ...]  # rollout order: canaries first, then a stable shuffle
    wave_ends: tuple[int, ...]  # cumulative host counts, strictly growing, last = len(order)
    wave_of: Mapping[str, int]
    budget_key: Mapping[str, BudgetKey]
    budget_limit: Mapping[BudgetKey, int]
    budget_labels: tuple[str, ...]
    failure_threshold: int
    policy: RolloutPolicy
    windows: tuple[MaintenanceWindow, ...]
    paused: bool
    depends_on: tuple[str, ...]
    resume_token: str | None
    #: Builds withdrawn fleet-wide (commit -> why): never offered; a rollout to one halts.
    revoked: Mapping[str, str] = field(default_factory=dict)
    #: Hosts held out of rollouts in the inventory (host -> why): offered nothing, not
    #: counted against the budget, settled for their wave.
    held: Mapping[str, str] = field(default_factory=dict)
    #: Periods in which no reboot is granted (the fleet's and the group's own).
    freezes: tuple[Freeze, ...] = ()
    #: Distinct window sets of hosts whose windows are not the group's ``windows`` (from
    #: their inventory file or entry), and which set each such host uses (host -> index).
    #: A host not in ``window_set_of`` uses ``windows``. Sets, not per-host copies, so a
    #: pass decides each set once however many hosts share it.
    window_sets: tuple[tuple[MaintenanceWindow, ...], ...] = ()
    window_set_of: Mapping[str, int] = field(default_factory=dict)
    #: Hosts with a FleetLock id in the inventory: they may take a reboot lock.
    lock_clients: frozenset[str] = frozenset()
    #: Checks on Prometheus queries that each wave's soak must pass (docs/health-gates.md).
    health_checks: tuple[HealthCheck, ...] = ()

    @property
    def uses_group_windows(self) -> bool:
        """Does any host reboot in the group's own ``windows``?"""
        return len(self.window_set_of) < len(self.order)

    @property
    def soak_time(self) -> timedelta:
        return self.policy.soak_time

    @property
    def waves_total(self) -> int:
        return len(self.wave_ends)


def rollout_order(group: str, members: tuple[str, ...], canaries: list[str]) -> tuple[str, ...]:
    """Canaries in their listed order, then the rest in an order that is stable per group.

    Hashing group and host spreads the first wave across racks and sites without anyone
    choosing, and keeps each host in the same wave from one rollout to the next.
    """
    member_set = set(members)
    first = [c for c in canaries if c in member_set]
    chosen = set(first)
    rest = sorted(
        (m for m in members if m not in chosen),
        key=lambda host: hashlib.sha256(f"{group}\0{host}".encode()).digest(),
    )
    return (*first, *rest)


def wave_ends(policy: RolloutPolicy, size: int) -> tuple[int, ...]:
    """Cumulative wave sizes for a group of ``size``; empty waves dropped, 100% implied."""
    ends: list[int] = []
    for wave in policy.waves:
        end = wave.resolve(size)
        if end > (ends[-1] if ends else 0):
            ends.append(end)
    if not ends or ends[-1] < size:
        ends.append(size)
    return tuple(ends)


def group_spec(fleet: Fleet, group: str) -> GroupSpec:
    """The spec of ``group`` in ``fleet``."""
    model = fleet.groups[group]
    policy = fleet.rollout_policy(group)
    order = rollout_order(group, fleet.members[group], model.canaries)
    ends = wave_ends(policy, len(order))
    wave_of: dict[str, int] = {}
    wave = 0
    for position, host in enumerate(order):
        while position >= ends[wave]:
            wave += 1
        wave_of[host] = wave
    labels = tuple(policy.reboot_budget.group_by)
    budget_key = {h: tuple(fleet.hosts[h].labels.get(k, "") for k in labels) for h in order}
    bucket_sizes = Counter(budget_key.values())
    limit = {
        key: policy.reboot_budget.max_unavailable.resolve(size)
        for key, size in bucket_sizes.items()
    }
    threshold = max(1, policy.failure_threshold.resolve(len(order)))
    windows = tuple(fleet.maintenance_windows(group))
    window_sets, window_set_of = host_window_sets(fleet, order, windows)
    return GroupSpec(
        name=group,
        target=fleet.target(group),
        revision=fleet.revision,
        order=order,
        wave_ends=ends,
        wave_of=wave_of,
        budget_key=budget_key,
        budget_limit=limit,
        budget_labels=labels,
        failure_threshold=threshold,
        policy=policy,
        windows=windows,
        paused=model.paused,
        depends_on=tuple(model.depends_on),
        resume_token=model.resume,
        revoked=fleet.revoked,
        held={h: why for h in order if (why := fleet.hosts[h].hold) is not None},
        freezes=tuple(fleet.freezes(group)),
        window_sets=window_sets,
        window_set_of=window_set_of,
        lock_clients=frozenset(h for h in order if fleet.hosts[h].fleet_lock_id is not None),
        health_checks=fleet.health_checks(group),
    )


def host_window_sets(
    fleet: Fleet, order: Sequence[str], group_windows: tuple[MaintenanceWindow, ...]
) -> tuple[tuple[tuple[MaintenanceWindow, ...], ...], dict[str, int]]:
    """The distinct window sets of hosts with windows of their own that differ from the
    group's, and each such host's index into them."""
    index: dict[tuple[MaintenanceWindow, ...], int] = {}
    set_of: dict[str, int] = {}
    for host in order:
        own = fleet.hosts[host].windows
        if own is None or own == group_windows:
            continue
        set_of[host] = index.setdefault(own, len(index))
    return tuple(index), set_of


def fleet_specs(fleet: Fleet) -> dict[str, GroupSpec]:
    """Specs of every group in ``fleet``."""
    return {name: group_spec(fleet, name) for name in fleet.groups}


def dependency_order(depends_on: Mapping[str, Sequence[str]]) -> list[str]:
    """Group names with each one's dependencies before it, otherwise by name, so that a
    completion unblocks its dependents in the same pass. Unknown names are ignored (and a
    cycle, which validation refuses, cannot loop)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in depends_on:
            return
        seen.add(name)
        for dependency in depends_on[name]:
            visit(dependency)
        ordered.append(name)

    for name in sorted(depends_on):
        visit(name)
    return ordered
