"""Pushing to the fleet repo: a remote that moved on is told apart from one that refuses."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from reconciler.errors import GitPushFailed, GitPushRejected
from reconciler.git.writer import push
from tests.test_gitsource import Remote


def mirror_of(tmp_path: Path) -> tuple[Remote, pygit2.Repository, pygit2.Commit]:
    origin = Remote(tmp_path)
    origin.commit("second")
    repo = pygit2.clone_repository(str(origin.bare), str(tmp_path / "mirror.git"), bare=True)
    return origin, repo, repo.references["refs/heads/main"].peel(pygit2.Commit)


def sibling_of(repo: pygit2.Repository, commit: pygit2.Commit) -> pygit2.Oid:
    who = pygit2.Signature("bot", "bot@example.net")
    return repo.create_commit(None, who, who, "ours", commit.tree.id, [commit.parents[0].id])


def test_a_remote_that_moved_on_is_a_rejection_to_build_on(tmp_path: Path) -> None:
    # The mirror holds the remote's tip but builds on its parent: libgit2 says
    # "non-fastforwardable" here, not "not present locally".
    _, repo, tip = mirror_of(tmp_path)
    repo.references.create("refs/reconciler/test", sibling_of(repo, tip), force=True)
    with pytest.raises(GitPushRejected):
        push(repo, "refs/reconciler/test", "refs/heads/main")


def test_a_remote_that_refuses_is_a_failure_to_report(tmp_path: Path) -> None:
    origin, repo, tip = mirror_of(tmp_path)
    (origin.bare / "refs" / "heads" / "main.lock").write_text("busy\n")
    repo.references.create("refs/reconciler/test", tip.id, force=True)
    who = pygit2.Signature("bot", "bot@example.net")
    child = repo.create_commit(None, who, who, "next", tip.tree.id, [tip.id])
    repo.references.create("refs/reconciler/test", child, force=True)
    with pytest.raises(GitPushFailed):
        push(repo, "refs/reconciler/test", "refs/heads/main")


def test_a_fast_forward_is_pushed(tmp_path: Path) -> None:
    origin, repo, tip = mirror_of(tmp_path)
    who = pygit2.Signature("bot", "bot@example.net")
    child = repo.create_commit(None, who, who, "next", tip.tree.id, [tip.id])
    repo.references.create("refs/reconciler/test", child, force=True)
    push(repo, "refs/reconciler/test", "refs/heads/main")
    assert pygit2.Repository(str(origin.bare)).references["refs/heads/main"].target == child
