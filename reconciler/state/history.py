"""The audit trail: every decision the engine made, with the fleet-repo commit that caused it.

Decisions come from the store's event log; who changed what, when, and why comes from the
commit itself (author, date, subject), read from the daemon's mirror of the fleet repo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2

from reconciler.state.store import Store, StoredEvent


@dataclass(frozen=True)
class CommitInfo:
    id: str
    author: str
    date: datetime
    subject: str


@dataclass(frozen=True)
class TrailEntry:
    event: StoredEvent
    commit: CommitInfo | None


def commit_info(
    repo: pygit2.Repository | None, revision: str | None, cache: dict[str, CommitInfo | None]
) -> CommitInfo | None:
    """Author, date and subject of ``revision`` in ``repo``; None when it cannot be found."""
    if repo is None or revision is None:
        return None
    if revision not in cache:
        try:
            commit = repo[revision].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            cache[revision] = None
        else:
            author = commit.author
            cache[revision] = CommitInfo(
                revision,
                f"{author.name} <{author.email}>",
                datetime.fromtimestamp(author.time).astimezone(),
                commit.message.splitlines()[0] if commit.message else "",
            )
    return cache[revision]


def audit_trail(
    state_dir: Path,
    group: str | None = None,
    host: str | None = None,
    since: datetime | None = None,
) -> list[TrailEntry]:
    """Events of the daemon in ``state_dir`` (optionally filtered), each with its commit."""
    store = Store(state_dir / "state.sqlite")
    try:
        events = store.events(group)
    finally:
        store.close()
    mirror = state_dir / "fleet.git"
    repo = pygit2.Repository(str(mirror)) if (mirror / "HEAD").exists() else None
    cache: dict[str, CommitInfo | None] = {}
    return [
        TrailEntry(event, commit_info(repo, event.revision, cache))
        for event in events
        if (host is None or event.host == host) and (since is None or event.at >= since)
    ]
