"""Which groups a new fleet revision touches: the only ones whose plans it can change.

A group's plan is a function of its spec (:func:`reconciler.rollout.spec.group_spec`: its
own Group document, its target from its pin or stream, the fleet defaults and freezes and
revoked builds it inherits, its members and their inventory entries), its durable state and
what its hosts report. A new revision changes only the first; a group whose spec inputs are
all equal keeps its plan, its answers and its look-again timer. Its dependents are touched
too (a dependency's new target is what they wait for), and planned after it.

Pure: two fleets in, names out; nothing is planned or stored here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.fleetrepo.fleet import Fleet, InventoryHost
from reconciler.rollout.spec import GroupSpec, dependency_order, group_spec


@dataclass(frozen=True)
class FleetChanges:
    """What a new revision changes for planning, against the revision it replaces."""

    #: Groups whose spec inputs changed (new groups included), and their dependents, in
    #: dependency order: each after the touched groups it depends on.
    touched: tuple[str, ...]
    #: Groups of the old revision that the new one no longer has.
    removed_groups: frozenset[str]
    #: Hosts added, removed or whose inventory entry (labels, token, windows, hold, ...)
    #: changed: the only ones whose token and lock-id lookups need redoing.
    changed_hosts: frozenset[str]
    removed_hosts: frozenset[str]
    #: The new spec of each touched group, made with the comparison (off the event loop):
    #: taking the revision in then costs no spec-making.
    specs: Mapping[str, GroupSpec] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nothing(self) -> bool:
        """True when no plan, answer or lookup depends on what changed."""
        return not (self.touched or self.removed_groups or self.changed_hosts)

    def first(self, after: Fleet) -> tuple[str, ...]:
        """The touched groups that wait on no other touched group (the canaries of the
        change): planned before anything else, so their agents hear at once."""
        touched = set(self.touched)
        return tuple(
            group
            for group in self.touched
            if not touched.intersection(after.groups[group].depends_on)
        )


def fleet_changes(
    before: Fleet, after: Fleet, changed_files: Collection[str] | None = None
) -> FleetChanges:
    """Compare two validated revisions; see :class:`FleetChanges`.

    ``changed_files``, when known (from Git: every fleet file whose content differs, by
    path), limits the comparison of inventory entries to the hosts listed in those files:
    in a valid fleet a host's entry is made from its own file alone (a duplicate name, a
    shared token or FleetLock id makes the revision invalid), so the others are equal.
    """
    # A load that reused every inventory file hands back the very same host mapping: no
    # entry can differ, and walking 100,000 of them would be most of a small revision's cost.
    same_hosts = before.hosts is after.hosts
    changed_hosts = (
        set() if same_hosts else _changed_hosts(before.hosts, after.hosts, changed_files)
    )
    own = {group for group in after.groups if _inputs_changed(before, after, group)}
    own.update(group for host in changed_hosts if (group := after.group_of(host)) is not None)
    touched = _with_dependents(own, {n: g.depends_on for n, g in after.groups.items()})
    order = dependency_order({n: after.groups[n].depends_on for n in touched})
    return FleetChanges(
        touched=tuple(order),
        removed_groups=frozenset(before.groups.keys() - after.groups.keys()),
        changed_hosts=frozenset(changed_hosts),
        removed_hosts=frozenset()
        if same_hosts
        else frozenset(before.hosts.keys() - after.hosts.keys()),
        specs={group: group_spec(after, group) for group in order},
    )


def _changed_hosts(
    before: Mapping[str, InventoryHost],
    after: Mapping[str, InventoryHost],
    changed_files: Collection[str] | None,
) -> set[str]:
    if changed_files is None:
        candidates: Iterable[str] = after.keys()
    else:
        files = set(changed_files)
        candidates = {n for n, h in after.items() if h.file in files}
    changed = {
        name
        for name in candidates
        if (old := before.get(name)) is not (new := after[name]) and old != new
    }
    changed.update(before.keys() - after.keys())
    return changed


def _inputs_changed(before: Fleet, after: Fleet, group: str) -> bool:
    """Whether anything :func:`group_spec` reads for ``group``, except its members' own
    entries (compared once per host), differs between the revisions."""
    old = before.groups.get(group)
    if old is None:
        return True
    new = after.groups[group]
    if (old is not new and old != new) or before.members[group] != after.members[group]:
        return True
    if before.target(group) != after.target(group):
        return True
    if before.config is after.config or before.config == after.config:
        return False
    return (
        before.revoked != after.revoked
        or before.freezes(group) != after.freezes(group)
        or before.rollout_policy(group) != after.rollout_policy(group)
        or before.maintenance_windows(group) != after.maintenance_windows(group)
        or before.health_checks(group) != after.health_checks(group)
    )


def _with_dependents(groups: Iterable[str], depends_on: Mapping[str, Sequence[str]]) -> set[str]:
    """``groups`` and every group that depends on one of them, at any depth."""
    dependents: dict[str, list[str]] = {}
    for name, dependencies in depends_on.items():
        for dependency in dependencies:
            dependents.setdefault(dependency, []).append(name)
    found: set[str] = set()
    pending = list(groups)
    while pending:
        group = pending.pop()
        if group not in found:
            found.add(group)
            pending.extend(dependents.get(group, ()))
    return found
