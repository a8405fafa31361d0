"""Which groups a new revision touches: each kind of change names the right groups, and
every group it leaves out has exactly the spec it had (so keeping its plan is sound)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet, load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource, GitRevisionSource
from reconciler.rollout.changes import FleetChanges, fleet_changes
from reconciler.rollout.spec import group_spec
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.service import FleetService, token_hash
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.engine_harness import START
from tests.fleets import build_fleet as build_test_fleet

Edit = Callable[[Path], None]

DUB, FRA, DSP, NYC, SIN, LAB = (
    "callservers-dub",
    "callservers-fra",
    "callservers-fra-dsp",
    "callservers-nyc",
    "callservers-sin",
    "staging-lab",
)
NEW_COMMIT = "c" * 64


def replace(path: str, old: str, new: str) -> Edit:
    def edit(root: Path) -> None:
        file = root / path
        text = file.read_text()
        assert old in text, (path, old)
        file.write_text(text.replace(old, new, 1))

    return edit


def append(path: str, text: str) -> Edit:
    def edit(root: Path) -> None:
        with (root / path).open("a") as file:
            file.write(text)

    return edit


def remove(path: str) -> Edit:
    def edit(root: Path) -> None:
        (root / path).unlink()

    return edit


def production_commit(root: Path) -> None:
    file = root / "streams" / "production.yaml"
    lines = [
        f"commit: {NEW_COMMIT}" if line.startswith("commit:") else line
        for line in file.read_text().splitlines()
    ]
    file.write_text("\n".join(lines) + "\n")


NEW_LAB_HOST = (
    "  - name: lab-call-04\n"
    '    labels: {hardware: r650, rack: "b3"}\n'
    "    tokenSha256: " + "d" * 64 + "\n"
)

CASES: list[tuple[str, Edit, set[str], set[str]]] = [
    # what changed, the edit, the groups touched, the hosts changed
    (
        "a group's own rollout",
        replace(f"groups/{LAB}.yaml", "soakTime: 30m", "soakTime: 1h"),
        {LAB},
        set(),
    ),
    (
        "a pin",
        replace(f"groups/{DSP}.yaml", 'version: "9.20260915.2"', 'version: "9.20260915.3"'),
        {DSP},
        set(),
    ),
    ("a stream's commit, with dependents", production_commit, {DUB, FRA, NYC, SIN}, set()),
    (
        "a health check in the fleet defaults reaches every group",
        replace(
            "fleet.yaml",
            "defaults:\n",
            "defaults:\n  healthChecks:\n    - name: up\n      query: up\n"
            "      successCondition: '== 1'\n",
        ),
        {DUB, FRA, DSP, NYC, SIN, LAB},
        set(),
    ),
    (
        "a canary group, with its dependents",
        replace(
            f"groups/{DUB}.yaml", "canaries: [dub-call-01, dub-call-07]", "canaries: [dub-call-01]"
        ),
        {DUB, FRA, NYC, SIN},
        set(),
    ),
    (
        "a dependent only",
        replace(f"groups/{SIN}.yaml", '"30 2 * * *"', '"45 2 * * *"'),
        {SIN},
        set(),
    ),
    (
        "a host's inventory entry",
        replace("hosts/lab.yaml", 'rack: "b1"', 'rack: "c1"'),
        {LAB},
        {"lab-call-01"},
    ),
    (
        "an inventory file's labels",
        replace("hosts/lab.yaml", "role: callserver", "role: callserver\n  owner: qa"),
        {LAB},
        {"lab-call-01", "lab-call-02", "lab-call-03"},
    ),
    ("membership: a host added", append("hosts/lab.yaml", NEW_LAB_HOST), {LAB}, {"lab-call-04"}),
    (
        "membership: hosts named",
        replace(
            f"groups/{FRA}.yaml",
            "hosts: [fra-call-01, fra-call-02, fra-call-03, fra-call-04]",
            "hosts: [fra-call-01, fra-call-02, fra-call-03]",
        ),
        {FRA},
        set(),
    ),
    (
        "a fleet default some groups override",
        replace("fleet.yaml", "soakTime: 2h", "soakTime: 3h"),
        {DUB, FRA, DSP, SIN, NYC},  # NYC overrides it, but depends on DUB
        set(),
    ),
    (
        "a build revoked fleet-wide",
        append("fleet.yaml", f"revoked:\n  - commit: {'e' * 64}\n    reason: bad\n"),
        {DUB, FRA, DSP, NYC, SIN, LAB},
        set(),
    ),
    (
        "the fleet's description only",
        replace("fleet.yaml", "description: Call servers", "description: The call servers"),
        set(),
        set(),
    ),
    (
        "a stream no group follows differently",
        replace("streams/staging.yaml", "description: Every build", "description: All builds"),
        set(),
        set(),
    ),
]


def load(root: Path) -> Fleet:
    return load_fleet_or_raise(DirectorySource(root))


def without_revision(fleet: Fleet, group: str) -> object:
    return dataclasses.replace(group_spec(fleet, group), revision=None)


def assert_untouched_specs_equal(before: Fleet, after: Fleet, changes: FleetChanges) -> None:
    """What makes keeping a plan sound: every group not touched plans from the same spec."""
    for group in after.groups.keys() - set(changes.touched):
        assert without_revision(before, group) == without_revision(after, group), group


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def changed_files(before: dict[str, bytes], after: dict[str, bytes]) -> set[str]:
    """What Git's diff of the two trees would name."""
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


@pytest.mark.parametrize(("what", "edit", "groups", "hosts"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_change_touches_the_right_groups(
    fleet_dir: Path, what: str, edit: Edit, groups: set[str], hosts: set[str]
) -> None:
    before, files_before = load(fleet_dir), contents(fleet_dir)
    edit(fleet_dir)
    after = load(fleet_dir)
    changes = fleet_changes(before, after)
    # Comparing only the hosts of the files that changed finds the same.
    assert fleet_changes(before, after, changed_files(files_before, contents(fleet_dir))) == changes
    assert set(changes.touched) == groups
    assert changes.changed_hosts == hosts
    assert_untouched_specs_equal(before, after, changes)
    assert changes.specs == {group: group_spec(after, group) for group in groups}


@pytest.mark.parametrize(("what", "edit", "groups", "hosts"), CASES, ids=[c[0] for c in CASES])
def test_loads_that_reuse_unchanged_files_find_the_same_changes(
    fleet_dir: Path,
    commit_fleet: Callable[[Path, str], str],
    what: str,
    edit: Edit,
    groups: set[str],
    hosts: set[str],
) -> None:
    """As the daemon loads: from Git, through the parse cache, so a revision that leaves
    every inventory file as it was hands back the very same hosts (and skips comparing them)."""
    cache = ParsedFileCache()

    def load_revision(message: str) -> Fleet:
        revision = commit_fleet(fleet_dir, message)
        fleet = load_fleet(GitRevisionSource(fleet_dir, revision), cache=cache).fleet
        assert fleet is not None
        return fleet

    before = load_revision("before")
    edit(fleet_dir)
    after = load_revision(what)
    changes = fleet_changes(before, after)
    assert set(changes.touched) == groups
    assert changes.changed_hosts == hosts
    assert_untouched_specs_equal(before, after, changes)


def test_an_unchanged_fleet_touches_nothing(fleet_dir: Path) -> None:
    changes = fleet_changes(load(fleet_dir), load(fleet_dir))
    assert changes.nothing
    assert changes == FleetChanges((), frozenset(), frozenset(), frozenset())


def test_dependencies_come_first_and_the_canary_group_alone_is_first(fleet_dir: Path) -> None:
    before = load(fleet_dir)
    production_commit(fleet_dir)
    after = load(fleet_dir)
    changes = fleet_changes(before, after)
    assert changes.touched[0] == DUB
    assert changes.first(after) == (DUB,)


def test_a_group_added_and_one_removed(fleet_dir: Path) -> None:
    before = load(fleet_dir)
    (fleet_dir / "groups" / f"{FRA}.yaml").rename(fleet_dir / "groups" / "fra-named.yaml")
    replace("groups/fra-named.yaml", f"name: {FRA}", "name: fra-named")(fleet_dir)
    after = load(fleet_dir)
    changes = fleet_changes(before, after)
    assert set(changes.touched) == {"fra-named"}
    assert changes.removed_groups == {FRA}
    assert_untouched_specs_equal(before, after, changes)


def test_a_host_removed_from_the_inventory(fleet_dir: Path) -> None:
    before, files_before = load(fleet_dir), contents(fleet_dir)
    remove("groups/callservers-fra.yaml")(fleet_dir)
    remove("hosts/fra.yaml")(fleet_dir)
    replace(f"groups/{DSP}.yaml", "site: fra", "site: dub")(fleet_dir)  # keeps it valid
    after = load(fleet_dir)
    changes = fleet_changes(before, after)
    assert fleet_changes(before, after, changed_files(files_before, contents(fleet_dir))) == changes
    assert {"fra-call-01", "fra-call-04"} <= changes.removed_hosts
    assert changes.removed_hosts <= changes.changed_hosts
    assert changes.removed_groups == {FRA}
    assert_untouched_specs_equal(before, after, changes)


# -- the service takes a revision in: only touched groups are planned again -----------------

SERVICE_HOSTS: dict[str, dict[str, str]] = {"a1": {}, "b1": {}, "c1": {}}
SERVICE_GROUPS: dict[str, dict[str, Any]] = {
    "a": {"hosts": ["a1"]},
    "b": {"hosts": ["b1"], "stream": "other"},
    "c": {"hosts": ["c1"], "dependsOn": ["a"]},
}
STREAMS = {"main": "a" * 64, "other": "b" * 64}


@dataclasses.dataclass
class Served:
    service: FleetService
    planned: list[str]  # groups, in the order their passes ran


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    db = tmp_path / "state.sqlite"
    store, reports = Store(db), SqliteReportStore(db)
    service = FleetService(
        build_test_fleet(SERVICE_GROUPS, SERVICE_HOSTS, STREAMS),
        store,
        reports,
        ManualClock(START),
        OperationalMetrics(CollectorRegistry()),
    )
    planned: list[str] = []
    service.requeue_listeners.append(lambda group, _: planned.append(group))
    yield Served(service, planned)
    store.close()
    reports.close()


def test_a_revision_plans_only_the_groups_it_touches(served: Served) -> None:
    service = served.service
    untouched = {group: service.plans[group] for group in ("a", "c")}
    service.use_fleet(
        build_test_fleet(
            SERVICE_GROUPS, SERVICE_HOSTS, {**STREAMS, "other": "c" * 64}, revision="rev-2"
        )
    )
    assert served.planned == ["b"]
    assert service.plans["b"].spec.target.commit == "c" * 64
    assert {group: service.plans[group] for group in ("a", "c")} == untouched
    assert all(service.plans[g] is plan for g, plan in untouched.items())  # kept, not redone


def test_the_changes_canaries_first_and_the_rest_left_to_the_caller(served: Served) -> None:
    service = served.service
    later = service.use_fleet(
        build_test_fleet(
            SERVICE_GROUPS, SERVICE_HOSTS, {**STREAMS, "main": "d" * 64}, revision="rev-2"
        ),
        first_only=True,
    )
    assert (served.planned, later) == (["a"], ("c",))
    assert service.current_plan("c") is None  # answered from a pass of its own when asked
    target = service.assignment("c1").target
    assert target is not None
    assert target.commit == "d" * 64


def test_token_lookups_follow_changed_hosts_only(served: Served) -> None:
    service = served.service
    before = build_test_fleet(SERVICE_GROUPS, SERVICE_HOSTS, STREAMS)
    swapped = {
        "a1": dataclasses.replace(before.hosts["a1"], token_sha256=token_hash("b1")),
        "b1": dataclasses.replace(before.hosts["b1"], token_sha256=token_hash("a1")),
        "c1": before.hosts["c1"],
    }
    after = Fleet(before.config, before.streams, before.groups, swapped, before.members, "rev-2")
    service.use_fleet(after)
    assert (service.host_for_token("a1"), service.host_for_token("b1")) == ("b1", "a1")
    assert service.host_for_token("c1") == "c1"

    hosts: dict[str, dict[str, str]] = {"a1": {}, "b1": {}, "d1": {}}  # c1 leaves, d1 arrives
    groups = {**SERVICE_GROUPS, "c": {"hosts": ["d1"], "dependsOn": ["a"]}}
    service.use_fleet(build_test_fleet(groups, hosts, STREAMS, revision="rev-3"))
    assert service.host_for_token("c1") is None
    assert service.host_for_token("d1") == "d1"
    assert service.host_for_token("a1") == "a1"  # back to its own token
