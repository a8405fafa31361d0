"""Rules that span files: names, references, membership, cycles. Builds the :class:`Fleet`.

Each rule reports at the place an operator has to edit: the reference that does not resolve,
the second definition of a name, the group that selects a host a second time.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler.fleetrepo.fleet import Fleet, Inventory, InventoryHost
from reconciler.fleetrepo.models import Document, FleetConfig, Group, HostInventory, Stream
from reconciler.fleetrepo.sources import ROOT_FILE
from reconciler.fleetrepo.yamldoc import DataPath, YamlDocument
from reconciler.problems import Problem, Severity, format_field_path


@dataclass(frozen=True)
class LoadedDocument:
    """A file that parsed and matched its model, with the positions of its YAML."""

    file: str
    yaml: YamlDocument
    model: Document


@dataclass
class DeclaredNames:
    """Names declared by every file that parsed, valid or not.

    A reference is checked against these rather than against the valid files only, so a
    typo in one file is not hidden by (or blamed on) an error in another.
    """

    streams: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)

    def add(self, kind: str, data: Any) -> None:
        """Record the names found in the raw data of a file of ``kind``."""
        if not isinstance(data, dict):
            return
        if kind in ("Stream", "Group") and isinstance(data.get("name"), str):
            (self.streams if kind == "Stream" else self.groups).add(data["name"])
        if kind == "HostInventory" and isinstance(data.get("hosts"), list):
            self.hosts.update(
                h["name"]
                for h in data["hosts"]
                if isinstance(h, dict) and isinstance(h.get("name"), str)
            )


class _Reporter:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def at(
        self,
        doc: LoadedDocument,
        path: DataPath,
        message: str,
        code: str,
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        position = doc.yaml.position_of(path)
        self.problems.append(
            Problem(
                doc.file,
                position.line,
                position.column,
                format_field_path(path),
                message,
                code,
                severity,
                hint,
            )
        )

    def where(self, doc: LoadedDocument, path: DataPath) -> str:
        position = doc.yaml.position_of(path)
        return f"{doc.file}:{position.line}"


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else None


def build_fleet(
    documents: list[LoadedDocument],
    declared: DeclaredNames,
    revision: str | None,
    some_files_invalid: bool,
) -> tuple[Fleet | None, list[Problem]]:
    """Check the rules that span files; return the fleet (None on errors) and the problems.

    When ``some_files_invalid``, rules whose answer depends on every file being present
    (a host in no group, a missing fleet.yaml) are skipped to avoid reporting echoes of
    the errors already found.
    """
    report = _Reporter()
    fleet_docs = [d for d in documents if isinstance(d.model, FleetConfig)]
    stream_docs = _unique(report, [d for d in documents if isinstance(d.model, Stream)], "stream")
    group_docs = _unique(report, [d for d in documents if isinstance(d.model, Group)], "group")
    hosts = _inventory(report, [d for d in documents if isinstance(d.model, HostInventory)])

    streams = {name: _model(doc, Stream) for name, doc in stream_docs.items()}
    groups = {name: _model(doc, Group) for name, doc in group_docs.items()}
    _check_streams(report, stream_docs, streams, declared)
    _check_group_references(report, group_docs, groups, declared)
    members = _check_membership(report, group_docs, groups, hosts, some_files_invalid)
    _check_dependency_cycles(report, group_docs, groups)

    if not fleet_docs:
        if not some_files_invalid:
            report.problems.append(
                Problem(
                    ROOT_FILE,
                    1,
                    1,
                    "",
                    "fleet.yaml is missing at the root of the fleet repo",
                    "repo.no-fleet-file",
                )
            )
        return None, report.problems
    if any(p.is_error for p in report.problems) or some_files_invalid:
        return None, report.problems
    config = _model(fleet_docs[0], FleetConfig)
    _check_revocations(report, fleet_docs[0], config, stream_docs, streams, group_docs, groups)
    _check_window_time_zones(report, group_docs, groups, members, hosts, config)
    if any(p.is_error for p in report.problems):
        return None, report.problems
    return Fleet(
        config,
        streams,
        groups,
        {name: entry.host for name, entry in hosts.items()},
        members,
        revision,
    ), report.problems


M = TypeVar("M", bound=Document)


def _model(doc: LoadedDocument, kind: type[M]) -> M:
    assert isinstance(doc.model, kind)
    return doc.model


def _unique(report: _Reporter, docs: list[LoadedDocument], what: str) -> dict[str, LoadedDocument]:
    by_name: dict[str, LoadedDocument] = {}
    for doc in docs:
        assert isinstance(doc.model, Stream | Group)
        name = doc.model.name
        if name in by_name:
            report.at(
                doc,
                ("name",),
                f"{what} `{name}` is already defined in {report.where(by_name[name], ('name',))}",
                f"repo.duplicate-{what}",
            )
        else:
            by_name[name] = doc
    return by_name


@dataclass(frozen=True)
class _InventoryEntry:
    host: InventoryHost
    doc: LoadedDocument
    index: int  # position in the file's `hosts` list

    @property
    def name_path(self) -> DataPath:
        return ("hosts", self.index, "name")


def _inventory(report: _Reporter, docs: list[LoadedDocument]) -> dict[str, _InventoryEntry]:
    """Hosts by name with merged labels; reports duplicate names and shared token hashes."""
    hosts: dict[str, _InventoryEntry] = {}
    token_owner: dict[str, tuple[str, str]] = {}
    lock_owner: dict[str, tuple[str, str]] = {}
    for doc in docs:
        inventory = _model(doc, HostInventory)
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
                other, where = token_owner[host.token_sha256]
                report.at(
                    doc,
                    ("hosts", index, "tokenSha256"),
                    f"host `{host.name}` has the same token hash as `{other}` ({where})",
                    "repo.shared-token",
                    hint="every host needs its own token, or one host could report as another",
                )
                continue
            token_owner[host.token_sha256] = (host.name, report.where(doc, ("hosts", index)))
            lock_id = host.fleet_lock_id
            if lock_id is not None and lock_id in lock_owner:
                other, where = lock_owner[lock_id]
                report.at(
                    doc,
                    ("hosts", index, "fleetLockId"),
                    f"host `{host.name}` has the same FleetLock id as `{other}` ({where})",
                    "repo.shared-fleetlock-id",
                    hint="a FleetLock id names one host: the lock it takes is that host's",
                )
                lock_id = None
            if lock_id is not None:
                lock_owner[lock_id] = (host.name, report.where(doc, ("hosts", index)))
            labels = {**inventory.labels, **host.labels}
            hold = host.hold.reason if host.hold is not None else None
            own = host.maintenance_windows
            if own is None:
                own = inventory.maintenance_windows
            windows = tuple(own) if own is not None else None
            merged = InventoryHost(
                host.name, labels, host.token_sha256, doc.file, hold, windows, lock_id
            )
            hosts[host.name] = _InventoryEntry(merged, doc, index)
    return hosts


def _check_streams(
    report: _Reporter,
    docs: Mapping[str, LoadedDocument],
    streams: Mapping[str, Stream],
    declared: DeclaredNames,
) -> None:
    for name, stream in streams.items():
        if stream.promotion is None:
            continue
        source = stream.promotion.from_stream
        path: DataPath = ("promotion", "from")
        if source == name:
            report.at(
                docs[name], path, "a stream cannot be promoted from itself", "ref.promotion-self"
            )
        elif source not in declared.streams:
            report.at(
                docs[name],
                path,
                f"promotion from unknown stream `{source}`",
                "ref.unknown-stream",
                _did_you_mean(source, declared.streams),
            )
    for cycle in _cycles(
        {n: [s.promotion.from_stream] if s.promotion else [] for n, s in streams.items()}
    ):
        report.at(
            docs[cycle[0]],
            ("promotion", "from"),
            "promotion cycle: " + " ← ".join([*cycle, cycle[0]]),
            "ref.promotion-cycle",
        )


def _check_revocations(
    report: _Reporter,
    fleet_doc: LoadedDocument,
    config: FleetConfig,
    stream_docs: Mapping[str, LoadedDocument],
    streams: Mapping[str, Stream],
    group_docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
) -> None:
    """A stream or pin may not name a revoked build; a build is revoked once."""
    revoked: dict[str, int] = {}
    for index, revocation in enumerate(config.revoked):
        if revocation.commit in revoked:
            report.at(
                fleet_doc,
                ("revoked", index, "commit"),
                f"commit {revocation.commit[:12]} is revoked twice "
                f"(first at revoked[{revoked[revocation.commit]}])",
                "revoked.duplicate",
            )
        revoked.setdefault(revocation.commit, index)

    def refuse(doc: LoadedDocument, path: DataPath, what: str, commit: str) -> None:
        index = revoked[commit]
        reason = config.revoked[index].reason
        report.at(
            doc,
            path,
            f"{what} names commit {commit[:12]}, which is revoked in fleet.yaml "
            f"(revoked[{index}]: {reason})",
            "ref.revoked-commit",
            "point it at another build (usually the one before), in the same change",
        )

    for name, stream in streams.items():
        if stream.commit in revoked:
            refuse(stream_docs[name], ("commit",), f"stream `{name}`", stream.commit)
    for name, group in groups.items():
        if group.pin is not None and group.pin.commit in revoked:
            refuse(group_docs[name], ("pin", "commit"), f"the pin of `{name}`", group.pin.commit)


def _check_group_references(
    report: _Reporter,
    docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
    declared: DeclaredNames,
) -> None:
    for name, group in groups.items():
        doc = docs[name]
        if group.stream is not None and group.stream not in declared.streams:
            report.at(
                doc,
                ("stream",),
                f"unknown stream `{group.stream}`",
                "ref.unknown-stream",
                _did_you_mean(group.stream, declared.streams),
            )
        for index, dependency in enumerate(group.depends_on):
            if dependency == name:
                report.at(
                    doc,
                    ("dependsOn", index),
                    "a group cannot depend on itself",
                    "ref.depends-on-self",
                )
            elif dependency not in declared.groups:
                report.at(
                    doc,
                    ("dependsOn", index),
                    f"unknown group `{dependency}`",
                    "ref.unknown-group",
                    _did_you_mean(dependency, declared.groups),
                )
        for index, host in enumerate(group.hosts):
            if host not in declared.hosts:
                report.at(
                    doc,
                    ("hosts", index),
                    f"host `{host}` is not in the inventory",
                    "ref.unknown-host",
                    _did_you_mean(host, declared.hosts) or "add it to a file under hosts/",
                )


def _check_membership(
    report: _Reporter,
    docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
    hosts: Mapping[str, _InventoryEntry],
    some_files_invalid: bool,
) -> dict[str, tuple[str, ...]]:
    inventory = Inventory(entry.host for entry in hosts.values())
    owner: dict[str, str] = {}
    members: dict[str, tuple[str, ...]] = {}
    for name in sorted(groups):
        group, doc = groups[name], docs[name]
        selected = inventory.members(group)
        kept = []
        for host in selected:
            if host in owner:
                path: DataPath = (
                    ("hosts", group.hosts.index(host)) if host in group.hosts else ("selector",)
                )
                report.at(
                    doc,
                    path,
                    f"host `{host}` is already in group `{owner[host]}` "
                    f"({report.where(docs[owner[host]], ('name',))})",
                    "membership.host-in-two-groups",
                    "a host belongs to exactly one group; narrow the selector or remove the name",
                )
            else:
                owner[host] = name
                kept.append(host)
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
            if canary not in kept:
                report.at(
                    doc,
                    ("canaries", index),
                    f"canary `{canary}` is not a host of this group",
                    "membership.canary-not-member",
                )
        _check_waves_against_size(report, doc, group, len(kept))
    if not some_files_invalid:
        for entry in hosts.values():
            if entry.host.name not in owner:
                report.at(
                    entry.doc,
                    entry.name_path,
                    f"host `{entry.host.name}` is in no group; it will never be updated",
                    "membership.host-in-no-group",
                    severity=Severity.WARNING,
                )
    return members


#: The inventory label that says which time zone a host is in.
TIME_ZONE_LABEL = "timezone"


def _check_window_time_zones(
    report: _Reporter,
    docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
    members: Mapping[str, tuple[str, ...]],
    hosts: Mapping[str, _InventoryEntry],
    config: FleetConfig,
) -> None:
    """Warn when a group's hosts are labelled with several time zones but all reboot in the
    same windows, from the group or the fleet defaults: one site's night is another's day.

    Kept simple on purpose: a group where any host has windows of its own (its entry's or its
    inventory file's) is taken to have thought about it, and windows of `[]` (any time) never
    warn.
    """
    for name in sorted(groups):
        group = groups[name]
        windows = group.maintenance_windows
        if windows is None:
            windows = config.defaults.maintenance_windows
        entries = [hosts[h] for h in members.get(name, ()) if h in hosts]
        if not windows or any(e.host.windows is not None for e in entries):
            continue
        zones = sorted({z for e in entries if (z := e.host.labels.get(TIME_ZONE_LABEL))})
        if len(zones) < 2:
            continue
        own = group.maintenance_windows is not None
        window_zones = ", ".join(sorted({w.time_zone for w in windows}))
        report.at(
            docs[name],
            ("maintenanceWindows",) if own else ("name",),
            f"hosts of this group are in {len(zones)} time zones ({', '.join(zones)}, by "
            f"label `{TIME_ZONE_LABEL}`) but all reboot in the same windows "
            f"({window_zones}{'' if own else ', from fleet.yaml'})",
            "windows.zones-not-followed",
            hint="give each site's inventory file (hosts/<site>.yaml) its own "
            "`maintenanceWindows` in its time zone, or split the group by site",
            severity=Severity.WARNING,
        )


def _check_waves_against_size(
    report: _Reporter, doc: LoadedDocument, group: Group, size: int
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


def _check_dependency_cycles(
    report: _Reporter, docs: Mapping[str, LoadedDocument], groups: Mapping[str, Group]
) -> None:
    graph = {
        name: [d for d in group.depends_on if d in groups and d != name]
        for name, group in groups.items()
    }
    for cycle in _cycles(graph):
        index = groups[cycle[0]].depends_on.index(cycle[1 % len(cycle)])
        report.at(
            docs[cycle[0]],
            ("dependsOn", index),
            "dependsOn cycle: " + " → ".join([*cycle, cycle[0]]),
            "ref.depends-on-cycle",
            "no group in a cycle could ever start a rollout",
        )


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Each elementary cycle found by depth-first search, once, starting at its least name."""
    found: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                start = cycle.index(min(cycle))
                rotated = cycle[start:] + cycle[:start]
                found.setdefault(tuple(rotated), rotated)
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return list(found.values())
