"""Who is in the inventory and in which group: hosts, their claims by groups, canaries.

A host belongs to exactly one group. A host whose entry did not validate is still *declared*
(its name is known from the raw file), so a rule that would only echo that root error — its
group's canary "not a host of this group", a wave larger than the group — stays silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.fleetrepo.fleet import Inventory, InventoryHost
from reconciler.fleetrepo.models import Group, HostInventory
from reconciler.fleetrepo.reporter import LoadedDocument, Reporter, model_of
from reconciler.fleetrepo.yamldoc import DataPath
from reconciler.problems import Severity, format_field_path


@dataclass(frozen=True)
class InventoryEntry:
    """A host of the inventory, with the file and entry it comes from."""

    host: InventoryHost
    doc: LoadedDocument
    index: int  # position in the file's `hosts` list

    @property
    def name_path(self) -> DataPath:
        return ("hosts", self.index, "name")


@dataclass(frozen=True)
class Unresolved:
    """Hosts that are declared but whose entry was refused: rules about them would be echoes."""

    hosts: frozenset[str]
    all_hosts_known: bool  # False when an inventory file could not be read at all

    def may_hide(self, host: str) -> bool:
        """Whether ``host`` may be a real host whose entry is only invalid."""
        return host in self.hosts or not self.all_hosts_known

    @property
    def membership_known(self) -> bool:
        """Whether every group's members are known (no host entry was refused)."""
        return not self.hosts and self.all_hosts_known


def build_inventory(
    report: Reporter, docs: list[LoadedDocument]
) -> tuple[dict[str, InventoryEntry], frozenset[str]]:
    """Hosts by name with merged labels, and the names of hosts refused for sharing a token.

    Reports duplicate names, shared token hashes and shared FleetLock ids.
    """
    hosts: dict[str, InventoryEntry] = {}
    refused: set[str] = set()
    # Who first had each token hash and FleetLock id: (host, its document, its index). Where
    # that is, as file:line, is worked out only for a duplicate: it needs the YAML positions,
    # which a cached document composes again on demand (fleetrepo/yamldoc.py).
    token_owner: dict[str, tuple[str, LoadedDocument, int]] = {}
    lock_owner: dict[str, tuple[str, LoadedDocument, int]] = {}
    for doc in docs:
        inventory = model_of(doc, HostInventory)
        for index, host in enumerate(inventory.hosts):
            if host.name in hosts:
                earlier = hosts[host.name].doc
                report.at(
                    doc,
                    ("hosts", index, "name"),
                    f"host `{host.name}` is already listed in {earlier.file}",
                    "repo.duplicate-host",
                )
                continue
            if host.token_sha256 in token_owner:
                other, other_doc, other_index = token_owner[host.token_sha256]
                where = report.where(other_doc, ("hosts", other_index))
                report.at(
                    doc,
                    ("hosts", index, "tokenSha256"),
                    f"host `{host.name}` has the same token hash as `{other}` ({where})",
                    "repo.shared-token",
                    hint="every host needs its own token, or one host could report as another",
                )
                refused.add(host.name)
                continue
            token_owner[host.token_sha256] = (host.name, doc, index)
            lock_id = host.fleet_lock_id
            if lock_id is not None and lock_id in lock_owner:
                other, other_doc, other_index = lock_owner[lock_id]
                where = report.where(other_doc, ("hosts", other_index))
                report.at(
                    doc,
                    ("hosts", index, "fleetLockId"),
                    f"host `{host.name}` has the same FleetLock id as `{other}` ({where})",
                    "repo.shared-fleetlock-id",
                    hint="a FleetLock id names one host: the lock it takes is that host's",
                )
                lock_id = None
            if lock_id is not None:
                lock_owner[lock_id] = (host.name, doc, index)
            labels = {**inventory.labels, **host.labels}
            hold = host.hold.reason if host.hold is not None else None
            own = host.maintenance_windows
            if own is None:
                own = inventory.maintenance_windows
            windows = tuple(own) if own is not None else None
            merged = InventoryHost(
                host.name, labels, host.token_sha256, doc.file, hold, windows, lock_id
            )
            hosts[host.name] = InventoryEntry(merged, doc, index)
    return hosts, frozenset(refused - hosts.keys())


def check_membership(
    report: Reporter,
    docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
    hosts: Mapping[str, InventoryEntry],
    unresolved: Unresolved,
    some_files_invalid: bool,
) -> dict[str, tuple[str, ...]]:
    """Each group's members, in inventory order; reports hosts claimed twice, canaries that
    are not members, hosts in no group and waves that shrink for the group's size."""
    inventory = Inventory(entry.host for entry in hosts.values())
    claims: dict[str, tuple[str, DataPath]] = {}  # host -> the group that has it, and where
    members: dict[str, tuple[str, ...]] = {}
    for name in sorted(groups):
        group, doc = groups[name], docs[name]
        kept = []
        # Hosts this group shares with an earlier one, by that group and this group's claim.
        conflicts: dict[tuple[str, DataPath], list[tuple[str, DataPath]]] = {}
        for host in inventory.members(group):
            claim = _claim_path(group, host)
            if host in claims:
                owner, owner_claim = claims[host]
                conflicts.setdefault((owner, claim), []).append((host, owner_claim))
            else:
                claims[host] = (name, claim)
                kept.append(host)
        for (owner, claim), shared in conflicts.items():
            owner_claims = {path for _, path in shared}
            # Several entries of the other group's `hosts`: point at the list itself.
            owner_claim = owner_claims.pop() if len(owner_claims) == 1 else ("hosts",)
            hosts_shared = [host for host, _ in shared]
            _report_shared_hosts(report, (docs[owner], owner_claim), (doc, claim), hosts_shared)
        members[name] = tuple(kept)
        selector = group.selector
        if selector is not None and not some_files_invalid and not inventory.matching(selector):
            report.at(
                doc,
                ("selector",),
                "selector matches no host of the inventory",
                "membership.empty-selector",
                severity=Severity.WARNING,
            )
        for index, canary in enumerate(group.canaries):
            if canary not in kept and not unresolved.may_hide(canary):
                report.at(
                    doc,
                    ("canaries", index),
                    f"canary `{canary}` is not a host of this group",
                    "membership.canary-not-member",
                )
        if unresolved.membership_known:  # else the group's size is not known
            _check_waves_against_size(report, doc, group, len(kept))
    if not some_files_invalid:
        for entry in hosts.values():
            if entry.host.name not in claims:
                report.at(
                    entry.doc,
                    entry.name_path,
                    f"host `{entry.host.name}` is in no group; it will never be updated",
                    "membership.host-in-no-group",
                    severity=Severity.WARNING,
                )
    return members


def _claim_path(group: Group, host: str) -> DataPath:
    """Where ``group`` takes ``host`` in: its entry in `hosts`, else the selector."""
    return ("hosts", group.hosts.index(host)) if host in group.hosts else ("selector",)


def _report_shared_hosts(
    report: Reporter,
    first: tuple[LoadedDocument, DataPath],
    second: tuple[LoadedDocument, DataPath],
    shared: list[str],
) -> None:
    """Hosts claimed by two groups, reported at the second claim and naming both.

    Either file may be the one that changed (a selector widened in one group makes another,
    untouched group's claim a conflict), so the message gives each claim's file and line.
    """
    names = [f"`{host}`" for host in shared[:3]]
    more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
    which = f"host {names[0]} is" if len(shared) == 1 else f"hosts {', '.join(names)}{more} are"
    claims = " and ".join(
        f"`{model_of(doc, Group).name}` ({report.where(doc, path)}, {format_field_path(path)})"
        for doc, path in (first, second)
    )
    doc, path = second
    report.at(
        doc,
        path,
        f"{which} in two groups: {claims}",
        "membership.host-in-two-groups",
        "a host belongs to exactly one group: narrow one of the selectors (`matchExpressions` "
        "with `NotIn` or `DoesNotExist` can leave hosts out) or remove the name from `hosts`",
    )


def _check_waves_against_size(
    report: Reporter, doc: LoadedDocument, group: Group, size: int
) -> None:
    """Waves mixing counts and percents can only be compared once the group size is known."""
    waves = group.rollout.waves if "waves" in group.rollout.model_fields_set else []
    for index in range(1, len(waves)):
        before, wave = waves[index - 1], waves[index]
        if before.is_percent != wave.is_percent and wave.resolve(size) < before.resolve(size):
            report.at(
                doc,
                ("rollout", "waves", index),
                f"waves must grow: wave {index + 1} ({wave} = {wave.resolve(size)} "
                f"hosts) is smaller than wave {index} ({before} = "
                f"{before.resolve(size)} hosts) for this group of {size}",
                "schema.waves-shrink",
            )
