"""The daemon's Git gate, on real repositories pushed to with real git."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.demo.testbed import make_archive_repo, serve_directory
from reconciler.errors import GitRemoteUnavailable, OstreeRepoUnavailable
from reconciler.git.source import FleetMirror, VerdictCode, consider_revision
from reconciler.ostree.remote import commit_exists
from reconciler.state.store import RevisionRecord, Store
from tests.conftest import EXAMPLE_FLEET, git

PINNED = "5c2e8a1f4b7d0c3e6a9f2b5d8c1e4a7f0b3d6c9e2a5f8b1d4c7e0a3f6b9d2c58"


def always(url: str, commit: str) -> bool:
    return True


class Remote:
    """A bare 'origin' and an ops working copy that pushes to it."""

    def __init__(self, tmp: Path) -> None:
        self.bare = tmp / "origin.git"
        self.work = tmp / "work"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.bare))
        shutil.copytree(EXAMPLE_FLEET, self.work)
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))
        self.commit("initial fleet")

    def commit(self, message: str, edit: Callable[[Path], None] | None = None) -> str:
        if edit:
            edit(self.work)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "--force", "origin", "main")
        return git(self.work, "rev-parse", "HEAD")


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        file = root / path
        file.write_text(file.read_text().replace(old, new))

    return edit


def test_valid_then_invalid_then_fixed(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    first = mirror.fetch()
    verdict = consider_revision(mirror, first, None, None, commit_checker=always)
    assert verdict.code is VerdictCode.APPLIED
    assert verdict.fleet is not None

    broken = origin.commit(
        "typo", replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    )
    assert mirror.fetch() == broken
    refused = consider_revision(mirror, broken, first, verdict.fleet, commit_checker=always)
    assert refused.code is VerdictCode.INVALID
    assert "groups/callservers-nyc.yaml:9:1: stream: unknown stream `prodution`" in refused.message
    assert not refused.accepted

    fixed = origin.commit(
        "fix", replace("groups/callservers-nyc.yaml", "stream: prodution", "stream: production")
    )
    # The invalid commit is in the history of the fix; the fix still builds on `first`.
    assert (
        consider_revision(mirror, mirror.fetch(), first, verdict.fleet, commit_checker=always).code
        is VerdictCode.APPLIED
    )
    assert consider_revision(mirror, fixed, fixed, None).code is VerdictCode.UNCHANGED


def test_force_push_that_drops_the_applied_commit_is_refused(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    applied = origin.commit(
        "audited change", replace("streams/production.yaml", "9.20261117.0", "9.20261117.1")
    )
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    assert mirror.fetch() == applied
    git(origin.work, "reset", "-q", "--hard", "HEAD~1")
    rewritten = origin.commit(
        "rewritten history", replace("fleet.yaml", "soakTime: 2h", "soakTime: 3h")
    )
    assert mirror.fetch() == rewritten
    refused = consider_revision(mirror, rewritten, applied, None, commit_checker=always)
    assert refused.code is VerdictCode.HISTORY_REWRITTEN
    assert "force-pushed" in refused.message
    allowed = consider_revision(
        mirror, rewritten, applied, None, commit_checker=always, allow_history_rewrite=True
    )
    assert allowed.code is VerdictCode.APPLIED


def test_unreachable_remote_is_the_worlds_fault(tmp_path: Path) -> None:
    with pytest.raises(GitRemoteUnavailable):
        FleetMirror(str(tmp_path / "nowhere.git"), tmp_path / "state" / "fleet.git")


def test_applied_revision_survives_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    now = datetime(2026, 11, 25, tzinfo=UTC)
    store.record_revision("a" * 40, now, True, "applied", "applied aaaa")
    store.record_revision("b" * 40, now, False, "invalid", "1 error(s)")
    store.close()
    store = Store(tmp_path / "s.sqlite")
    assert store.last_applied_revision() == "a" * 40
    assert store.last_verdict() == RevisionRecord("b" * 40, False, "invalid", "1 error(s)", now)


def test_the_revision_in_force_keeps_the_time_it_was_first_applied(tmp_path: Path) -> None:
    """A refusal and the branch going back to the applied commit (recorded again) do not make
    the revision in force look newer; a different revision applied later does."""
    store = Store(tmp_path / "s.sqlite")
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    store.record_revision("a" * 40, t0, True, "applied", "applied aaaa")
    store.record_revision("b" * 40, t0 + timedelta(hours=1), False, "invalid", "1 error(s)")
    store.record_revision("a" * 40, t0 + timedelta(hours=2), True, "unchanged", "back")
    in_force = store.revision_in_force()
    assert in_force is not None
    assert (in_force.revision, in_force.seen_at) == ("a" * 40, t0)
    refused = store.last_refusal()
    assert refused is not None
    assert refused.revision == "b" * 40
    assert refused.seen_at == t0 + timedelta(hours=1)
    store.record_revision("c" * 40, t0 + timedelta(hours=3), True, "applied", "applied cccc")
    store.record_revision("a" * 40, t0 + timedelta(hours=4), True, "applied", "reverted to a")
    in_force = store.revision_in_force()
    assert in_force is not None
    assert in_force.seen_at == t0 + timedelta(hours=4)


@pytest.mark.needs_tool("ostree")
def test_preflight_against_a_real_ostree_repo_over_http(tmp_path: Path) -> None:
    [built] = make_archive_repo(tmp_path / "repo", ["9.20261125.0"])
    with serve_directory(tmp_path / "repo") as url:
        assert commit_exists(url, built)
        assert not commit_exists(url, "0" * 64)
        assert commit_exists(f"file://{tmp_path / 'repo'}", built)
        origin = Remote(tmp_path)
        real_commit = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"
        example_url = "https://ostree.callos.example.net/repo"

        def point_production_at_the_real_repo(root: Path) -> None:
            replace("streams/production.yaml", example_url, url)(root)
            replace("streams/production.yaml", real_commit, built)(root)
            replace("groups/callservers-fra-dsp.yaml", PINNED, built)(root)  # preflighted too
            replace("streams/staging.yaml", f"url: {example_url}\n", "")(root)

        good = origin.commit("use the real repo", point_production_at_the_real_repo)
        mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
        assert mirror.fetch() == good
        applied = consider_revision(mirror, good, None, None)
        assert applied.code is VerdictCode.APPLIED
        typo = origin.commit(
            "typo in the commit",
            replace(
                "streams/production.yaml", built, built[:-1] + ("0" if built[-1] != "0" else "1")
            ),
        )
        refused = consider_revision(mirror, mirror.fetch(), good, applied.fleet)
        assert refused.code is VerdictCode.PREFLIGHT_FAILED
        assert "stream production" in refused.message
        assert "nothing was started" in refused.message
        assert typo == mirror.tip()


def test_preflight_that_cannot_ask_refuses(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")

    def unreachable(url: str, commit: str) -> bool:
        raise OstreeRepoUnavailable(f"{url}: connection refused")

    verdict = consider_revision(mirror, mirror.fetch(), None, None, commit_checker=unreachable)
    assert verdict.code is VerdictCode.PREFLIGHT_FAILED
    assert "cannot check" in verdict.message


def test_a_new_pin_is_preflighted_against_its_remotes_repository(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    first = consider_revision(mirror, mirror.fetch(), None, None, commit_checker=always)
    origin.commit("re-pin", replace("groups/callservers-fra-dsp.yaml", PINNED, "d" * 64))
    asked: list[tuple[str, str]] = []

    def only_known(url: str, commit: str) -> bool:
        asked.append((url, commit))
        return commit != "d" * 64

    verdict = consider_revision(
        mirror, mirror.fetch(), first.revision, first.fleet, commit_checker=only_known
    )
    assert verdict.code is VerdictCode.PREFLIGHT_FAILED
    assert "group callservers-fra-dsp (pinned): commit dddddddddddd is not in" in verdict.message
    assert asked == [("https://ostree.callos.example.net/repo", "d" * 64)]


def test_the_mirror_names_the_files_two_revisions_differ_in(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    first = mirror.fetch()

    def edit(root: Path) -> None:
        replace("streams/staging.yaml", "commit: 8e1b", "commit: 9e1b")(root)
        (root / "hosts" / "lab.yaml").rename(root / "hosts" / "laboratory.yaml")

    origin.commit("one edit, one rename", edit)
    second = mirror.fetch()
    changed = {"streams/staging.yaml", "hosts/lab.yaml", "hosts/laboratory.yaml"}
    assert mirror.changed_files(first, second) == changed
    assert mirror.changed_files(first, first) == set()
