"""Fetching from and pushing to the fleet repo: a remote that moved on is told apart from one
that refuses, and a write that loses a race is built again on the winner's tip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from reconciler.errors import GitPushFailed, GitPushRejected, GitRemoteUnavailable
from reconciler.git.auth import GitCredentials
from reconciler.git.remote import Built, branch_refspec, fetch, push, push_rebuilding
from tests.test_gitsource import Remote

LOCAL = "refs/reconciler/test"
TRACKING = "refs/remotes/origin/main"


def mirror_of(tmp_path: Path) -> tuple[Remote, pygit2.Repository, pygit2.Commit]:
    origin = Remote(tmp_path)
    origin.commit("second")
    repo = pygit2.clone_repository(str(origin.bare), str(tmp_path / "mirror.git"), bare=True)
    return origin, repo, repo.references["refs/heads/main"].peel(pygit2.Commit)


def sibling_of(repo: pygit2.Repository, commit: pygit2.Commit) -> pygit2.Oid:
    who = pygit2.Signature("bot", "bot@example.net")
    return repo.create_commit(None, who, who, "ours", commit.tree.id, [commit.parents[0].id])


def child_of(repo: pygit2.Repository, parent: pygit2.Oid, message: str = "next") -> pygit2.Oid:
    who = pygit2.Signature("bot", "bot@example.net")
    return repo.create_commit(None, who, who, message, repo[parent].peel(pygit2.Tree).id, [parent])


def remote_tip(origin: Remote) -> pygit2.Oid:
    target = pygit2.Repository(str(origin.bare)).references["refs/heads/main"].target
    assert isinstance(target, pygit2.Oid)
    return target


# -- push ---------------------------------------------------------------------------------------


def test_a_remote_that_moved_on_is_a_rejection_to_build_on(tmp_path: Path) -> None:
    # The mirror holds the remote's tip but builds on its parent: libgit2 says
    # "non-fastforwardable" here, not "not present locally".
    _, repo, tip = mirror_of(tmp_path)
    repo.references.create(LOCAL, sibling_of(repo, tip), force=True)
    with pytest.raises(GitPushRejected):
        push(repo, LOCAL, "refs/heads/main")


def test_a_remote_that_refuses_is_a_failure_to_report(tmp_path: Path) -> None:
    origin, repo, tip = mirror_of(tmp_path)
    (origin.bare / "refs" / "heads" / "main.lock").write_text("busy\n")
    repo.references.create(LOCAL, child_of(repo, tip.id), force=True)
    with pytest.raises(GitPushFailed):
        push(repo, LOCAL, "refs/heads/main")


def test_a_fast_forward_is_pushed(tmp_path: Path) -> None:
    origin, repo, tip = mirror_of(tmp_path)
    child = child_of(repo, tip.id)
    repo.references.create(LOCAL, child, force=True)
    push(repo, LOCAL, "refs/heads/main")
    assert remote_tip(origin) == child


# -- fetch --------------------------------------------------------------------------------------


def test_a_fetch_that_fails_says_what_it_was_for(tmp_path: Path) -> None:
    _, repo, _ = mirror_of(tmp_path)
    repo.remotes.set_url("origin", str(tmp_path / "gone.git"))
    with pytest.raises(GitRemoteUnavailable, match=r"^cannot fetch before promoting: "):
        fetch(repo, [branch_refspec("main")], GitCredentials(), "before promoting")


def test_a_repository_without_the_remote_cannot_fetch(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "alone.git"), bare=True)
    with pytest.raises(GitRemoteUnavailable, match=r"^cannot fetch the notes: "):
        fetch(repo, [branch_refspec("main")], GitCredentials(), "the notes")


# -- push, and build again on a remote that moved on ---------------------------------------------


def rebuilding(
    repo: pygit2.Repository, build: Callable[[int], Built[str]], attempts: int = 3
) -> str:
    return push_rebuilding(
        repo,
        [branch_refspec("main")],
        build,
        LOCAL,
        "refs/heads/main",
        credentials=GitCredentials(),
        fetching="the test branch",
        gave_up="main kept moving",
        attempts=attempts,
    )


def test_a_write_that_lost_a_race_is_built_again_on_the_winners_tip(tmp_path: Path) -> None:
    origin, repo, _ = mirror_of(tmp_path)
    bases: list[pygit2.Oid] = []

    def build(attempt: int) -> Built[str]:
        base = repo.references[TRACKING].target
        assert isinstance(base, pygit2.Oid)
        bases.append(base)
        repo.references.create(LOCAL, child_of(repo, base, f"ours {attempt}"), force=True)
        if attempt == 0:
            origin.commit("a human pushed first")
        return Built(f"pushed on attempt {attempt}", push=True)

    assert rebuilding(repo, build) == "pushed on attempt 1"
    assert len(bases) == 2
    assert bases[1] != bases[0]  # fetched again, and built on the human's commit
    pushed = pygit2.Repository(str(origin.bare))[remote_tip(origin)].peel(pygit2.Commit)
    assert pushed.message == "ours 1"
    assert pushed.parents[0].message.strip() == "a human pushed first"


def test_nothing_to_push_ends_it_without_pushing(tmp_path: Path) -> None:
    origin, repo, tip = mirror_of(tmp_path)
    repo.references.create(LOCAL, child_of(repo, tip.id), force=True)  # would fast-forward
    assert rebuilding(repo, lambda attempt: Built("already there")) == "already there"
    assert remote_tip(origin) == tip.id


def test_a_remote_that_keeps_moving_is_given_up_on_after_the_attempts(tmp_path: Path) -> None:
    origin, repo, _ = mirror_of(tmp_path)
    attempts: list[int] = []

    def build(attempt: int) -> Built[str]:
        attempts.append(attempt)
        base = repo.references[TRACKING].target
        assert isinstance(base, pygit2.Oid)
        repo.references.create(LOCAL, child_of(repo, base), force=True)
        origin.commit(f"a human pushed first, {attempt}")
        return Built("never", push=True)

    with pytest.raises(GitPushRejected, match=r"^main kept moving$"):
        rebuilding(repo, build, attempts=3)
    assert attempts == [0, 1, 2]
