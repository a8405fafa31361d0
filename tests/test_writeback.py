"""Rollout notes and automatic promotion, end to end on real bare repositories in virtual time.

A real daemon (mirror, gate, service, engine, SQLite) runs on a manual clock; simulated hosts
report through the service. Git is real: the origin is a bare repository that ops push to
with the git command line, and `git log --notes=rollouts` is what an auditor would run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import reconciler.git.remote
from reconciler.clock import ManualClock
from reconciler.git.notes import note_line
from reconciler.git.signatures import SignatureTrust, check_commit_signature
from reconciler.git.writer import CommitSigner, GitIdentity
from reconciler.promotion.check import PromotionStatus
from reconciler.promotion.commit import PromotionOutcome, trailers
from reconciler.serve.daemon import Daemon, ServeConfig, open_daemon
from reconciler.state.store import StoredEvent
from tests.conftest import EXAMPLE_FLEET, git
from tests.daemon_support import BackgroundDaemon
from tests.fleet_driver import ReportingFleet
from tests.test_daemon import OLD_PRODUCTION, agent_report, config, no_urls, wait_for
from tests.test_gitsource import Remote, replace
from tests.test_signatures import signed_commit

STAGING = "8e1b4d5f2a7c9e0b3d6f1a4c7e2b5d8f0a3c6e9b2d5f8a1c4e7b0d3f6a9c2e5b"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday morning
LAB = ("lab-call-01", "lab-call-02", "lab-call-03")
IDENTITY = GitIdentity("CallOS fleet reconciler", "fleet-bot@callos.example.net")


def start(tmp_path: Path, **kwargs: Any) -> tuple[Remote, Daemon, ManualClock, ReportingFleet]:
    """The example fleet with every host on production's commit; staging's build goes to the
    lab. Returns the origin, a daemon on a manual clock, and the reporting hosts."""
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    clock = ManualClock(START)
    daemon = open_daemon(config(tmp_path, origin, identity=IDENTITY, **kwargs), clock)
    hosts = {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    return origin, daemon, clock, ReportingFleet(daemon.service, clock, hosts)


def notes(origin: Remote) -> str:
    return git(origin.bare, "log", "--notes=rollouts", "--format=%H %s%n%N", "main")


def tip(origin: Remote, branch: str = "main") -> str:
    return git(origin.bare, "rev-parse", f"refs/heads/{branch}")


def soak_lab(daemon: Daemon, fleet: ReportingFleet, hours: float) -> None:
    """Let the lab take staging's build and run it for ``hours``."""
    fleet.run(timedelta(hours=1))
    assert daemon.service.reconcile("staging-lab").status.phase.value == "in_sync"
    fleet.run(timedelta(hours=hours - 1), dt=timedelta(minutes=30))


# -- rollout notes ------------------------------------------------------------------------------


def test_notes_tell_under_each_commit_what_it_did_to_the_fleet(tmp_path: Path) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    staging_change = tip(origin)
    fleet.run(timedelta(hours=1))  # the lab rolls staging's build out and completes
    daemon.writeback.publish_notes()

    log = notes(origin)
    under_change = log.split(staging_change, 1)[1].split("\n\n", 1)[0]
    assert "staging-lab rollout 1 target 8e1b4d5f2a7c: rollout started" in under_change
    assert "staging-lab rollout 1 wave 1 target 8e1b4d5f2a7c: wave opened: wave 1/2" in under_change
    assert "staging-lab rollout 1 wave 2 target 8e1b4d5f2a7c: wave completed" in under_change
    assert "rollout completed (3 on the target, 0 failed)" in under_change
    assert "2026-11-23T09:00:00Z" in under_change  # times are the decisions' own, in UTC

    # A second pass with nothing new writes nothing; the notes ref only moves forward.
    before = git(origin.bare, "rev-parse", "refs/notes/rollouts")
    assert daemon.writeback.publish_notes() is None
    assert git(origin.bare, "rev-parse", "refs/notes/rollouts") == before


def test_notes_survive_a_concurrent_writer_and_a_restart(tmp_path: Path) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    fleet.run(timedelta(minutes=10))
    daemon.writeback.publish_notes()
    first_notes = git(origin.bare, "rev-parse", "refs/notes/rollouts")

    # Someone else (another reconciler, an auditor's remark) appends to the notes meanwhile.
    git(origin.work, "fetch", "-q", "origin", "refs/notes/rollouts:refs/notes/rollouts")
    git(origin.work, "notes", "--ref=rollouts", "append", "-m", "audited by J. Doe", "HEAD")
    git(origin.work, "push", "-q", "origin", "refs/notes/rollouts")

    fleet.run(timedelta(hours=1))
    # A restart that lost the cursor must neither lose nor repeat a line.
    daemon.store._db.execute("DELETE FROM publication_cursors")
    restarted = open_daemon(daemon.config, clock)
    written = restarted.writeback.publish_notes()
    assert written is not None
    assert written.pushed

    log = notes(origin)
    assert "audited by J. Doe" in log
    lab = [line for line in log.splitlines() if " staging-lab " in line]
    assert len(lab) == len(set(lab))  # no line twice
    assert sum("rollout started" in line for line in lab) == 1
    assert sum("rollout completed" in line for line in lab) == 1
    history = git(origin.bare, "rev-list", "refs/notes/rollouts").splitlines()
    assert first_notes in history  # fast-forwarded, never rewritten


def test_notes_kept_locally_while_the_remote_refuses_them(tmp_path: Path) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    fleet.run(timedelta(minutes=10))
    lock = origin.bare / "refs" / "notes" / "rollouts.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("held by someone else\n")
    assert daemon.writeback.publish_notes() is None  # the push failed: reported, not raised
    mirror_notes = git(daemon.mirror.path, "log", "--notes=rollouts", "--format=%N", "-1", "main")
    assert "rollout started" in mirror_notes  # written in the mirror anyway
    assert daemon.store.cursor("notes") == 0  # and published once the remote takes them

    lock.unlink()
    held_back = daemon.writeback.publish_notes()  # backing off: no push yet
    assert held_back is not None
    assert not held_back.pushed
    assert "rollout started" not in notes(origin)
    clock.advance(timedelta(minutes=2))
    written = daemon.writeback.publish_notes()
    assert written is not None
    assert written.pushed
    assert "rollout started" in notes(origin)


def test_notes_written_while_the_remote_was_unreachable_are_merged_with_its_own(
    tmp_path: Path,
) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    fleet.run(timedelta(minutes=10))
    lock = origin.bare / "refs" / "notes" / "rollouts.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("held\n")
    daemon.writeback.publish_notes()  # kept in the mirror only
    lock.unlink()
    # Meanwhile someone else starts the remote's notes from scratch: the histories diverge.
    git(origin.work, "notes", "--ref=rollouts", "add", "-m", "audited by J. Doe", "HEAD")
    git(origin.work, "push", "-q", "origin", "refs/notes/rollouts")
    theirs = git(origin.bare, "rev-parse", "refs/notes/rollouts")
    fleet.run(timedelta(hours=1))
    clock.advance(timedelta(minutes=5))
    written = daemon.writeback.publish_notes()
    assert written is not None
    assert written.pushed
    log = notes(origin)
    assert "audited by J. Doe" in log
    lab = [line for line in log.splitlines() if " staging-lab " in line]
    assert sum("rollout started" in line for line in lab) == 1  # carried over, once
    assert sum("rollout completed" in line for line in lab) == 1
    assert theirs in git(origin.bare, "rev-list", "refs/notes/rollouts").splitlines()


def test_an_unreachable_remote_is_not_asked_again_until_the_back_off_ends(
    tmp_path: Path,
) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    fleet.run(timedelta(minutes=10))
    daemon.mirror.repo.remotes.set_url("origin", str(tmp_path / "gone.git"))
    assert daemon.writeback.publish_notes() is None  # fetch failed: reported, backing off
    assert not daemon.writeback.notes_pushable()
    held_back = daemon.writeback.publish_notes()  # the same instant: kept locally, no fetch
    assert held_back is not None
    assert not held_back.pushed
    daemon.mirror.repo.remotes.set_url("origin", str(origin.bare))
    clock.advance(timedelta(minutes=2))
    written = daemon.writeback.publish_notes()
    assert written is not None
    assert written.pushed
    assert "staging-lab rollout 1" in notes(origin)


def test_a_note_line_is_one_line_whatever_a_host_reported() -> None:
    forged = "No space left\n2026-11-23T09:00:00Z staging-lab rollout 1: rollout completed"
    event = StoredEvent(
        7,
        START,
        "staging-lab",
        1,
        "host_failed",
        "lab-call-02",
        STAGING,
        0,
        "deploy_error",
        f"lab-call-02 could not stage the target: {forged}",
        "rev",
    )
    line = note_line(event, lambda _: (0, 0))
    assert "\n" not in line
    assert line.endswith(
        "could not stage the target: No space left 2026-11-23T09:00:00Z "
        "staging-lab rollout 1: rollout completed"
    )
    long = note_line(dataclasses.replace(event, message="x" * 5000), lambda _: (0, 0))
    assert len(long) < 600


# -- promotion ----------------------------------------------------------------------------------


def test_staging_build_is_promoted_once_after_the_soak_and_rolls_out(tmp_path: Path) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=47)
    checks = daemon.service.promotion_checks()
    assert [c.status for c in checks] == [PromotionStatus.SOAKING]
    assert "has soaked 1d22h10m of 2d on 3 healthy hosts" in checks[0].message
    assert daemon.writeback.promote_due() == []

    fleet.run(timedelta(hours=2), dt=timedelta(minutes=30))
    before = tip(origin)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.PUSHED
    promotion = tip(origin)
    assert git(origin.bare, "rev-parse", f"{promotion}^") == before

    message = git(origin.bare, "log", "-1", "--format=%B", promotion)
    assert message.startswith("production: promote 9.20261124.1 from staging\n")
    found = trailers(message)
    assert found["Promoted-From"] == "staging"
    assert found["Promoted-Commit"] == STAGING
    assert found["Healthy-Hosts"] == "3"
    assert found["Soaked-For"].startswith("2d")
    assert found["Source-Revision"] == git(origin.work, "rev-parse", "HEAD~0")
    author = git(origin.bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>", promotion)
    assert author == "CallOS fleet reconciler <fleet-bot@callos.example.net>|" * 1 + (
        "CallOS fleet reconciler <fleet-bot@callos.example.net>"
    )
    diff = git(origin.bare, "diff", "--stat", before, promotion)
    assert "streams/production.yaml | 4 ++--" in diff  # commit and version, nothing else
    production = git(origin.bare, "show", f"{promotion}:streams/production.yaml")
    assert f"commit: {STAGING}" in production
    assert "# the staging build must run this long..." in production  # comments kept

    # Exactly once: more passes (before and after the daemon took it in) make nothing.
    assert daemon.writeback.promote_due() == []
    daemon.sync()
    assert daemon.service.fleet.revision == promotion
    assert daemon.writeback.promote_due() == []
    assert [c.status for c in daemon.service.promotion_checks()] == [PromotionStatus.UP_TO_DATE]

    # The normal machinery takes over: production groups start rolling the build out.
    fleet.step()
    started = [
        e
        for e in daemon.store.events(kinds=["rollout_started"])
        if e.group == "callservers-dub" and e.commit == STAGING
    ]
    assert [e.revision for e in started] == [promotion]
    daemon.writeback.publish_notes()
    under_promotion = notes(origin).split(promotion, 1)[1].split("\n\n", 1)[0]
    assert "callservers-dub rollout 2 target 8e1b4d5f2a7c: rollout started" in under_promotion


def test_a_concurrent_human_push_is_taken_in_before_a_promotion_builds_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=49)
    real_push = reconciler.git.remote.push
    human: list[str] = []

    def human_pushes_first(*args: Any, **kwargs: Any) -> None:
        if not human:  # between our fetch and our push, an operator merges a change
            human.append(
                origin.commit(
                    "nyc: note the new rack",
                    replace(
                        "groups/callservers-nyc.yaml", "kind: Group\n", "kind: Group\n# rack 7\n"
                    ),
                )
            )
        real_push(*args, **kwargs)

    monkeypatch.setattr(reconciler.git.remote, "push", human_pushes_first)
    [attempt] = daemon.writeback.promote_due()
    # Our push is refused (the branch moved); the new tip is not taken in yet: wait for it.
    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.OVERTAKEN
    assert tip(origin) == human[0]
    assert daemon.sync().accepted
    fleet.run(timedelta(hours=1))  # the back-off is over, the hosts still healthy
    [again] = daemon.writeback.promote_due()
    assert again.written is not None
    assert again.written.outcome is PromotionOutcome.PUSHED
    promotion = tip(origin)
    assert git(origin.bare, "rev-parse", f"{promotion}^") == human[0]  # on top, not forced
    assert "# rack 7" in git(origin.bare, "show", f"{promotion}:groups/callservers-nyc.yaml")
    assert git(origin.bare, "rev-list", "--count", "--grep=Promoted-From", "main") == "1"


def test_a_failure_on_the_staging_build_blocks_its_promotion_for_good(tmp_path: Path) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    fleet.bad = {STAGING}  # greenboot fails on the build and falls back
    fleet.run(timedelta(hours=1))
    fleet.bad = set()
    fleet.run(timedelta(days=3), dt=timedelta(hours=1))
    before = tip(origin)
    assert daemon.writeback.promote_due() == []
    [check] = daemon.service.promotion_checks()
    assert check.status is PromotionStatus.BLOCKED_BY_FAILURE
    assert "will not be promoted" in check.message
    assert tip(origin) == before


def test_a_failed_push_is_reported_and_retried_only_after_a_back_off(tmp_path: Path) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=49)
    lock = origin.bare / "refs" / "heads" / "main.lock"
    lock.write_text("a push in progress\n")
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is None
    assert attempt.error is not None
    assert "next try in 0:01:00" in attempt.error
    assert [p.outcome for p in daemon.store.promotions()] == ["failed"]
    assert daemon.writeback.promote_due() == []  # not in a tight loop
    clock.advance(timedelta(seconds=61))
    [again] = daemon.writeback.promote_due()
    assert again.error is not None
    assert "next try in 0:02:00" in again.error
    lock.unlink()
    clock.advance(timedelta(minutes=2, seconds=1))
    [done] = daemon.writeback.promote_due()
    assert done.written is not None
    assert done.written.outcome is PromotionOutcome.PUSHED
    metrics = daemon.service.metrics
    assert metrics is not None
    assert metrics.git_push_errors.labels("promotion")._value.get() == 2


def test_each_promotion_for_review_gets_its_own_branch_off_main(tmp_path: Path) -> None:
    origin = Remote(tmp_path)

    def review(root: Path) -> None:
        no_urls(root)
        replace(
            "streams/production.yaml",
            "  minHealthyHosts: 3",
            "  minHealthyHosts: 3\n  branch: promotions/production",
        )(root)

    origin.commit("promote through review", review)
    clock = ManualClock(START)
    daemon = open_daemon(config(tmp_path, origin, identity=IDENTITY), clock)
    fleet = ReportingFleet(
        daemon.service, clock, {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    )
    soak_lab(daemon, fleet, hours=49)
    main_before = tip(origin)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    first_branch = f"promotions/production-{STAGING[:12]}"
    assert attempt.written.branch == first_branch
    assert tip(origin) == main_before  # main untouched until a human merges
    assert git(origin.bare, "rev-parse", f"{tip(origin, first_branch)}^") == main_before
    fleet.run(timedelta(hours=6), dt=timedelta(hours=1))
    assert daemon.writeback.promote_due() == []  # the review is open: never a second one
    assert [c.status for c in daemon.service.promotion_checks()] == [
        PromotionStatus.ALREADY_PROMOTED
    ]

    # The review is left open; the next staging build must not be stuck behind it.
    next_build = "cd" * 32
    newer_main = origin.commit(
        "staging: CallOS 9.20261201.0",
        replace("streams/staging.yaml", STAGING, next_build),
    )
    daemon.sync()
    soak_lab(daemon, fleet, hours=50)
    [second] = daemon.writeback.promote_due()
    assert second.written is not None
    assert second.written.branch == f"promotions/production-{next_build[:12]}"
    assert git(origin.bare, "rev-parse", f"{second.written.commit}^") == newer_main


def test_a_reverted_promotion_is_not_made_again_even_by_a_reconciler_without_state(
    tmp_path: Path,
) -> None:
    origin, daemon, clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    promotion = attempt.written.commit
    assert promotion is not None
    git(origin.work, "pull", "-q", "origin", "main")
    git(origin.work, "revert", "--no-edit", promotion)
    git(origin.work, "push", "-q", "origin", "main")

    # A new reconciler with an empty state directory sees a due promotion again...
    fresh = open_daemon(
        config(tmp_path / "other", origin, identity=IDENTITY), ManualClock(clock.now())
    )
    fresh_fleet = ReportingFleet(
        fresh.service, fresh.clock, {h.name: h.booted for h in fleet.hosts.values()}
    )  # type: ignore[arg-type]
    soak_lab(fresh, fresh_fleet, hours=49)
    # ...but finds the earlier promotion in the history and does not make it twice.
    [again] = fresh.writeback.promote_due()
    assert again.written is not None
    assert again.written.outcome is PromotionOutcome.ALREADY_IN_HISTORY
    assert again.written.commit == promotion
    assert git(origin.bare, "rev-list", "--count", "--grep=Promoted-From", "main") == "1"
    assert fresh.writeback.promote_due() == []


@pytest.mark.parametrize(
    ("what", "path", "old", "new"),
    [
        ("a human changed production", "streams/production.yaml", OLD_PRODUCTION, "ef" * 32),
        ("staging's build was withdrawn", "streams/staging.yaml", STAGING, OLD_PRODUCTION),
    ],
)
def test_a_change_pushed_after_the_check_is_never_overwritten(
    tmp_path: Path, what: str, path: str, old: str, new: str
) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=49)
    [check] = daemon.writeback.due(daemon.service.promotion_checks())
    human = origin.commit(what, replace(path, old, new))
    daemon.sync()  # the daemon takes the human's revision in between check and write
    written = daemon.writeback.write_promotion(check)
    assert written.outcome is PromotionOutcome.OVERTAKEN
    assert tip(origin) == human


def test_a_promotion_that_would_not_validate_is_reported_once_per_revision(
    tmp_path: Path,
) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    # Valid, but the promotion cannot edit this `commit` in place and keep the file valid.
    folded = origin.commit(
        "production: commit as a folded scalar",
        replace(
            "streams/production.yaml",
            f"commit: {OLD_PRODUCTION}",
            f"commit: >-\n  {OLD_PRODUCTION}",
        ),
    )
    assert daemon.sync().accepted
    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.error is not None
    assert "would not validate" in attempt.error
    assert "streams/production.yaml" in attempt.error
    fleet.run(timedelta(hours=2))  # the back-off is long over, the hosts still healthy
    assert [c.status for c in daemon.service.promotion_checks()] == [PromotionStatus.DUE]
    assert daemon.writeback.promote_due() == []  # nothing changed in force: not again
    assert [p.outcome for p in daemon.store.promotions()] == ["failed"]
    assert tip(origin) == folded

    fixed = origin.commit(
        "production: plain commit again",
        replace(
            "streams/production.yaml",
            f"commit: >-\n  {OLD_PRODUCTION}",
            f"commit: {OLD_PRODUCTION}",
        ),
    )
    daemon.sync()
    fleet.step()
    [done] = daemon.writeback.promote_due()
    assert done.written is not None
    assert done.written.outcome is PromotionOutcome.PUSHED
    assert git(origin.bare, "rev-parse", f"{tip(origin)}^") == fixed


def test_a_promotion_is_never_built_on_a_tip_the_gate_has_not_taken_in(tmp_path: Path) -> None:
    origin, daemon, _clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=49)
    broken = origin.commit(
        "typo",
        replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution"),
    )
    assert not daemon.sync().accepted  # refused: the revision in force stays
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.OVERTAKEN
    assert "not at the revision in force" in attempt.written.message
    assert tip(origin) == broken  # nothing built on it, nothing pushed
    fleet.run(timedelta(hours=1))
    assert [a.written.outcome for a in daemon.writeback.promote_due() if a.written] == [
        PromotionOutcome.OVERTAKEN
    ]

    fixed = origin.commit(
        "fix the typo",
        replace("groups/callservers-nyc.yaml", "stream: prodution", "stream: production"),
    )
    assert daemon.sync().accepted
    fleet.run(timedelta(hours=1))
    [done] = daemon.writeback.promote_due()
    assert done.written is not None
    assert done.written.outcome is PromotionOutcome.PUSHED
    assert git(origin.bare, "rev-parse", f"{tip(origin)}^") == fixed


def test_promotion_is_signed_when_a_key_is_configured(tmp_path: Path) -> None:
    key = tmp_path / "bot_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bot", "-f", str(key)], check=True
    )
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{IDENTITY.email} {(tmp_path / 'bot_ed25519.pub').read_text()}")
    origin, daemon, _clock, fleet = start(tmp_path, signer=CommitSigner(ssh_key=key))
    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    assert attempt.written.commit is not None
    trust = SignatureTrust(allowed_signers=signers)
    assert check_commit_signature(origin.bare, attempt.written.commit, trust) is None


# -- the running daemon: notes and promotion happen by themselves ---------------------------------


def test_a_running_daemon_writes_notes_and_promotes_on_its_own(tmp_path: Path) -> None:
    origin = Remote(tmp_path)

    def quick(root: Path) -> None:
        no_urls(root)  # a soak that ends before the lab would count as silent
        replace("streams/production.yaml", "soakTime: 48h", "soakTime: 2m")(root)

    configured = origin.commit("production soaks for 2 minutes", quick)
    clock = ManualClock(datetime.now(UTC))
    with BackgroundDaemon(config(tmp_path, origin, identity=IDENTITY), clock) as running:
        for host in LAB:  # the lab already runs staging's build, healthy
            httpx.post(
                running.url + "/v1/report",
                json=agent_report(STAGING),
                headers={"Authorization": f"Bearer demo-token-{host}"},
            )
        # No more reports: the soak's timer alone must make the promotion, and the daemon
        # must then take its own commit in. The timer waits on the daemon's clock.
        timers = running.daemon.timers
        assert timers is not None
        wait_for(lambda: timers.due_at("promotion-due") is not None, timeout=20)
        due = timers.due_at("promotion-due")
        assert due is not None
        assert running.daemon.service.fleet.revision == configured  # not before its time
        clock.advance(due - clock.now())
        wait_for(lambda: running.daemon.service.fleet.revision != configured, timeout=20)
        promotion = tip(origin)
        assert running.daemon.service.fleet.revision == promotion
        assert (
            trailers(git(origin.bare, "log", "-1", "--format=%B", promotion))["Promoted-Commit"]
            == STAGING
        )
        wait_for(lambda: "staging-lab" in notes(origin), timeout=20)

        def promotion_state() -> str:
            for line in httpx.get(running.url + "/metrics").text.splitlines():
                if line.startswith("fleet_promotion_state{") and line.endswith(" 1.0"):
                    return line
            return ""

        wait_for(lambda: 'state="up_to_date"' in promotion_state(), timeout=20)
        assert 'stream="production"' in promotion_state()
    under_configured = notes(origin).split(configured, 1)[1].split("\n\n", 1)[0]
    assert "staging-lab rollout 1 target 8e1b4d5f2a7c: rollout started" in under_configured


def test_a_fleet_in_a_subdirectory_is_promoted_in_place(tmp_path: Path) -> None:
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    shutil.copytree(EXAMPLE_FLEET, work / "fleet")
    no_urls(work / "fleet")
    (work / "README.md").write_text("The CallOS fleet lives in fleet/.\n")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "fleet in a subdirectory")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")
    clock = ManualClock(START)
    settings = ServeConfig(
        repo=str(bare), state_dir=tmp_path / "state", subdirectory="fleet", identity=IDENTITY
    )
    daemon = open_daemon(settings, clock)
    fleet = ReportingFleet(
        daemon.service, clock, {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    )
    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.PUSHED
    changed = git(bare, "diff", "--name-only", "main~1", "main")
    assert changed == "fleet/streams/production.yaml"


def signed_fleet(tmp_path: Path) -> tuple[Remote, ServeConfig]:
    """A fleet repo whose tip ops signed, and a daemon configuration that requires signed
    revisions (ops' key and the reconciler's own) and signs promotions with its key."""
    keys = {}
    for name in ("ops", "bot"):
        key = tmp_path / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
        )
        keys[name] = key
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(
        f"ops@example.net {(tmp_path / 'ops.pub').read_text()}"
        f"{IDENTITY.email} {(tmp_path / 'bot.pub').read_text()}"
    )
    origin = Remote(tmp_path)
    no_urls(origin.work)
    git(origin.work, "add", "-A")
    ssh = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={keys['ops']}.pub")
    signed_commit(origin, "no example urls (signed by ops)", *ssh)
    return origin, config(
        tmp_path,
        origin,
        identity=IDENTITY,
        signatures=SignatureTrust(allowed_signers=allowed),
        signer=CommitSigner(ssh_key=keys["bot"]),
    )


@pytest.mark.needs_tool("ssh-keygen")
def test_a_signed_promotion_passes_the_daemons_own_signature_gate(tmp_path: Path) -> None:
    _origin, settings = signed_fleet(tmp_path)
    clock = ManualClock(START)
    daemon = open_daemon(settings, clock)
    assert daemon.writeback.config.promote
    fleet = ReportingFleet(
        daemon.service, clock, {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    )
    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    verdict = daemon.sync()
    assert verdict.accepted, verdict.message  # the daemon trusts its own signed promotion
    assert daemon.service.fleet.revision == attempt.written.commit


@pytest.mark.needs_tool("ssh-keygen")
def test_an_unsigned_push_is_not_laundered_through_a_signed_promotion(tmp_path: Path) -> None:
    """The attack: signed commits are required; someone without a trusted key pushes a host
    and its token. The gate refuses the commit, and a promotion that falls due must not be
    built on it and signed with the reconciler's own key (which the gate would then accept,
    taking the attacker's host in with it)."""
    origin, settings = signed_fleet(tmp_path)
    clock = ManualClock(START)
    daemon = open_daemon(settings, clock)
    applied = daemon.service.fleet.revision
    fleet = ReportingFleet(
        daemon.service, clock, {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    )
    evil_token = "attacker-token"
    evil_hash = hashlib.sha256(evil_token.encode()).hexdigest()
    unsigned = origin.commit(
        "add a host (unsigned)",
        lambda root: (root / "hosts" / "nyc.yaml").write_text(
            (root / "hosts" / "nyc.yaml").read_text()
            + f"  - name: nyc-evil-01\n    tokenSha256: {evil_hash}\n"
        ),
    )
    verdict = daemon.sync()
    assert (verdict.accepted, verdict.code.value) == (False, "unsigned")

    soak_lab(daemon, fleet, hours=49)
    [attempt] = daemon.writeback.promote_due()

    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.OVERTAKEN
    assert tip(origin) == unsigned  # nothing was built on the unsigned commit, or pushed
    assert daemon.sync().code.value == "unsigned"  # and it is still refused
    assert daemon.service.fleet.revision == applied
    assert daemon.service.host_for_token(evil_token) is None


def test_lock_files_left_by_a_killed_writer_do_not_stop_the_notes(tmp_path: Path) -> None:
    """A process killed while libgit2 wrote a ref leaves `<ref>.lock`; every later write of
    that ref used to fail for good ('failed to lock file'). Seen by tests/test_crash_serve.py."""
    origin, daemon, _clock, fleet = start(tmp_path)
    soak_lab(daemon, fleet, hours=1)
    for ref in ("refs/reconciler/notes-pending", "refs/notes/rollouts", "refs/heads/main"):
        stale = daemon.mirror.path / f"{ref}.lock"
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("left by a killed writer\n")
    written = daemon.writeback.publish_notes()
    assert written is not None
    assert written.pushed
    assert "staging-lab rollout 1" in notes(origin)
    assert not list((daemon.mirror.path / "refs").rglob("*.lock"))
