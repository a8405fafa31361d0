"""Rules that span files: names, references, cycles, windows. Builds the :class:`Fleet`.

Who belongs to which group is checked in :mod:`membership`.

Each rule reports at the place an operator has to edit: the reference that does not resolve,
the second definition of a name, the group that selects a host a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.fleetrepo.fleet import Fleet, InventoryHost, index_hosts
from reconciler.fleetrepo.membership import (
    InventoryEntry,
    Unresolved,
    build_inventory,
    check_membership,
)
from reconciler.fleetrepo.models import FleetConfig, Group, HostInventory, Stream
from reconciler.fleetrepo.reporter import LoadedDocument, Reporter, model_of
from reconciler.fleetrepo.reuse import StepReuse
from reconciler.fleetrepo.sources import ROOT_FILE
from reconciler.fleetrepo.suggestions import did_you_mean
from reconciler.fleetrepo.yamldoc import DataPath
from reconciler.problems import Problem, Severity


@dataclass
class DeclaredNames:
    """Names declared by every file that parsed, valid or not.

    A reference is checked against these rather than against the valid files only, so a
    typo in one file is not hidden by (or blamed on) an error in another.
    """

    streams: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    #: False once an inventory file could not be read: any host name may be in it.
    all_hosts_known: bool = True

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

    def add_unreadable(self, kind: str, path: str) -> None:
        """Record a file that is not YAML at all: what it probably declares, by its name.

        `streams/production.yaml` with a syntax error most likely defines `production`;
        taking that as declared keeps every group that follows it from reporting an
        "unknown stream" that is only an echo of the syntax error.
        """
        stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if kind == "Stream":
            self.streams.add(stem)
        elif kind == "Group":
            self.groups.add(stem)
        elif kind == "HostInventory":
            self.all_hosts_known = False


def build_fleet(
    documents: list[LoadedDocument],
    declared: DeclaredNames,
    revision: str | None,
    some_files_invalid: bool,
    reuse: StepReuse | None = None,
) -> tuple[Fleet | None, list[Problem]]:
    """Check the rules that span files; return the fleet (None on errors) and the problems.

    When ``some_files_invalid``, rules whose answer depends on every file being present
    (a host in no group, a missing fleet.yaml) are skipped to avoid reporting echoes of
    the errors already found. With ``reuse``, the steps over every host (the inventory,
    group membership) are not run again while their input documents are the same objects
    as in the last load: the result is the same either way.
    """
    reuse = reuse if reuse is not None else StepReuse()
    report = Reporter()
    fleet_docs = [d for d in documents if isinstance(d.model, FleetConfig)]
    stream_docs = _unique(report, [d for d in documents if isinstance(d.model, Stream)], "stream")
    group_docs = _unique(report, [d for d in documents if isinstance(d.model, Group)], "group")
    inventory_docs = [d for d in documents if isinstance(d.model, HostInventory)]
    hosts, refused = reuse.run(
        "inventory", inventory_docs, (), report, lambda r: build_inventory(r, inventory_docs)
    )
    # Hosts declared somewhere but not in the inventory built here (their file or entry is
    # invalid): whether they belong to a group is unknown, so no rule may conclude it.
    unresolved = Unresolved(
        hosts=frozenset(declared.hosts - hosts.keys()) | refused,
        all_hosts_known=declared.all_hosts_known,
    )

    streams = {name: model_of(doc, Stream) for name, doc in stream_docs.items()}
    groups = {name: model_of(doc, Group) for name, doc in group_docs.items()}
    _check_streams(report, stream_docs, streams, declared)
    _check_group_references(report, group_docs, groups, declared)
    group_names = sorted(group_docs)
    members = reuse.run(
        "membership",
        [hosts, *(group_docs[name] for name in group_names)],
        (group_names, unresolved, some_files_invalid),
        report,
        lambda r: check_membership(r, group_docs, groups, hosts, unresolved, some_files_invalid),
    )
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
    config = model_of(fleet_docs[0], FleetConfig)
    _check_revocations(report, fleet_docs[0], config, stream_docs, streams, group_docs, groups)
    reuse.run(  # every host's labels: seconds of a revision at 100k hosts, were it not reused
        "time zones",
        [hosts, members, fleet_docs[0], *(group_docs[name] for name in group_names)],
        (),
        report,
        lambda r: _check_window_time_zones(r, group_docs, groups, members, hosts, config),
    )
    if any(p.is_error for p in report.problems):
        return None, report.problems
    fleet_hosts, host_groups = reuse.run(
        "fleet hosts",
        [hosts, members],
        (),
        report,
        lambda _: _fleet_hosts(hosts, members),
    )
    return Fleet(
        config, streams, groups, fleet_hosts, members, revision, host_groups
    ), report.problems


def _fleet_hosts(
    entries: Mapping[str, InventoryEntry], members: Mapping[str, tuple[str, ...]]
) -> tuple[dict[str, InventoryHost], dict[str, str]]:
    hosts = {name: entry.host for name, entry in entries.items()}
    return hosts, index_hosts(hosts, members)


def _unique(report: Reporter, docs: list[LoadedDocument], what: str) -> dict[str, LoadedDocument]:
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


def _check_streams(
    report: Reporter,
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
                did_you_mean(source, declared.streams),
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
    report: Reporter,
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
    report: Reporter,
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
                did_you_mean(group.stream, declared.streams),
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
                    did_you_mean(dependency, declared.groups),
                )
        for index, host in enumerate(group.hosts):
            if host not in declared.hosts and declared.all_hosts_known:
                report.at(
                    doc,
                    ("hosts", index),
                    f"host `{host}` is not in the inventory",
                    "ref.unknown-host",
                    did_you_mean(host, declared.hosts) or "add it to a file under hosts/",
                )


#: The inventory label that says which time zone a host is in.
TIME_ZONE_LABEL = "timezone"


def _check_window_time_zones(
    report: Reporter,
    docs: Mapping[str, LoadedDocument],
    groups: Mapping[str, Group],
    members: Mapping[str, tuple[str, ...]],
    hosts: Mapping[str, InventoryEntry],
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


def _check_dependency_cycles(
    report: Reporter, docs: Mapping[str, LoadedDocument], groups: Mapping[str, Group]
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
