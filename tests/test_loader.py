"""One broken fleet per error class: each must name the exact file, line and problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import FleetRepoInvalid
from reconciler.fleetrepo import loader
from reconciler.fleetrepo.loader import load_fleet, load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.problems import Severity
from tests.conftest import EXAMPLE_FLEET

HOST_ENTRY = "  - name: {name}\n    tokenSha256: {token}\n"
TOKEN_A = "a" * 64
FLEET_DESCRIPTION = (
    "description: Call servers in Dublin, Frankfurt, New York and Singapore, plus the staging "
    "lab.\n"
)


@dataclass(frozen=True)
class Broken:
    """A fleet broken by replacing ``old`` with ``new`` in ``file`` (or writing ``new``)."""

    name: str
    file: str
    old: str | None
    new: str
    line: int
    code: str
    fragment: str
    field: str | None = None
    hint: str | None = None
    reported_in: str | None = None  # when the problem is reported in another file


CASES = [
    Broken(
        "yaml syntax",
        "groups/callservers-fra.yaml",
        "hosts: [fra-call-01,",
        "hosts: [fra-call-01,,",
        5,
        "yaml.syntax",
        "YAML syntax error",
    ),
    Broken(
        "duplicate key",
        "streams/production.yaml",
        'version: "9.20261117.0"',
        'version: "9.20261117.0"\ncommit: ' + "b" * 64,
        11,
        "yaml.duplicate-key",
        "duplicate key `commit` (first defined on line 9)",
        field="commit",
    ),
    Broken(
        "tab",
        "groups/callservers-sin.yaml",
        "    duration: 3h",
        "\tduration: 3h",
        13,
        "yaml.tab",
        "tab character in indentation",
    ),
    Broken(
        "wrong type",
        "streams/production.yaml",
        "minHealthyHosts: 3",
        "minHealthyHosts: three",
        14,
        "schema.int_parsing",
        "valid integer",
        field="promotion.minHealthyHosts",
    ),
    Broken(
        "unquoted version read as a number",
        "streams/staging.yaml",
        'version: "9.20261124.1"',
        "version: 9.20261124",
        10,
        "schema.string_type",
        "valid string",
        field="version",
        hint="put the value in quotes",
    ),
    Broken(
        "unknown field",
        "fleet.yaml",
        "maxUnavailable: 1",
        "maxUnavailible: 1",
        12,
        "schema.extra_forbidden",
        "unknown field `maxUnavailible`",
        field="defaults.rollout.rebootBudget.maxUnavailible",
        hint="did you mean `maxUnavailable`?",
    ),
    Broken(
        "commit not 64 hex",
        "streams/production.yaml",
        "commit: 3f9a0c2e",
        "commit: 3F9A0c2e",
        9,
        "schema.string_pattern_mismatch",
        "is not 64 lowercase hex characters",
        field="commit",
    ),
    Broken(
        "short commit",
        "groups/callservers-fra-dsp.yaml",
        "commit: 5c2e8a1f",
        "commit: 5c2e8a1",
        11,
        "schema.string_pattern_mismatch",
        "(63 characters)",
        field="pin.commit",
    ),
    Broken(
        "percent over 100",
        "groups/staging-lab.yaml",
        "maxUnavailable: 50%",
        "maxUnavailable: 150%",
        14,
        "schema.value_error",
        "between 0% and 100%, got 150%",
        field="rollout.rebootBudget.maxUnavailable",
    ),
    Broken(
        "reboot budget of zero",
        "fleet.yaml",
        "maxUnavailable: 1",
        "maxUnavailable: 0",
        12,
        "schema.value_error_at",
        "a budget of 0 never allows a reboot",
        field="defaults.rollout.rebootBudget.maxUnavailable",
    ),
    Broken(
        "waves do not grow",
        "fleet.yaml",
        "waves: [1, 10%, 50%]",
        "waves: [1, 50%, 10%]",
        9,
        "schema.value_error_at",
        "waves must grow: wave 3 (10%)",
        field="defaults.rollout.waves[2]",
    ),
    Broken(
        "mixed waves shrink for the group's size",
        "groups/callservers-sin.yaml",
        "stream: production",
        "stream: production\nrollout:\n  waves: [5, 10%]",
        11,
        "schema.waves-shrink",
        "10% = 1 hosts) is smaller than wave 1 (5 = 5 hosts)",
        field="rollout.waves[1]",
    ),
    Broken(
        "unknown stream",
        "groups/callservers-nyc.yaml",
        "stream: production",
        "stream: prodution",
        9,
        "ref.unknown-stream",
        "unknown stream `prodution`",
        field="stream",
        hint="did you mean `production`?",
    ),
    Broken(
        "unknown dependsOn group",
        "groups/callservers-sin.yaml",
        "dependsOn: [callservers-dub]",
        "dependsOn: [callservers-dublin]",
        10,
        "ref.unknown-group",
        "unknown group `callservers-dublin`",
        field="dependsOn[0]",
    ),
    Broken(
        "unknown host",
        "groups/callservers-fra.yaml",
        "fra-call-04]",
        "fra-call-40]",
        5,
        "ref.unknown-host",
        "host `fra-call-40` is not in the inventory",
        field="hosts[3]",
    ),
    # Groups are matched in name order and the later claim carries the error, but either file
    # may be the one that changed (here the other one did): the message names both claims.
    Broken(
        "host in two groups",
        "groups/callservers-fra.yaml",
        "fra-call-04]",
        "fra-call-04, fra-call-05]",
        6,
        "membership.host-in-two-groups",
        "host `fra-call-05` is in two groups: `callservers-fra` (groups/callservers-fra.yaml:5, "
        "hosts[4]) and `callservers-fra-dsp` (groups/callservers-fra-dsp.yaml:6, selector)",
        field="selector",
        hint="narrow one of the selectors",
        reported_in="groups/callservers-fra-dsp.yaml",
    ),
    Broken(
        "dependsOn cycle",
        "groups/callservers-dub.yaml",
        "stream: production",
        "stream: production\ndependsOn: [callservers-sin]",
        11,
        "ref.depends-on-cycle",
        "callservers-dub → callservers-sin → callservers-dub",
        field="dependsOn[0]",
    ),
    Broken(
        "invalid cron",
        "groups/callservers-nyc.yaml",
        '"0 2 * * 1-5"',
        '"0 25 * * 1-5"',
        14,
        "schema.value_error",
        "invalid cron expression `0 25 * * 1-5`",
        field="maintenanceWindows[0].schedule",
    ),
    Broken(
        "unknown time zone",
        "groups/callservers-dub.yaml",
        "Europe/Dublin",
        "Europe/Dubln",
        15,
        "schema.value_error",
        "unknown IANA time zone `Europe/Dubln`; did you mean `Europe/Dublin`?",
        field="maintenanceWindows[0].timeZone",
    ),
    Broken(
        "token hash not sha256",
        "hosts/dub.yaml",
        "tokenSha256: f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b",
        "tokenSha256: correct-horse-battery-staple",
        12,
        "schema.string_pattern_mismatch",
        "is not 64 lowercase hex characters",
        field="hosts[0].tokenSha256",
    ),
    Broken(
        "unsupported apiVersion",
        "streams/staging.yaml",
        "ostree-fleet/v1alpha1",
        "ostree-fleet/v2",
        2,
        "schema.bad-apiversion",
        "unsupported apiVersion",
    ),
    Broken(
        "kind does not match folder",
        "groups/staging-lab.yaml",
        "kind: Group",
        "kind: Stream",
        3,
        "schema.bad-kind",
        "files under groups/ must have kind `Group`",
    ),
    Broken(
        "stream and pin",
        "groups/callservers-fra-dsp.yaml",
        "pin:",
        "stream: production\npin:",
        11,
        "schema.value_error_at",
        "set exactly one of `stream`",
        field="pin",
    ),
    Broken(
        "duplicate group name",
        "groups/callservers-sin.yaml",
        "name: callservers-sin",
        "name: callservers-nyc",
        4,
        "repo.duplicate-group",
        "group `callservers-nyc` is already defined in groups/callservers-nyc.yaml:4",
    ),
    Broken(
        "shared token",
        "hosts/lab.yaml",
        None,
        "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nlabels: {site: lab}\n"
        "hosts:\n"
        + HOST_ENTRY.format(name="lab-x1", token=TOKEN_A)
        + HOST_ENTRY.format(name="lab-x2", token=TOKEN_A),
        8,
        "repo.shared-token",
        "same token hash as `lab-x1`",
        field="hosts[1].tokenSha256",
    ),
    Broken(
        "shared FleetLock id",
        "hosts/lab.yaml",
        None,
        "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nlabels: {site: lab}\n"
        "hosts:\n"
        + HOST_ENTRY.format(name="lab-x1", token=TOKEN_A)
        + "    fleetLockId: e0f3745b108f471cbd4883c6fbed8cdd\n"
        + HOST_ENTRY.format(name="lab-x2", token="b" * 64)
        + "    fleetLockId: e0f3745b108f471cbd4883c6fbed8cdd\n",
        10,
        "repo.shared-fleetlock-id",
        "same FleetLock id as `lab-x1`",
        field="hosts[1].fleetLockId",
    ),
    Broken(
        "canary outside the group",
        "groups/callservers-dub.yaml",
        "dub-call-07]",
        "nyc-call-01]",
        11,
        "membership.canary-not-member",
        "canary `nyc-call-01` is not a host of this group",
        field="canaries[1]",
    ),
    Broken(
        "promotion from unknown stream",
        "streams/production.yaml",
        "from: staging",
        "from: stagin",
        12,
        "ref.unknown-stream",
        "promotion from unknown stream",
        field="promotion.from",
        hint="did you mean `staging`?",
    ),
    Broken(
        "promotion cycle",
        "streams/staging.yaml",
        'version: "9.20261124.1"',
        'version: "9.20261124.1"\npromotion: {from: production, soakTime: 1h, minHealthyHosts: 1}',
        12,
        "ref.promotion-cycle",
        "promotion cycle: production ← staging ← production",
        field="promotion.from",
        reported_in="streams/production.yaml",
    ),
    Broken(
        "not a mapping",
        "groups/staging-lab.yaml",
        None,
        "- just\n- a list\n",
        1,
        "schema.not-a-mapping",
        "expected a mapping",
    ),
    Broken(
        "missing required field",
        "streams/staging.yaml",
        "ref: callos/9/x86_64/staging\n",
        "",
        2,
        "schema.missing",
        "required field `ref` is missing",
        field="ref",
    ),
    # Remotes and refs the agent refuses to put on a command line: a revision naming them
    # is one no host could apply, so the fleet repo refuses it too (reconciler/agent/rules.py).
    Broken(
        "stream remote that reads as an option",
        "streams/production.yaml",
        "remote: callos",
        "remote: -oops",
        6,
        "schema.string_pattern_mismatch",
        "`-oops` (5 characters) is not an OSTree remote name",
        field="remote",
    ),
    Broken(
        "stream ref that climbs out",
        "streams/production.yaml",
        "ref: callos/9/x86_64/production",
        "ref: a/../../b",
        8,
        "schema.string_pattern_mismatch",
        "`a/../../b` (9 characters) is not an OSTree ref",
        field="ref",
    ),
    Broken(
        "stream ref with a trailing newline",
        "streams/production.yaml",
        "ref: callos/9/x86_64/production",
        'ref: "callos/9/x86_64/production\\n"',
        8,
        "schema.string_pattern_mismatch",
        "is not an OSTree ref",
        field="ref",
    ),
    Broken(
        "pin remote that reads as an option",
        "groups/callservers-fra-dsp.yaml",
        'version: "9.20260915.2"',
        'version: "9.20260915.2"\n  remote: --help',
        13,
        "schema.string_pattern_mismatch",
        "`--help` (6 characters) is not an OSTree remote name",
        field="pin.remote",
    ),
    Broken(
        "pin ref that climbs out",
        "groups/callservers-fra-dsp.yaml",
        'version: "9.20260915.2"',
        'version: "9.20260915.2"\n  ref: a/../../b',
        13,
        "schema.string_pattern_mismatch",
        "is not an OSTree ref",
        field="pin.ref",
    ),
    Broken(
        "hold without a reason",
        "hosts/dub.yaml",
        "    tokenSha256: f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b\n",
        "    tokenSha256: f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b\n"
        '    hold: {reason: ""}\n',
        13,
        "schema.string_too_short",
        "at least 1 character",
        field="hosts[0].hold.reason",
    ),
    Broken(
        "hold that is not a mapping",
        "hosts/dub.yaml",
        "    tokenSha256: f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b\n",
        "    tokenSha256: f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b\n"
        "    hold: true\n",
        13,
        "schema.model_type",
        "input should be a valid dictionary",
        field="hosts[0].hold",
    ),
    Broken(
        "freeze that ends before it starts",
        "fleet.yaml",
        FLEET_DESCRIPTION,
        FLEET_DESCRIPTION + "freezes:\n"
        "  - name: xmas\n"
        "    start: 2026-12-20\n"
        "    end: 2026-12-19 18:00\n"
        "    timeZone: Europe/Dublin\n"
        "    reason: holidays\n",
        10,
        "schema.value_error_at",
        "a freeze must end after it starts",
        field="freezes[0].end",
    ),
    Broken(
        "freeze time that is not a time",
        "fleet.yaml",
        FLEET_DESCRIPTION,
        FLEET_DESCRIPTION + "freezes:\n"
        "  - name: xmas\n"
        "    start: next tuesday\n"
        "    end: 2026-12-19 18:00\n"
        "    timeZone: Europe/Dublin\n"
        "    reason: holidays\n",
        9,
        "schema.value_error",
        "`next tuesday` is not a date and time",
        field="freezes[0].start",
    ),
    Broken(
        "freeze time with an offset",
        "fleet.yaml",
        FLEET_DESCRIPTION,
        FLEET_DESCRIPTION + "freezes:\n"
        "  - name: xmas\n"
        "    start: 2026-12-20T00:00:00+01:00\n"
        "    end: 2026-12-21\n"
        "    timeZone: Europe/Dublin\n"
        "    reason: holidays\n",
        9,
        "schema.value_error",
        "without an offset",
        field="freezes[0].start",
    ),
    Broken(
        "freeze in an unknown time zone",
        "fleet.yaml",
        FLEET_DESCRIPTION,
        FLEET_DESCRIPTION + "freezes:\n"
        "  - name: xmas\n"
        "    start: 2026-12-20\n"
        "    end: 2026-12-21\n"
        "    timeZone: Europe/Dublni\n"
        "    reason: holidays\n",
        11,
        "schema.value_error",
        "unknown IANA time zone",
        field="freezes[0].timeZone",
    ),
    Broken(
        "freeze without a reason",
        "fleet.yaml",
        FLEET_DESCRIPTION,
        FLEET_DESCRIPTION + "freezes:\n"
        "  - name: xmas\n"
        "    start: 2026-12-20\n"
        "    end: 2026-12-21\n"
        "    timeZone: Europe/Dublin\n",
        8,
        "schema.missing",
        "required field `reason` is missing",
        field="freezes[0].reason",
    ),
]


CASE_BY_NAME = {case.name: case for case in CASES}


def _break(fleet_dir: Path, case: Broken) -> None:
    path = fleet_dir / case.file
    if case.old is None:
        path.write_text(case.new)
        return
    text = path.read_text()
    assert case.old in text, f"test case no longer matches {case.file}"
    path.write_text(text.replace(case.old, case.new, 1))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_error_class_names_file_line_and_problem(fleet_dir: Path, case: Broken) -> None:
    _break(fleet_dir, case)
    result = load_fleet(DirectorySource(fleet_dir))

    assert result.fleet is None
    matching = [p for p in result.errors if p.code == case.code]
    assert matching, f"no {case.code} among {[p.code for p in result.problems]}"
    problem = matching[0]
    assert (problem.file, problem.line) == (case.reported_in or case.file, case.line)
    assert case.fragment in problem.message
    if case.field is not None:
        assert problem.field == case.field
    if case.hint is not None:
        assert problem.hint is not None
        assert case.hint in problem.hint


def test_example_fleet_is_valid_without_warnings() -> None:
    result = load_fleet(DirectorySource(EXAMPLE_FLEET))
    assert result.problems == ()
    fleet = result.fleet
    assert fleet is not None
    assert len(fleet.hosts) == 33
    assert fleet.members["callservers-fra-dsp"] == ("fra-call-05", "fra-call-06")
    assert fleet.group_of("nyc-call-03") == "callservers-nyc"


def test_host_in_no_group_is_a_warning_not_an_error(fleet_dir: Path) -> None:
    inventory = fleet_dir / "hosts" / "spare.yaml"
    inventory.write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nhosts:\n"
        + HOST_ENTRY.format(name="spare-01", token=TOKEN_A)
    )
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is not None
    [warning] = result.problems
    assert warning.severity is Severity.WARNING
    assert (warning.file, warning.line, warning.code) == (
        "hosts/spare.yaml",
        4,
        "membership.host-in-no-group",
    )


def test_selector_matching_nothing_is_a_warning(fleet_dir: Path) -> None:
    group = fleet_dir / "groups" / "callservers-sin.yaml"
    group.write_text(group.read_text().replace("site: sin", "site: syd"))
    result = load_fleet(DirectorySource(fleet_dir))
    codes = {(p.code, p.severity) for p in result.problems}
    assert ("membership.empty-selector", Severity.WARNING) in codes


def test_all_errors_are_reported_in_one_run(fleet_dir: Path) -> None:
    for name in (
        "duplicate key",
        "unknown field",
        "unknown stream",
        "unknown time zone",
        "token hash not sha256",
    ):
        case = CASE_BY_NAME[name]
        _break(fleet_dir, case)
    result = load_fleet(DirectorySource(fleet_dir))
    found = {(p.file, p.code) for p in result.errors}
    assert {
        ("streams/production.yaml", "yaml.duplicate-key"),
        ("fleet.yaml", "schema.extra_forbidden"),
        ("groups/callservers-nyc.yaml", "ref.unknown-stream"),
        ("groups/callservers-dub.yaml", "schema.value_error"),
        ("hosts/dub.yaml", "schema.string_pattern_mismatch"),
    } <= found


def test_file_over_the_size_limit(fleet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 1000)
    result = load_fleet(DirectorySource(fleet_dir))
    too_large = {p.file for p in result.errors if p.code == "file.too-large"}
    assert too_large == {f"hosts/{site}.yaml" for site in ("dub", "fra", "nyc", "sin")}


def test_alias_bomb_in_an_inventory_is_refused(fleet_dir: Path) -> None:
    lines = ["apiVersion: ostree-fleet/v1alpha1", "kind: HostInventory", "labels: &l0 {a: b}"]
    lines += [
        f"x{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]"
        for i in range(1, 12)
    ]
    (fleet_dir / "hosts" / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = load_fleet(DirectorySource(fleet_dir))
    assert [(p.file, p.code) for p in result.errors] == [("hosts/bomb.yaml", "yaml.too-many-nodes")]


def test_symlinked_file_is_refused(fleet_dir: Path) -> None:
    (fleet_dir / "groups" / "link.yaml").symlink_to(fleet_dir / "groups" / "staging-lab.yaml")
    result = load_fleet(DirectorySource(fleet_dir))
    assert ("groups/link.yaml", "file.not-regular") in {(p.file, p.code) for p in result.errors}


def test_missing_fleet_yaml(fleet_dir: Path) -> None:
    (fleet_dir / "fleet.yaml").unlink()
    result = load_fleet(DirectorySource(fleet_dir))
    assert [(p.file, p.code) for p in result.errors] == [("fleet.yaml", "repo.no-fleet-file")]


def test_other_files_in_the_repo_are_ignored(fleet_dir: Path) -> None:
    (fleet_dir / "README.md").write_text("# our fleet\n")
    (fleet_dir / "groups" / "notes.txt").write_text("not yaml: [\n")
    (fleet_dir / ".github").mkdir()
    (fleet_dir / ".github" / "ci.yaml").write_text("on: push\n")
    assert load_fleet(DirectorySource(fleet_dir)).problems == ()


def test_load_or_raise_carries_every_problem(fleet_dir: Path) -> None:
    _break(fleet_dir, CASE_BY_NAME["unknown field"])
    _break(fleet_dir, CASE_BY_NAME["unknown stream"])
    with pytest.raises(FleetRepoInvalid) as raised:
        load_fleet_or_raise(DirectorySource(fleet_dir))
    assert len(raised.value.problems) == 2
    assert "fleet.yaml:12:7" in str(raised.value)


SYDNEY_INVENTORY = (
    "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\n"
    "labels: {site: dub, role: callserver, timezone: Australia/Sydney}\n"
    "{windows}hosts:\n" + HOST_ENTRY.format(name="syd-call-01", token=TOKEN_A)
)
SYDNEY_NIGHTS = (
    'maintenanceWindows:\n  - {schedule: "0 2 * * *", duration: 3h, timeZone: Australia/Sydney}\n'
)


def test_group_spanning_time_zones_with_one_set_of_windows_is_a_warning(fleet_dir: Path) -> None:
    # A Sydney server joins the Dublin group (its selector matches) with no windows of its own:
    # it would reboot in the Dublin night, the Sydney afternoon.
    (fleet_dir / "hosts" / "syd.yaml").write_text(SYDNEY_INVENTORY.replace("{windows}", ""))
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is not None
    [warning] = result.problems
    assert warning.severity is Severity.WARNING
    assert (warning.file, warning.line, warning.field, warning.code) == (
        "groups/callservers-dub.yaml",
        12,
        "maintenanceWindows",
        "windows.zones-not-followed",
    )
    assert "2 time zones (Australia/Sydney, Europe/Dublin" in warning.message
    assert warning.hint is not None
    assert "hosts/<site>.yaml" in warning.hint


def test_windows_on_an_inventory_file_apply_to_its_hosts_over_the_group(fleet_dir: Path) -> None:
    (fleet_dir / "hosts" / "syd.yaml").write_text(
        SYDNEY_INVENTORY.replace("{windows}", SYDNEY_NIGHTS)
    )
    nyc = fleet_dir / "hosts" / "nyc.yaml"
    nyc.write_text(  # one host's own entry wins over its file and its group: any time
        nyc.read_text().replace(
            "  - name: nyc-call-01\n", "  - name: nyc-call-01\n    maintenanceWindows: []\n"
        )
    )
    result = load_fleet(DirectorySource(fleet_dir))
    fleet = result.fleet
    assert fleet is not None
    assert result.problems == ()  # the Sydney host follows its own night
    assert fleet.group_of("syd-call-01") == "callservers-dub"
    [window] = fleet.host_windows("callservers-dub", "syd-call-01")
    assert (window.schedule, window.time_zone) == ("0 2 * * *", "Australia/Sydney")
    dublin = fleet.host_windows("callservers-dub", "dub-call-01")
    assert dublin == fleet.maintenance_windows("callservers-dub")  # no windows of its own
    assert fleet.host_windows("callservers-nyc", "nyc-call-01") == []
    assert len(fleet.host_windows("callservers-nyc", "nyc-call-02")) == 2


def test_windows_on_an_inventory_file_are_validated(fleet_dir: Path) -> None:
    bad = SYDNEY_NIGHTS.replace("Australia/Sydney", "Australia/Sidney")
    (fleet_dir / "hosts" / "syd.yaml").write_text(SYDNEY_INVENTORY.replace("{windows}", bad))
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is None
    [error] = result.errors
    assert (error.file, error.line, error.field) == (
        "hosts/syd.yaml",
        5,
        "maintenanceWindows[0].timeZone",
    )
