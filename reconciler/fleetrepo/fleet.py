"""The desired state of a fleet, as one validated revision of the fleet repo declares it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.fleetrepo.healthchecks import HealthCheck, merge_health_checks
from reconciler.fleetrepo.models import (
    FleetConfig,
    Freeze,
    Group,
    MaintenanceWindow,
    RolloutPolicy,
    Stream,
)
from reconciler.fleetrepo.selectors import LabelIndex, LabelSelector
from reconciler.fleetrepo.spec import Spec


@dataclass(frozen=True, slots=True)
class InventoryHost:
    """A host with its labels merged from its inventory file and its own entry.

    One is kept per host for the life of a revision (100,000 of them in a large fleet), so
    it has slots, and hosts with the same labels share one mapping (see :class:`Fleet`).
    """

    name: str
    labels: Mapping[str, str]
    token_sha256: str
    file: str
    hold: str | None = None  # why the host is held out of rollouts, if it is
    #: Its own windows (its entry's, else its file's); None: its group's.
    windows: tuple[MaintenanceWindow, ...] | None = None
    fleet_lock_id: str | None = None  # what its FleetLock client sends as its id


@dataclass(frozen=True)
class Target:
    """What a group should run: the commit and where hosts fetch it from."""

    commit: str
    version: str | None
    remote: str | None
    ref: str | None
    stream: str | None  # None for a pinned group


S = TypeVar("S", bound=Spec)


def overlay(base: S, override: S) -> S:
    """``base`` with the fields ``override`` wrote itself; nested blocks merge field by field.

    So a group writing ``rebootBudget: {maxUnavailable: 50%}`` keeps the fleet's ``groupBy``.
    """
    update: dict[str, Any] = {}
    for name in override.model_fields_set:
        mine, theirs = getattr(override, name), getattr(base, name)
        both_blocks = isinstance(mine, Spec) and isinstance(theirs, Spec)
        update[name] = overlay(theirs, mine) if both_blocks else mine
    return base.model_copy(update=update)


class Inventory:
    """Hosts in inventory order, indexed by label so selectors cost per match, not per host."""

    def __init__(self, hosts: Iterable[InventoryHost]) -> None:
        self.hosts = list(hosts)
        self._order = {host.name: index for index, host in enumerate(self.hosts)}
        self._labels = LabelIndex((host.name, host.labels) for host in self.hosts)

    def matching(self, selector: LabelSelector) -> set[str]:
        """Names of the hosts that meet every condition of the selector."""
        return self._labels.matching(selector)

    def members(self, group: Group) -> list[str]:
        """Hosts of ``group``: those it names plus those its selector matches, in inventory order.

        Named hosts missing from the inventory are left out here; validation reports them.
        """
        selected = {name for name in group.hosts if name in self._order}
        if group.selector is not None:
            selected |= self.matching(group.selector)
        return sorted(selected, key=self._order.__getitem__)


@dataclass(frozen=True)
class Fleet:
    """A validated fleet repo revision: streams, groups, hosts and who belongs where."""

    config: FleetConfig
    streams: Mapping[str, Stream]
    groups: Mapping[str, Group]
    hosts: Mapping[str, InventoryHost]
    members: Mapping[str, tuple[str, ...]]
    revision: str | None = None
    #: Host -> its group, derived from ``members`` (and the hosts compacted) when not given: a
    #: load that reused the same hosts and members passes the one it derived before.
    host_groups: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.host_groups is None:
            object.__setattr__(self, "host_groups", index_hosts(self.hosts, self.members))

    def group_of(self, host: str) -> str | None:
        """The group a host belongs to, or None when no group selects it."""
        assert self.host_groups is not None  # set at creation
        return self.host_groups.get(host)

    @property
    def revoked(self) -> dict[str, str]:
        """Builds withdrawn fleet-wide: commit -> why (from `fleet.yaml`)."""
        return {r.commit: r.reason for r in self.config.revoked}

    def target(self, group: str) -> Target:
        """The commit a group should run, from its pin or its stream."""
        spec = self.groups[group]
        if spec.pin is not None:
            return Target(
                spec.pin.commit, spec.pin.version, spec.pin.remote, spec.pin.ref, stream=None
            )
        assert spec.stream is not None  # a group has exactly one of stream and pin
        stream = self.streams[spec.stream]
        return Target(stream.commit, stream.version, stream.remote, stream.ref, stream.name)

    def rollout_policy(self, group: str) -> RolloutPolicy:
        """The group's rollout policy: its own fields over the fleet defaults."""
        return overlay(self.config.defaults.rollout, self.groups[group].rollout)

    def maintenance_windows(self, group: str) -> list[MaintenanceWindow]:
        """Windows in which the group's hosts may reboot; empty means at any time."""
        own = self.groups[group].maintenance_windows
        return list(own if own is not None else self.config.defaults.maintenance_windows)

    def host_windows(self, group: str, host: str) -> list[MaintenanceWindow]:
        """Windows in which ``host`` of ``group`` may reboot: its entry's, else its inventory
        file's, else its group's, else the fleet default; empty means at any time."""
        own = self.hosts[host].windows
        return list(own) if own is not None else self.maintenance_windows(group)

    def freezes(self, group: str) -> list[Freeze]:
        """Freezes that stop the group's reboots: the fleet's and its own."""
        return [*self.config.freezes, *self.groups[group].freezes]

    def health_checks(self, group: str) -> tuple[HealthCheck, ...]:
        """Checks the group's waves must pass: the fleet defaults, each replaced by the group's
        own of the same name, then the group's other checks."""
        return merge_health_checks(
            self.config.defaults.health_checks, self.groups[group].health_checks
        )


def index_hosts(
    hosts: Mapping[str, InventoryHost], members: Mapping[str, tuple[str, ...]]
) -> dict[str, str]:
    """Each member's group (the first group that lists it), with the hosts compacted: the
    per-host work of making a :class:`Fleet`, done once per inventory and membership."""
    host_groups: dict[str, str] = {}
    for group, names in members.items():
        for name in names:
            host_groups.setdefault(name, group)
    _compact(hosts.values())
    return host_groups


def _compact(hosts: Iterable[InventoryHost]) -> None:
    """Give hosts with the same labels one mapping, its strings interned, and intern each
    host's name (so the observations restored for it share it rather than copy it).

    The hosts of a rack or a site carry the same few labels; a dict and its strings per host
    were a fifth of what the server kept per host. Labels are read-only (``Mapping``), so
    sharing them is safe; a host's labels compare equal before and after.
    """
    shared: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
    for host in hosts:
        items = tuple(host.labels.items())
        labels = shared.get(items)
        if labels is None:
            labels = shared[items] = {sys.intern(k): sys.intern(v) for k, v in items}
        # Frozen: each is set once, here, as if at creation.
        if labels is not host.labels:
            object.__setattr__(host, "labels", labels)
        name = sys.intern(host.name)
        if name is not host.name:
            object.__setattr__(host, "name", name)
