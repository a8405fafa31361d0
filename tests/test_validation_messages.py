"""Validation errors that teach: the root cause only, at its own line, saying what to write.

Each test breaks a copy of the example fleet the way a new engineer did, and asserts the
whole list of errors, so an echo of the root error (a cascade) fails the test too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.fleetrepo.timezones import check_time_zone
from reconciler.problems import Problem

DUBLIN_TOKEN = "f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b"


def _edit(fleet_dir: Path, file: str, old: str, new: str) -> None:
    path = fleet_dir / file
    text = path.read_text()
    assert old in text, f"{old!r} is no longer in {file}"
    path.write_text(text.replace(old, new, 1))


def _errors(fleet_dir: Path) -> list[Problem]:
    return list(load_fleet(DirectorySource(fleet_dir)).errors)


def _where(problem: Problem) -> tuple[str, int, int, str, str]:
    return (problem.file, problem.line, problem.column, problem.field, problem.code)


# --- a misspelt key explains a missing one -------------------------------------------------


def test_misspelt_stream_is_reported_at_its_line_with_did_you_mean(fleet_dir: Path) -> None:
    _edit(fleet_dir, "groups/callservers-nyc.yaml", "stream: production", "steam: production")
    [error] = _errors(fleet_dir)  # not also "set exactly one of `stream` or `pin`" at 1:1
    assert _where(error) == (
        "groups/callservers-nyc.yaml",
        9,
        1,
        "steam",
        "schema.extra_forbidden",
    )
    assert error.message == "unknown field `steam`"
    assert error.hint == "did you mean `stream`?"


def test_misspelt_selector_is_not_also_a_group_without_hosts(fleet_dir: Path) -> None:
    _edit(fleet_dir, "groups/staging-lab.yaml", "selector:", "selecter:")
    [error] = _errors(fleet_dir)
    assert _where(error)[:4] == ("groups/staging-lab.yaml", 6, 1, "selecter")
    assert error.hint == "did you mean `selector`?"


def test_misspelt_required_field_replaces_the_missing_field_error(fleet_dir: Path) -> None:
    _edit(fleet_dir, "streams/staging.yaml", "commit:", "comit:")
    [error] = _errors(fleet_dir)  # pydantic also says `commit` is missing: not shown
    assert _where(error) == ("streams/staging.yaml", 9, 1, "comit", "schema.extra_forbidden")
    assert error.hint == "did you mean `commit`? (`commit` is required and missing)"


def test_did_you_mean_offers_a_field_allowed_where_the_typo_is(fleet_dir: Path) -> None:
    # `reason` is a field of a freeze, a hold and a revocation, but not of a host: nothing a
    # host may have is close to `resaon`, so no hint rather than one refused there too.
    _edit(
        fleet_dir,
        "hosts/dub.yaml",
        f"tokenSha256: {DUBLIN_TOKEN}",
        f"tokenSha256: {DUBLIN_TOKEN}\n    resaon: repair",
    )
    [error] = _errors(fleet_dir)
    assert _where(error)[:4] == ("hosts/dub.yaml", 13, 5, "hosts[0].resaon")
    assert error.hint is None


def test_an_unrelated_unknown_key_does_not_hide_a_missing_stream(fleet_dir: Path) -> None:
    _edit(fleet_dir, "groups/callservers-nyc.yaml", "stream: production\n", "")
    _edit(fleet_dir, "groups/callservers-nyc.yaml", "rollout:", "rollot:")
    errors = _errors(fleet_dir)
    assert [(e.line, e.code) for e in errors] == [
        (2, "schema.value_error_at"),  # the group as a whole: at its first key
        (10, "schema.extra_forbidden"),
    ]
    assert "set exactly one of `stream`" in errors[0].message
    assert errors[1].hint == "did you mean `rollout`?"


# --- time zones ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "fragment"),
    [
        ("EST", "write `America/New_York` or `America/Toronto`"),
        ("SGT", "write `Asia/Singapore`"),
        (
            "IST",
            "write `Asia/Kolkata` (India), `Europe/Dublin` (Ireland) or `Asia/Jerusalem` (Israel)",
        ),
        ("CEST", "`Europe/Berlin`"),
        ("EST5EDT", "`America/New_York`"),
        ("GMT", "`Europe/London` (GMT in winter, BST in summer)"),
        ("Zulu", "another spelling of UTC; write `UTC`"),
        ("Etc/GMT+5", "a fixed offset of UTC-5"),
        ("US/Eastern", "legacy alias in the zone database; write `America/New_York`"),
        ("Singapore", "write `Asia/Singapore`"),
        ("Europe/Pairs", "unknown IANA time zone `Europe/Pairs`; did you mean `Europe/Paris`?"),
        ("Asia/Singpore", "did you mean `Asia/Singapore`?"),
        ("europe/dublin", "did you mean `Europe/Dublin`?"),
        ("Europe/Frankfurt", "an IANA name `Area/Location`"),  # no city far off suggested
    ],
)
def test_time_zone_refusals_name_the_zone_to_write(zone: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        check_time_zone(zone)


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Europe/Dublin", "America/Argentina/Salta"])
def test_place_names_and_utc_are_accepted(zone: str) -> None:
    assert check_time_zone(zone) == zone


def _freeze(zone: str) -> str:
    return (
        "freezes:\n  - name: xmas\n    start: 2026-12-20\n    end: 2026-12-27\n"
        f"    timeZone: {zone}\n    reason: holidays\n"
    )


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "field"),
    [
        (
            "groups/callservers-dub.yaml",
            "timeZone: Europe/Dublin",
            "timeZone: EST",
            15,
            "maintenanceWindows[0].timeZone",
        ),
        (
            "groups/staging-lab.yaml",
            "maintenanceWindows: []",
            "maintenanceWindows: []\n" + _freeze("EST"),
            20,
            "freezes[0].timeZone",
        ),
        (
            "fleet.yaml",
            "kind: Fleet\n",
            "kind: Fleet\n" + _freeze("EST"),
            9,
            "freezes[0].timeZone",
        ),
        (
            "hosts/dub.yaml",
            f"tokenSha256: {DUBLIN_TOKEN}",
            f"tokenSha256: {DUBLIN_TOKEN}\n    maintenanceWindows:\n"
            '      - {schedule: "0 2 * * *", duration: 1h, timeZone: EST}',
            14,
            "hosts[0].maintenanceWindows[0].timeZone",
        ),
        (
            "hosts/dub.yaml",
            "hosts:\n",
            'maintenanceWindows:\n  - {schedule: "0 2 * * *", duration: 1h, timeZone: EST}\n'
            "hosts:\n",
            10,
            "maintenanceWindows[0].timeZone",
        ),
    ],
    ids=["group window", "group freeze", "fleet freeze", "host window", "inventory window"],
)
def test_every_place_a_time_zone_is_written_refuses_an_abbreviation(
    fleet_dir: Path, file: str, old: str, new: str, line: int, field: str
) -> None:
    _edit(fleet_dir, file, old, new)
    [error] = _errors(fleet_dir)
    assert (error.file, error.line, error.field) == (file, line, field)
    assert error.message.startswith("`EST` is an abbreviation, not an IANA time zone")
    assert "`America/New_York`" in error.message


def test_fleet_default_windows_refuse_an_abbreviation(fleet_dir: Path) -> None:
    fleet_yaml = (fleet_dir / "fleet.yaml").read_text()
    assert "maintenanceWindows" not in fleet_yaml  # the example has none: add some
    _edit(
        fleet_dir,
        "fleet.yaml",
        "  rollout:\n",
        '  maintenanceWindows:\n    - {schedule: "0 2 * * *", duration: 1h, timeZone: SGT}\n'
        "  rollout:\n",
    )
    [error] = _errors(fleet_dir)
    assert (error.file, error.field) == ("fleet.yaml", "defaults.maintenanceWindows[0].timeZone")
    assert "write `Asia/Singapore`" in error.message


# --- cascades: only the root error ---------------------------------------------------------


def test_invalid_host_entry_does_not_cascade_into_canary_errors(fleet_dir: Path) -> None:
    # dub-call-01 is a canary of callservers-dub; its file no longer validates.
    _edit(fleet_dir, "hosts/dub.yaml", f"tokenSha256: {DUBLIN_TOKEN}", "tokenSha256: not-a-hash")
    assert [_where(e) for e in _errors(fleet_dir)] == [
        ("hosts/dub.yaml", 12, 5, "hosts[0].tokenSha256", "schema.string_pattern_mismatch")
    ]


def test_shared_token_does_not_cascade_into_canary_errors(fleet_dir: Path) -> None:
    dub = (fleet_dir / "hosts" / "dub.yaml").read_text()
    other_token = dub.split("tokenSha256: ")[2].split("\n")[0]
    # dub-call-07, the second canary, now shares dub-call-06's token and is refused.
    seventh = dub.split("- name: dub-call-07")[1].split("tokenSha256: ")[1].split("\n")[0]
    _edit(fleet_dir, "hosts/dub.yaml", f"tokenSha256: {seventh}", f"tokenSha256: {other_token}")
    assert [e.code for e in _errors(fleet_dir)] == ["repo.shared-token"]


def test_unreadable_inventory_does_not_cascade_into_unknown_hosts(fleet_dir: Path) -> None:
    # callservers-fra names its hosts, which live in hosts/fra.yaml.
    _edit(fleet_dir, "hosts/fra.yaml", "labels:\n  site: fra", "labels:\n  site: fra\n   x: 1")
    assert [(e.file, e.code) for e in _errors(fleet_dir)] == [("hosts/fra.yaml", "yaml.syntax")]


def test_unreadable_stream_file_does_not_cascade_into_unknown_streams(fleet_dir: Path) -> None:
    _edit(fleet_dir, "streams/production.yaml", "remote: callos", "remote: [callos")
    assert [(e.file, e.code) for e in _errors(fleet_dir)] == [
        ("streams/production.yaml", "yaml.syntax")
    ]


def test_unreadable_group_file_does_not_cascade_into_unknown_dependencies(
    fleet_dir: Path,
) -> None:
    # callservers-fra, -nyc and -sin depend on callservers-dub.
    _edit(fleet_dir, "groups/callservers-dub.yaml", "canaries: [", "canaries: [[")
    assert [(e.file, e.code) for e in _errors(fleet_dir)] == [
        ("groups/callservers-dub.yaml", "yaml.syntax")
    ]


def test_a_reference_to_nothing_declared_is_still_an_error(fleet_dir: Path) -> None:
    # The suppression above must not hide a real typo next to an unreadable file.
    _edit(fleet_dir, "streams/production.yaml", "remote: callos", "remote: [callos")
    _edit(fleet_dir, "groups/staging-lab.yaml", "stream: staging", "stream: stagin")
    assert [(e.file, e.code) for e in _errors(fleet_dir)] == [
        ("groups/staging-lab.yaml", "ref.unknown-stream"),
        ("streams/production.yaml", "yaml.syntax"),
    ]


def test_canary_of_a_valid_inventory_is_still_checked_when_another_file_is_invalid(
    fleet_dir: Path,
) -> None:
    _edit(fleet_dir, "hosts/nyc.yaml", "tokenSha256: ", "tokenSha256: x")  # first nyc host
    _edit(fleet_dir, "groups/callservers-dub.yaml", "dub-call-07]", "lab-call-01]")
    codes = sorted((e.file, e.code) for e in _errors(fleet_dir))
    assert codes == [
        ("groups/callservers-dub.yaml", "membership.canary-not-member"),
        ("hosts/nyc.yaml", "schema.string_pattern_mismatch"),
    ]


# --- a host in two groups names both claims -------------------------------------------------


def test_host_in_two_groups_names_both_files_and_lines(fleet_dir: Path) -> None:
    # The dsp group's selector is widened to every Frankfurt host: the change is in that file,
    # and callservers-fra (untouched) names four of them.
    _edit(fleet_dir, "groups/callservers-fra-dsp.yaml", "    hardware: dsp-card\n", "")
    [error] = _errors(fleet_dir)
    # Groups are matched in name order, so the changed file carries the error here; were it
    # the other way round, the message would still name it.
    assert _where(error) == (
        "groups/callservers-fra-dsp.yaml",
        6,
        1,
        "selector",
        "membership.host-in-two-groups",
    )
    assert error.message == (
        "hosts `fra-call-01`, `fra-call-02`, `fra-call-03` and 1 more are in two groups: "
        "`callservers-fra` (groups/callservers-fra.yaml:5, hosts) and "
        "`callservers-fra-dsp` (groups/callservers-fra-dsp.yaml:6, selector)"
    )
