"""The change review behind `reconciler plan`: one test per blocker, waves and windows from the
engine's own code, and the Markdown a pull request gets, compared with golden files.

Regenerate the golden files after an intended change of the output with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_review.py` and review the diff.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.demo.testbed import make_archive_repo
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.ostree.commits import CheckResult
from reconciler.ostree.remote import commit_exists
from reconciler.review.change import invalid_review, review_change
from reconciler.review.live import LiveGroup, LiveHost, LiveState
from reconciler.review.model import (
    BlockerCode,
    ChangeKind,
    ChangeReview,
    CommitRef,
    GroupReview,
    HostMove,
)
from reconciler.review.render import render_json, render_markdown, render_text, summary
from reconciler.review.timeline import predict_change
from reconciler.rollout.prediction import Assumptions
from reconciler.rollout.spec import group_spec
from tests.conftest import EXAMPLE_FLEET

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
PRODUCTION = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"
STAGING = "8e1b4d5f2a7c9e0b3d6f1a4c7e2b5d8f0a3c6e9b2d5f8a1c4e7b0d3f6a9c2e5b"
PINNED = "5c2e8a1f4b7d0c3e6a9f2b5d8c1e4a7f0b3d6c9e2a5f8b1d4c7e0a3f6b9d2c58"
MISSING = "ab" * 32  # hex with letters: all-digit checksums would be read by YAML as numbers
GOLDEN = Path(__file__).parent / "golden"
PRODUCTION_GROUPS = ["callservers-dub", "callservers-fra", "callservers-nyc", "callservers-sin"]


def present(url: str, commit: str) -> bool:
    return True


def load(root: Path) -> Fleet:
    result = load_fleet(DirectorySource(root))
    assert result.fleet is not None, result.problems
    return result.fleet


def edit(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new))


def promote(root: Path, commit: str = STAGING, version: str = "9.20261124.1") -> None:
    """The pull request automatic promotion would open: production takes the staging build."""
    edit(root, "streams/production.yaml", PRODUCTION, commit)
    edit(root, "streams/production.yaml", '"9.20261117.0"', f'"{version}"')


def pause(root: Path, group: str) -> None:
    with (root / f"groups/{group}.yaml").open("a") as file:
        file.write("paused: true\n")


def group(review: ChangeReview, name: str) -> GroupReview:
    [found] = [g for g in review.groups if g.name == name]
    return found


def codes(review: ChangeReview, name: str) -> list[tuple[str, bool]]:
    return [(b.code.value, b.blocking) for b in group(review, name).blockers]


@pytest.fixture
def base() -> Fleet:
    return load(EXAMPLE_FLEET)


def test_a_promotion_moves_production_groups_and_dependents_wait_for_dublin(
    fleet_dir: Path, base: Fleet
) -> None:
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert [g.name for g in review.groups] == PRODUCTION_GROUPS
    dub = group(review, "callservers-dub")
    assert dub.kind is ChangeKind.COMMIT
    assert (dub.from_, dub.to) == (
        dub.from_.__class__(PRODUCTION, "9.20261117.0"),
        dub.to.__class__(STAGING, "9.20261124.1"),
    )
    assert dub.stream == "production"
    assert dub.blockers == ()
    for name in PRODUCTION_GROUPS[1:]:
        assert codes(review, name) == [("depends_on_pending", False)]
        assert "which this change also starts there" in group(review, name).blockers[0].message
    assert [u.name for u in review.unchanged] == ["callservers-fra-dsp", "staging-lab"]
    assert [(c.subject, c.result) for c in review.checks] == [
        ("stream production", CheckResult.PRESENT)
    ]
    assert not review.blocked


def test_waves_and_canaries_are_the_rollout_engines(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    proposed = load(fleet_dir)
    review = review_change(proposed, base, AT, commit_checker=present)
    for reviewed in review.groups:
        spec = group_spec(proposed, reviewed.name)
        assert tuple(h for w in reviewed.waves for h in w.hosts) == spec.order
        ends = [sum(w.size for w in reviewed.waves[: i + 1]) for i in range(len(reviewed.waves))]
        assert tuple(ends) == spec.wave_ends
    dub = group(review, "callservers-dub")
    # waves [1, 10%, 50%] of 10 hosts: 10% is 1 host, no larger than wave 1, so it is dropped
    assert [w.size for w in dub.waves] == [1, 4, 5]
    assert dub.canaries == ("dub-call-01", "dub-call-07")
    assert dub.waves[0].hosts == ("dub-call-01",)
    assert dub.waves[1].hosts[0] == "dub-call-07"


def test_next_windows_open_in_the_groups_own_time_zone(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    proposed = load(fleet_dir)
    review = review_change(proposed, base, AT, commit_checker=present)
    dub, sin, nyc = (
        group(review, n) for n in ("callservers-dub", "callservers-sin", "callservers-nyc")
    )
    assert [w.starts_at for w in dub.windows] == [
        datetime(2026, 11, 26 + d, 1, 0, tzinfo=UTC)
        for d in range(3)  # Dublin is on UTC in winter
    ]
    assert sin.windows[0].starts_at == datetime(2026, 11, 25, 18, 30, tzinfo=UTC)  # 02:30 +08
    # Weeknights 02:00 EST, then the Saturday window at midnight.
    assert [w.starts_at.hour for w in nyc.windows] == [7, 7, 5]
    assert all(not w.open_now for w in dub.windows)
    inside = review_change(
        proposed, base, AT.replace(hour=2) + timedelta(days=1), commit_checker=present
    )
    first = group(inside, "callservers-dub").windows[0]
    assert first.open_now
    assert first.reboot_deadline == datetime(2026, 11, 26, 4, 40, tzinfo=UTC)  # 20m margin
    text = render_text(inside)
    assert "Thu 2026-11-26 01:00–05:00 Europe/Dublin (open now; reboots start for 2h40m)" in text


def test_paused_blocks(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    pause(fleet_dir, "callservers-sin")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert codes(review, "callservers-sin") == [
        ("paused", True),
        ("depends_on_pending", False),
    ]
    assert group(review, "callservers-sin").settings_changed == ("paused: false → true",)
    assert review.blocked


def test_pausing_a_group_with_nothing_to_roll_out_blocks_nothing(
    fleet_dir: Path, base: Fleet
) -> None:
    pause(fleet_dir, "staging-lab")
    edit(fleet_dir, "groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 45m")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    [lab] = review.groups
    assert (lab.kind, lab.blockers) == (ChangeKind.SETTINGS, ())
    assert lab.settings_changed == ("paused: false → true", "rollout.soakTime")
    assert not review.blocked


def _live(*groups: LiveGroup, hosts: tuple[LiveHost, ...] = ()) -> LiveState:
    return LiveState(
        "http://127.0.0.1:8443", {g.name: g for g in groups}, {h.name: h for h in hosts}
    )


def _settled(name: str, commit: str = PRODUCTION, version: str = "9.20261117.0") -> LiveGroup:
    return LiveGroup(
        name,
        commit,
        version,
        "in_sync",
        "all_hosts_done",
        f"all hosts run {commit[:12]}",
        3,
        frozenset({commit}),
    )


HALTED_DUB = LiveGroup(
    "callservers-dub",
    PRODUCTION,
    "9.20261117.0",
    "halted",
    "failure_threshold",
    "halted after 1 failure(s) (threshold 1): dub-call-01 booted 9.20261117.0 and greenboot "
    "reports red",
    1,
    frozenset(),
    halt_resume_token=None,
)


def test_halted_blocks_until_a_new_resume_value(fleet_dir: Path, base: Fleet) -> None:
    live = _live(HALTED_DUB)
    review = review_change(load(fleet_dir), base, AT, live=live, commit_checker=present)
    dub = group(review, "callservers-dub")
    assert dub.kind is ChangeKind.CONTINUES
    assert codes(review, "callservers-dub") == [("halted", True)]
    assert "set a new `resume` value" in dub.blockers[0].message
    assert review.blocked

    edit(
        fleet_dir,
        "groups/callservers-dub.yaml",
        "stream: production",
        "stream: production\nresume: OPS-2291",
    )
    resumed = group(review_change(load(fleet_dir), base, AT, live=live), "callservers-dub")
    assert resumed.blockers == ()
    assert resumed.notes == ("resumes the halted rollout (`resume: OPS-2291`)",)


def test_a_new_commit_ends_a_halt(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    review = review_change(
        load(fleet_dir), base, AT, live=_live(HALTED_DUB), commit_checker=present
    )
    dub = group(review, "callservers-dub")
    assert dub.blockers == ()
    assert dub.notes == ("starts a new rollout, which ends the halted rollout to 9.20261117.0",)


def test_depends_on_a_group_that_runs_another_commit_blocks(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    edit(
        fleet_dir,
        "groups/callservers-dub.yaml",
        "stream: production",
        f"pin:\n  commit: {PRODUCTION}\n  reason: hold Dublin for the conference",
    )
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert codes(review, "callservers-nyc") == [("depends_on_pending", True)]
    assert group(review, "callservers-nyc").blockers[0].message == (
        "waits for callservers-dub to complete 9.20261124.1; callservers-dub is set to run "
        "3f9a0c2e6b1d"  # a pin without a version is named by its commit
    )
    assert review.blocked


def test_depends_on_follows_what_the_live_server_completed(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    proposed = load(fleet_dir)
    done = review_change(
        proposed,
        base,
        AT,
        live=_live(_settled("callservers-dub", STAGING, "9.20261124.1")),
        commit_checker=present,
    )
    assert codes(done, "callservers-nyc") == []
    rolling = LiveGroup(
        "callservers-dub", STAGING, None, "soaking", "soaking", "wave 1/3 soaking", 1, frozenset()
    )
    pending = review_change(proposed, base, AT, live=_live(rolling), commit_checker=present)
    [blocker] = group(pending, "callservers-nyc").blockers
    assert blocker.code is BlockerCode.DEPENDS_ON_PENDING
    assert not blocker.blocking
    assert "(it is soaking)" in blocker.message


def test_a_dependency_that_is_blocked_blocks_its_dependents(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    pause(fleet_dir, "callservers-dub")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert codes(review, "callservers-fra") == [("depends_on_pending", True)]
    assert (
        group(review, "callservers-fra").blockers[0].message.endswith("callservers-dub is blocked")
    )


@pytest.mark.needs_tool("ostree")
def test_commit_missing_from_a_real_ostree_repo(
    fleet_dir: Path, base: Fleet, tmp_path: Path
) -> None:
    [built] = make_archive_repo(tmp_path / "repo", ["9.20261124.1"])
    edit(
        fleet_dir,
        "streams/production.yaml",
        "https://ostree.callos.example.net/repo",
        f"file://{tmp_path / 'repo'}",
    )
    promote(fleet_dir, commit=built)
    there = review_change(load(fleet_dir), base, AT, commit_checker=commit_exists)
    assert [c.result for c in there.checks] == [CheckResult.PRESENT]
    assert not there.blocked

    edit(fleet_dir, "streams/production.yaml", built, MISSING)
    review = review_change(load(fleet_dir), base, AT, commit_checker=commit_exists)
    assert [c.result for c in review.checks] == [CheckResult.MISSING]
    assert codes(review, "callservers-dub") == [("commit_missing", True)]
    assert [b.code for b in review.revision_blockers] == [BlockerCode.COMMIT_MISSING]
    assert "the reconciler refuses the whole revision" in review.revision_blockers[0].message
    assert review.blocked


def test_an_unreachable_ostree_repo_cannot_check_and_does_not_crash(
    fleet_dir: Path, base: Fleet
) -> None:
    edit(
        fleet_dir,
        "streams/production.yaml",
        "https://ostree.callos.example.net/repo",
        "http://127.0.0.1:9/repo",  # discard port: nothing listens
    )
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=commit_exists)
    [check] = review.checks
    assert check.result is CheckResult.UNCHECKABLE
    assert codes(review, "callservers-dub") == [("commit_uncheckable", True)]
    assert review.revision_blockers[0].code is BlockerCode.COMMIT_UNCHECKABLE


MIRROR_URL = "https://mirror.example.org/other"


def _mirror_stream(root: Path) -> None:
    """A second stream with its own remote and repository, so a pin's remote decides."""
    (root / "streams/mirror.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: Stream\nname: mirror\nremote: other\n"
        f"url: {MIRROR_URL}\nref: other/9/x86_64/stable\ncommit: {PRODUCTION}\n"
    )


def test_a_pin_is_checked_in_the_repositories_of_its_remote(fleet_dir: Path, base: Fleet) -> None:
    _mirror_stream(fleet_dir)
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", PINNED, MISSING)
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", "reason:", "remote: callos\n  reason:")
    asked: list[tuple[str, str]] = []

    def only_known(url: str, commit: str) -> bool:
        asked.append((url, commit))
        return commit != MISSING

    review = review_change(load(fleet_dir), base, AT, commit_checker=only_known)
    assert (MIRROR_URL, MISSING) not in asked
    assert ("https://ostree.callos.example.net/repo", MISSING) in asked
    assert codes(review, "callservers-fra-dsp") == [("commit_missing", True)]


def test_a_pin_without_a_remote_is_looked_for_in_every_repository(
    fleet_dir: Path, base: Fleet
) -> None:
    _mirror_stream(fleet_dir)
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", PINNED, MISSING)
    asked: list[str] = []

    def nowhere(url: str, commit: str) -> bool:
        asked.append(url)
        return commit != MISSING

    review_change(load(fleet_dir), base, AT, commit_checker=nowhere)
    assert sorted(set(asked)) == sorted(["https://ostree.callos.example.net/repo", MIRROR_URL])


def test_commit_trouble_belongs_to_the_stream_or_pin_that_was_checked(
    fleet_dir: Path, base: Fleet
) -> None:
    """Two streams move to the same new commit in different repositories; only one holds
    it: only the groups of the other stream are blocked by it."""
    new = "cd" * 32
    promote(fleet_dir, commit=new)
    edit(fleet_dir, "streams/staging.yaml", STAGING, new)
    edit(
        fleet_dir,
        "streams/staging.yaml",
        "https://ostree.callos.example.net/repo",
        "https://other.example.net/repo",
    )
    review = review_change(
        load(fleet_dir), base, AT, commit_checker=lambda url, commit: "other" not in url
    )
    assert [(c.subject, c.result) for c in review.checks] == [
        ("stream production", CheckResult.PRESENT),
        ("stream staging", CheckResult.MISSING),
    ]
    assert codes(review, "staging-lab") == [("commit_missing", True)]
    assert codes(review, "callservers-dub") == []
    assert codes(review, "callservers-fra") == [("depends_on_pending", False)]


def test_a_window_shorter_than_the_reboot_margin_never_opens(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    edit(fleet_dir, "groups/callservers-dub.yaml", "duration: 4h", "duration: 15m")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    dub = group(review, "callservers-dub")
    assert codes(review, "callservers-dub") == [("no_usable_window", True)]
    assert dub.windows == ()
    assert "maintenanceWindows" in dub.settings_changed


FREEZE = (
    "freezes:\n"
    "  - name: xmas\n"
    "    start: 2026-11-25\n"
    "    end: 2026-11-26 08:00\n"
    "    timeZone: Europe/Dublin\n"
    "    reason: holiday change freeze\n"
)


def test_the_freeze_in_force_and_the_next_are_shown(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    with (fleet_dir / "groups/callservers-dub.yaml").open("a") as file:
        file.write(FREEZE)
    proposed = load(fleet_dir)
    during = review_change(proposed, base, AT, commit_checker=present)
    dub = group(during, "callservers-dub")
    says = "reboots frozen by `xmas` until 2026-11-26 08:00 Europe/Dublin: holiday change freeze"
    assert dub.freeze == says
    assert "freezes" in dub.settings_changed
    assert f"  freeze: {says}" in render_text(during)
    assert any(g.get("freeze") == says for g in json.loads(render_json(during))["groups"])
    assert "- **Freeze**: reboots frozen by \\`xmas\\` until" in render_markdown(during)
    before = review_change(proposed, base, AT - timedelta(days=1), commit_checker=present)
    assert group(before, "callservers-dub").freeze == (
        "next freeze `xmas` from 2026-11-25 00:00 to 2026-11-26 08:00 Europe/Dublin: "
        "holiday change freeze"
    )
    assert (
        group(
            review_change(proposed, base, AT + timedelta(days=2), commit_checker=present),
            "callservers-dub",
        ).freeze
        is None
    )
    assert group(during, "callservers-fra").freeze is None


def test_without_a_base_every_group_is_new(fleet_dir: Path) -> None:
    review = review_change(load(fleet_dir), None, AT, commit_checker=None)
    assert {g.kind for g in review.groups} == {ChangeKind.NEW}
    assert len(review.groups) == 6
    assert {c.result for c in review.checks} == {CheckResult.SKIPPED}
    # every dependency of Dublin moves to its commit in this same change: they wait
    assert codes(review, "callservers-nyc") == [("depends_on_pending", False)]


def test_removed_groups_are_listed(fleet_dir: Path, base: Fleet) -> None:
    (fleet_dir / "groups/staging-lab.yaml").unlink()
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert review.removed == ("staging-lab",)
    assert review.groups == ()


def test_removing_a_group_is_a_change_the_summary_counts(fleet_dir: Path, base: Fleet) -> None:
    (fleet_dir / "groups/staging-lab.yaml").unlink()
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert summary(review) == "1 group removed; 5 unchanged"
    assert "Removed groups: `staging-lab`" in render_markdown(review)
    assert "removed: staging-lab" in render_text(review)


def _move_fra_call_05(root: Path) -> None:
    """fra-call-05 loses its DSP card: it leaves the pinned group for callservers-fra."""
    edit(root, "hosts/fra.yaml", '{hardware: dsp-card, rack: "b3"}', '{hardware: r650, rack: "b3"}')
    edit(root, "groups/callservers-fra.yaml", "fra-call-04]", "fra-call-04, fra-call-05]")


def test_a_host_that_moves_to_a_group_on_another_commit_is_a_rollout(
    fleet_dir: Path, base: Fleet
) -> None:
    _move_fra_call_05(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    fra = group(review, "callservers-fra")
    assert fra.kind is ChangeKind.SETTINGS
    assert fra.moved_in == (
        HostMove("fra-call-05", "callservers-fra-dsp", CommitRef(PINNED, "9.20260915.2")),
    )
    assert fra.hosts_changing == 1
    assert fra.blockers == ()
    dsp = group(review, "callservers-fra-dsp")  # lost a host, nobody changes commit there
    assert (dsp.moved_in, dsp.hosts_changing) == ((), 0)
    assert summary(review).startswith("2 group(s) change; 1 host(s) change commit;")
    text = render_text(review)
    assert (
        "  hosts changing commit: fra-call-05 from callservers-fra-dsp "
        "(9.20260915.2 → 9.20261117.0)"
    ) in text
    assert "`fra-call-05` from `callservers-fra-dsp` (9.20260915.2 → 9.20261117.0)" in (
        render_markdown(review)
    )


def test_a_paused_group_blocks_a_host_that_moves_into_it(fleet_dir: Path, base: Fleet) -> None:
    _move_fra_call_05(fleet_dir)
    pause(fleet_dir, "callservers-fra")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert codes(review, "callservers-fra") == [("paused", True)]
    assert review.blocked


def test_with_live_state_a_moved_host_is_compared_by_its_booted_commit(
    fleet_dir: Path, base: Fleet
) -> None:
    _move_fra_call_05(fleet_dir)
    pause(fleet_dir, "callservers-fra")
    settled = [_settled(n) for n in [*PRODUCTION_GROUPS, "staging-lab"]]
    settled.append(_settled("callservers-fra-dsp", PINNED, "9.20260915.2"))
    on_production = LiveHost("fra-call-05", "callservers-fra-dsp", PRODUCTION, "idle")
    review = review_change(load(fleet_dir), base, AT, live=_live(*settled, hosts=(on_production,)))
    fra = group(review, "callservers-fra")
    assert (fra.moved_in, fra.blockers) == ((), ())  # it already runs the group's commit
    on_pin = LiveHost("fra-call-05", "callservers-fra-dsp", PINNED, "idle")
    review = review_change(load(fleet_dir), base, AT, live=_live(*settled, hosts=(on_pin,)))
    fra = group(review, "callservers-fra")
    assert [m.host for m in fra.moved_in] == ["fra-call-05"]
    assert codes(review, "callservers-fra") == [("paused", True)]


def test_the_summary_counts_the_hosts_whose_commit_changes(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    edit(fleet_dir, "groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 45m")
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert summary(review).startswith("5 group(s) change; 28 host(s) change commit;")


def test_a_group_without_hosts_says_so_and_its_warning_is_shown(
    fleet_dir: Path, base: Fleet
) -> None:
    promote(fleet_dir)
    (fleet_dir / "groups/empty.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: Group\nname: empty\n"
        "selector:\n  matchLabels:\n    site: nowhere\nstream: production\n"
    )
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is not None
    [warning] = result.problems
    review = review_change(result.fleet, base, AT, commit_checker=present, problems=result.problems)
    assert group(review, "empty").hosts == 0
    text = render_text(review)
    assert "empty (stream production, new): new → 9.20261124.1\n  hosts: none\n" in text
    assert "waves:" not in text.split("empty (stream")[1].split("\n\n")[0]
    assert f"warning: {warning.message}" in text
    markdown = render_markdown(review)
    section = markdown.split("#### `empty`")[1].split("####")[0]
    assert "- **Hosts**: none" in section
    assert "| wave | hosts |" not in section
    assert "<details><summary>1 warning</summary>" in markdown
    assert warning.message in markdown


def _big_dublin(root: Path, count: int) -> None:
    lines = ["apiVersion: ostree-fleet/v1alpha1", "kind: HostInventory", "labels:"]
    lines += ["  site: dub", "  role: callserver", "hosts:"]
    for i in range(1, count + 1):
        lines.append(f"  - name: dub-call-{i:02d}\n    tokenSha256: {'a' * 56}{i:08x}")
    (root / "hosts/dub.yaml").write_text("\n".join(lines) + "\n")


def test_markdown_for_a_large_fleet_fits_a_github_comment(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    _big_dublin(fleet_dir, 5000)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    markdown = render_markdown(review)
    assert len(markdown) < 65536
    assert "| 4 | " in markdown
    assert "… and 2480 more |" in markdown
    # 20 hosts named per wave (4 waves) and the 2 canaries
    assert markdown.count("`dub-call-") == 1 + 3 * 20 + 2


def test_past_its_budget_markdown_drops_the_host_tables(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    full = render_markdown(review)
    short = render_markdown(review, budget=len(full) - 1)
    assert len(short) < len(full)
    assert "| wave | hosts |" in full
    assert "| wave | hosts |" not in short
    assert "full plan: `reconciler plan --format json`" in short
    tiny = render_markdown(review, budget=1500)  # not even the details fit: the table stays
    assert "#### `callservers-dub`" not in tiny
    assert "| `callservers-dub` |" in tiny
    assert len(tiny) <= 1500


def test_a_comment_cut_inside_the_chart_closes_its_fence(fleet_dir: Path, base: Fleet) -> None:
    """With the prediction, a budget that ends inside the Mermaid chart keeps what fits and
    closes the block, so the rest of the comment is not swallowed into it."""
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    prediction = predict_change(load(fleet_dir), base, None, AT, Assumptions())
    review = dataclasses.replace(review, prediction=prediction)
    full = render_markdown(review)
    chart_at = full.index("```mermaid")
    for budget in (chart_at + 200, chart_at + 400):
        cut = render_markdown(review, budget=budget)
        assert len(cut) <= budget
        assert "```mermaid" in cut
        fences = [line for line in cut.splitlines() if line.startswith("```")]
        assert len(fences) % 2 == 0, cut[-400:]
        assert cut.rstrip().endswith("full plan: `reconciler plan --format json`.")


def test_markdown_escapes_free_text(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    edit(
        fleet_dir,
        "groups/callservers-fra-dsp.yaml",
        "reason: >-\n    The dspx",
        "reason: >-\n    @callos/oncall see </details><!-- *The* _dspx_",
    )
    edit(fleet_dir, "streams/production.yaml", '"9.20261124.1"', '"9.2026|rc`1"')
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", "pin:", "paused: true\npin:")
    markdown = render_markdown(review_change(load(fleet_dir), base, AT, commit_checker=present))
    assert "</details><!--" not in markdown
    assert "@callos" not in markdown
    assert "@\u200bcallos/oncall see &lt;/details&gt;&lt;!-- \\*The\\* \\_dspx\\_" in markdown
    assert "| 9.20261117.0 → 9.2026\\|rc\\`1 |" in markdown


def test_json_times_are_utc(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)
    dublin_evening = AT.astimezone(timezone(timedelta(hours=-5)))
    document = json.loads(render_json(review_change(load(fleet_dir), base, dublin_evening)))
    assert document["now"] == "2026-11-25T12:00:00+00:00"


# -- golden Markdown ----------------------------------------------------------------------------


def _promotion(fleet_dir: Path, base: Fleet) -> ChangeReview:
    promote(fleet_dir)
    return review_change(load(fleet_dir), base, AT, commit_checker=present)


def _blocked(fleet_dir: Path, base: Fleet) -> ChangeReview:
    """Everything at once, against live state: paused, halted, a dependency still rolling out,
    a pin to a commit the OSTree repository does not hold."""
    promote(fleet_dir)
    pause(fleet_dir, "callservers-sin")
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", PINNED, MISSING)
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", '"9.20260915.2"', '"9.20261201.0"')
    lab = LiveGroup(
        "staging-lab",
        STAGING,
        "9.20261124.1",
        "halted",
        "failure_threshold",
        "halted after 1 failure(s) (threshold 1): lab-call-02 could not stage the target: "
        "No space left on device",
        2,
        frozenset({PRODUCTION}),
        halt_resume_token="OPS-2280",
    )
    dub = LiveGroup(
        "callservers-dub",
        PRODUCTION,
        "9.20261117.0",
        "in_sync",
        "all_hosts_done",
        "10/10 hosts run 3f9a0c2e6b1d",
        3,
        frozenset({PRODUCTION}),
    )
    live = _live(
        lab,
        dub,
        *(_settled(n) for n in ("callservers-fra", "callservers-nyc", "callservers-sin")),
        _settled("callservers-fra-dsp", PINNED, "9.20260915.2"),
        hosts=(LiveHost("dub-call-01", "callservers-dub", STAGING, "unexpected"),),
    )
    return review_change(
        load(fleet_dir),
        base,
        AT,
        live=live,
        commit_checker=lambda url, commit: commit != MISSING,
    )


def _invalid(fleet_dir: Path, base: Fleet) -> ChangeReview:
    edit(fleet_dir, "fleet.yaml", "maxUnavailable: 1", "maxUnavailible: 1")
    edit(fleet_dir, "groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is None
    return invalid_review(result.problems, result.revision, AT, base_revision="f" * 40)


SCENARIOS = {"promotion": _promotion, "blocked": _blocked, "invalid": _invalid}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_markdown_matches_the_golden_file(scenario: str, fleet_dir: Path, base: Fleet) -> None:
    rendered = render_markdown(SCENARIOS[scenario](fleet_dir, base))
    assert_golden(GOLDEN / f"plan-{scenario}.md", rendered)


def test_the_blocked_scenario_is_paused_halted_missing_a_commit_and_waiting(
    fleet_dir: Path, base: Fleet
) -> None:
    review = _blocked(fleet_dir, base)
    assert {g.name: [(b.code.value, b.blocking) for b in g.blockers] for g in review.groups} == {
        "callservers-dub": [],
        "callservers-fra": [("depends_on_pending", False)],
        "callservers-fra-dsp": [("commit_missing", True)],
        "callservers-nyc": [("depends_on_pending", False)],
        "callservers-sin": [("paused", True), ("depends_on_pending", False)],
        "staging-lab": [("halted", True)],
    }
    assert [b.code for b in review.revision_blockers] == [BlockerCode.COMMIT_MISSING]
    assert group(review, "staging-lab").kind is ChangeKind.CONTINUES
    assert group(review, "callservers-dub").hosts_on_target == 1


def test_json_is_the_same_review(fleet_dir: Path, base: Fleet) -> None:
    document = json.loads(render_json(_blocked(fleet_dir, base)))
    assert document["valid"] is True
    assert document["blocked"] is True
    sin = next(g for g in document["groups"] if g["name"] == "callservers-sin")
    assert [b["code"] for b in sin["blockers"]] == ["paused", "depends_on_pending"]
    assert sin["nextWindows"][0]["local"] == "2026-11-26T02:30:00+08:00"
    assert [w["size"] for w in sin["waves"]] == [1, 2, 3]


def assert_golden(path: Path, actual: str) -> None:
    """Compare with the golden file; with UPDATE_GOLDEN=1, rewrite it instead."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
        return
    if not path.exists():
        pytest.fail(f"{path} does not exist; create it with UPDATE_GOLDEN=1", pytrace=False)
    expected = path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=str(path),
                tofile="rendered",
            )
        )
        pytest.fail(
            f"the output differs from {path.name} (UPDATE_GOLDEN=1 rewrites it):\n{diff}",
            pytrace=False,
        )


def test_a_new_staging_build_says_production_will_follow_by_itself(
    fleet_dir: Path, base: Fleet
) -> None:
    next_build = "cd" * 32
    edit(fleet_dir, "streams/staging.yaml", STAGING, next_build)
    review = review_change(load(fleet_dir), base, AT)
    assert list(review.notes) == [
        "production follows staging: the reconciler will promote 9.20261124.1 to production "
        "itself once it has run 2d on at least 3 healthy host(s) of staging with no failure"
    ]
    assert "production follows staging" in render_markdown(review)
    # A promotion for review names the branch it will be pushed to.
    edit(
        fleet_dir,
        "streams/production.yaml",
        "  minHealthyHosts: 3",
        "  minHealthyHosts: 3\n  branch: promote",
    )
    [note] = review_change(load(fleet_dir), base, AT).notes
    assert f"as a commit on `promote-{next_build[:12]}` for review" in note


def test_no_promotion_note_when_staging_does_not_move(fleet_dir: Path, base: Fleet) -> None:
    promote(fleet_dir)  # production takes staging's build by hand: nothing left to promote
    assert not review_change(load(fleet_dir), base, AT).notes


SYDNEY_INVENTORY = (
    "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\n"
    "labels: {site: dub, role: callserver, timezone: Australia/Sydney}\n"
    "maintenanceWindows:\n"
    '  - {schedule: "0 2 * * *", duration: 3h, timeZone: Australia/Sydney}\n'
    "hosts:\n  - name: syd-call-01\n    tokenSha256: " + "a" * 64 + "\n"
)


def test_a_group_whose_sites_have_their_own_windows_shows_each_sites_next_windows(
    fleet_dir: Path, base: Fleet
) -> None:
    # A Sydney server joins the Dublin group with its site's own nights (hosts/syd.yaml).
    (fleet_dir / "hosts" / "syd.yaml").write_text(SYDNEY_INVENTORY)
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    dub = group(review, "callservers-dub")
    assert [(s.source, s.hosts) for s in dub.site_windows] == [
        ("hosts/syd.yaml", 1),
        ("the group", 10),
    ]
    syd, rest = dub.site_windows
    assert syd.windows[0].starts_at == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 02:00 +11
    assert rest.windows[0].starts_at == datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # Dublin
    assert dub.settings_changed == ("hosts: +1 −0",)
    text = render_text(review)
    assert "  next windows, by site:\n" in text
    assert (
        "    hosts/syd.yaml (1 host): Thu 2026-11-26 02:00–05:00 Australia/Sydney (in 3h)" in text
    )
    assert "    the group (10 hosts): Thu 2026-11-26 01:00–05:00 Europe/Dublin (in 13h)" in text
    markdown = render_markdown(review)
    assert "- **Next windows, by site**:\n  - `hosts/syd.yaml` (1 host): Thu" in markdown
    [as_json] = [g for g in json.loads(render_json(review))["groups"] if g["name"] == dub.name]
    assert as_json["siteWindows"][0]["nextWindows"][0]["local"] == "2026-11-26T02:00:00+11:00"
    # Groups whose hosts share their windows show them as before.
    assert group(review, "callservers-nyc").site_windows == ()


def test_windows_changed_on_an_inventory_file_are_a_settings_change(
    fleet_dir: Path, base: Fleet
) -> None:
    edit(
        fleet_dir,
        "hosts/nyc.yaml",
        "hosts:\n",
        "maintenanceWindows: []\nhosts:\n",
    )
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    nyc = group(review, "callservers-nyc")
    assert nyc.settings_changed == ("hosts' maintenanceWindows",)
    [site] = nyc.site_windows
    assert (site.source, site.hosts, site.any_time) == ("hosts/nyc.yaml", 8, True)
    assert "    hosts/nyc.yaml (8 hosts): any time (no windows)" in render_text(review)


def test_the_review_lists_the_health_checks_each_wave_must_pass(
    fleet_dir: Path, base: Fleet
) -> None:
    """`plan` shows the gates a change will face, in every format."""
    edit(
        fleet_dir,
        "fleet.yaml",
        "defaults:\n",
        "defaults:\n  healthChecks:\n    - name: call-failures\n"
        '      query: max(sip_call_failure_ratio{instance=~"$hosts"})\n'
        "      failureCondition: '>= 0.05'\n      interval: 30s\n",
    )
    promote(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    [sentence] = group(review, "callservers-dub").health_checks
    assert sentence.startswith("call-failures: fails if >= 0.05, every 30s")
    assert 'max(sip_call_failure_ratio{instance=~"$hosts"})' in sentence
    assert "health check: call-failures: fails if >= 0.05" in render_text(review)
    assert "**Health check**: call-failures" in render_markdown(review)
    dub = next(
        g for g in json.loads(render_json(review))["groups"] if g["name"] == "callservers-dub"
    )
    assert dub["healthChecks"] == [sentence]
