"""Talking to the fleet repo's remote: fetch, push, and the loop that joins them.

Every fetch and push goes through here, with the configured credentials and libgit2's errors
translated. A push never forces: a remote that moved on is a :class:`GitPushRejected`, which
:func:`push_rebuilding` answers by fetching, building again on the new tip and pushing again;
anything else is a :class:`GitPushFailed` (no write access, network), which callers report
and back off from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import pygit2

from reconciler.errors import GitPushFailed, GitPushRejected, GitRemoteUnavailable
from reconciler.git.auth import GitCredentials, RemoteAuth

R = TypeVar("R")

#: How many times a write is built again on a remote that keeps moving before giving up.
PUSH_ATTEMPTS = 5


def branch_refspec(branch: str) -> str:
    """Fetches ``branch`` to its remote-tracking ref, which follows the remote even when it
    is rewritten (judging a rewrite is the revision gate's job, not the fetch's)."""
    return f"+refs/heads/{branch}:refs/remotes/origin/{branch}"


def fetch(
    repo: pygit2.Repository,
    refspecs: Sequence[str],
    credentials: GitCredentials,
    what: str,
    remote: str = "origin",
) -> None:
    """Fetch ``refspecs``; a failure is :class:`GitRemoteUnavailable` ("cannot fetch ``what``")."""
    try:
        repo.remotes[remote].fetch(list(refspecs), callbacks=credentials.callbacks())
    except (pygit2.GitError, KeyError, OSError) as exc:
        raise GitRemoteUnavailable(f"cannot fetch {what}: {exc}") from exc


class _PushOutcome(RemoteAuth):
    """libgit2 reports a remote's refusal of one ref here rather than raising (HTTP)."""

    def __init__(self, credentials: GitCredentials) -> None:
        super().__init__(credentials)
        self.refused: dict[str, str] = {}

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.refused[refname] = message


_MOVED_ON = (
    "not present locally",
    "non-fast-forward",
    "non-fastforwardable",
    "fetch first",
    "cannot fast-forward",
)


def push(
    repo: pygit2.Repository,
    local_ref: str,
    remote_ref: str,
    credentials: GitCredentials | None = None,
    remote: str = "origin",
) -> None:
    """Push ``local_ref`` to ``remote_ref`` as a fast-forward only (never ``+``)."""
    outcome = _PushOutcome(credentials or GitCredentials())
    try:
        repo.remotes[remote].push([f"{local_ref}:{remote_ref}"], callbacks=outcome)
    except (pygit2.GitError, KeyError, OSError) as exc:
        if any(words in str(exc) for words in _MOVED_ON):
            raise GitPushRejected(f"{remote_ref} moved on in the remote: {exc}") from exc
        raise GitPushFailed(f"cannot push {remote_ref}: {exc}") from exc
    refusal = outcome.refused.get(remote_ref)
    if refusal is not None:
        if any(words in refusal for words in _MOVED_ON):
            raise GitPushRejected(f"{remote_ref} moved on in the remote: {refusal}")
        raise GitPushFailed(f"the remote refused {remote_ref}: {refusal}")


@dataclass(frozen=True)
class Built(Generic[R]):
    """What one attempt built on the fetched tip: ``result``, handed back once ``local_ref``
    is pushed, or at once when there is nothing to push (already there, or overtaken)."""

    result: R
    push: bool = False


def push_rebuilding(
    repo: pygit2.Repository,
    refspecs: Sequence[str],
    build: Callable[[int], Built[R]],
    local_ref: str,
    remote_ref: str,
    *,
    credentials: GitCredentials,
    fetching: str,
    gave_up: str,
    attempts: int = PUSH_ATTEMPTS,
) -> R:
    """Fetch ``refspecs``, ``build`` on what they brought and push ``local_ref`` to
    ``remote_ref``; when someone pushed first, do it all again on their tip.

    ``build`` is given the attempt (0 first, then how many times it is built again) and reads
    the fetched tips; what it says to push it has left at ``local_ref``. After ``attempts``
    rejections, :class:`GitPushRejected` with ``gave_up``; a fetch that fails is
    :class:`GitRemoteUnavailable` ("cannot fetch ``fetching``").
    """
    for attempt in range(attempts):
        fetch(repo, refspecs, credentials, fetching)
        built = build(attempt)
        if not built.push:
            return built.result
        try:
            push(repo, local_ref, remote_ref, credentials)
        except GitPushRejected:
            continue  # someone pushed first: fetch their tip and build on it
        return built.result
    raise GitPushRejected(gave_up)
