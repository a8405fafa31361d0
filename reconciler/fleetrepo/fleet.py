"""The desired state of a fleet, as one validated revision of the fleet repo declares it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.fleetrepo.models import (
    FleetConfig,
    Group,
    LabelSelector,
    MaintenanceWindow,
    RolloutPolicy,
    Stream,
)


@dataclass(frozen=True)
class InventoryHost:
    """A host with its labels merged from its inventory file and its own entry."""

    name: str
    labels: Mapping[str, str]
    token_sha256: str
    file: str


@dataclass(frozen=True)
class Target:
    """What a group should run: the commit and where hosts fetch it from."""

    commit: str
    version: str | None
    remote: str | None
    ref: str | None
    stream: str | None  # None for a pinned group


def matches_selector(selector: LabelSelector, host: InventoryHost) -> bool:
    """True when the host carries every label of the selector."""
    return all(host.labels.get(key) == value for key, value in selector.match_labels.items())


def select_members(group: Group, hosts: Iterable[InventoryHost]) -> list[str]:
    """Hosts of ``group``: those it names plus those its selector matches, in inventory order.

    Named hosts missing from the inventory are left out here; validation reports them.
    """
    named = set(group.hosts)
    selector = group.selector
    return [
        host.name
        for host in hosts
        if host.name in named or (selector is not None and matches_selector(selector, host))
    ]


@dataclass(frozen=True)
class Fleet:
    """A validated fleet repo revision: streams, groups, hosts and who belongs where."""

    config: FleetConfig
    streams: Mapping[str, Stream]
    groups: Mapping[str, Group]
    hosts: Mapping[str, InventoryHost]
    members: Mapping[str, tuple[str, ...]]
    revision: str | None = None
    _group_of_host: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for group, names in self.members.items():
            for name in names:
                self._group_of_host.setdefault(name, group)

    def group_of(self, host: str) -> str | None:
        """The group a host belongs to, or None when no group selects it."""
        return self._group_of_host.get(host)

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
        defaults = self.config.defaults.rollout
        return defaults.model_copy(update=self.groups[group].rollout_overrides)

    def maintenance_windows(self, group: str) -> list[MaintenanceWindow]:
        """Windows in which the group's hosts may reboot; empty means at any time."""
        own = self.groups[group].maintenance_windows
        return list(own if own is not None else self.config.defaults.maintenance_windows)
