"""The daemon's own mirror of the fleet repo, and which of its revisions may take effect.

The mirror is a bare clone in the state directory; revisions are read from it without a
working tree. :func:`consider_revision` is the gate every new tip passes: a revision that
fails validation, rewrites the history that was applied, or names an OSTree commit its
stream's repository does not hold, is refused, and the last good revision stays in force.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO

import pygit2

from reconciler.errors import GitRemoteUnavailable
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import GitRevisionSource
from reconciler.git.auth import GitCredentials
from reconciler.git.remote import branch_refspec, fetch
from reconciler.ostree.commits import CheckResult, CommitChecker, commit_checks
from reconciler.ostree.remote import commit_exists
from reconciler.problems import Problem

logger = logging.getLogger(__name__)


def set_network_timeouts(seconds: float) -> None:
    """Bound every connection and read of libgit2 in this process (fetch, push, clone).

    Without it a remote that accepts the connection and then goes silent blocks a fetch for
    ever, and with it everything else that needs the mirror."""
    milliseconds = max(1, int(seconds * 1000))
    pygit2.settings.server_connect_timeout = milliseconds
    pygit2.settings.server_timeout = milliseconds


class MirrorLock:
    """Held for every use of the mirror: pygit2 objects must not be shared between threads,
    and two processes on one state directory (a restart that overlaps the old process) must
    not interleave ref updates. A thread lock plus an advisory lock on a file in the mirror."""

    def __init__(self, path: Path) -> None:
        self._thread_lock = threading.Lock()
        self._path = path / "reconciler.lock"
        self._file: IO[bytes] | None = None

    def __enter__(self) -> MirrorLock:
        self._thread_lock.acquire()
        try:
            self._file = self._path.open("ab")
            fcntl.flock(self._file, fcntl.LOCK_EX)
            _remove_stale_git_locks(self._path.parent)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
        self._thread_lock.release()


def _remove_stale_git_locks(mirror: Path) -> None:
    """Remove the `*.lock` files a killed process left in the mirror.

    libgit2 writes a ref (or packed-refs, or the config) through `<name>.lock` and renames it
    into place; a process killed in between leaves the lock, and every later write of that
    ref fails for ever ("failed to lock file"). Only a holder of this exclusive lock writes
    to the mirror, so once we hold it, any Git lock file in it is left over: removing it is
    what `git` asks a human to do, done safely.
    """
    candidates = [mirror / "packed-refs.lock", mirror / "config.lock", mirror / "HEAD.lock"]
    refs = mirror / "refs"
    if refs.is_dir():
        candidates.extend(refs.rglob("*.lock"))
    for stale in candidates:
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            logger.warning("removed %s, left by a process that was killed mid-write", stale.name)


class FleetMirror:
    """A bare mirror of the fleet repo's branch, fetched on demand."""

    def __init__(
        self,
        url: str,
        path: Path,
        branch: str = "main",
        credentials: GitCredentials | None = None,
    ) -> None:
        self.url, self.path, self.branch = url, path, branch
        self.credentials = credentials or GitCredentials()
        try:
            if (path / "HEAD").exists():
                self.repo = pygit2.Repository(str(path))
            else:
                self.repo = pygit2.clone_repository(
                    url, str(path), bare=True, callbacks=self.credentials.callbacks()
                )
        except (pygit2.GitError, OSError) as exc:
            raise GitRemoteUnavailable(f"cannot clone the fleet repo {url}: {exc}") from exc
        self.lock = MirrorLock(path)

    def fetch(self) -> str:
        """Fetch the remote and return the commit id at the tip of the watched branch."""
        fetch(self.repo, [branch_refspec(self.branch)], self.credentials, self.url)
        return self.tip()

    def tip(self) -> str:
        try:
            ref = self.repo.references[f"refs/remotes/origin/{self.branch}"]
        except KeyError:
            raise GitRemoteUnavailable(f"branch {self.branch} not found in {self.url}") from None
        return str(ref.peel(pygit2.Commit).id)

    def commits_since(self, applied: str, candidate: str, limit: int) -> list[str] | None:
        """Commits reachable from ``candidate`` but not from ``applied`` (merges included),
        newest first; None when there are more than ``limit``."""
        walker = self.repo.walk(pygit2.Oid(hex=candidate), pygit2.enums.SortMode.TOPOLOGICAL)
        walker.hide(pygit2.Oid(hex=applied))
        found: list[str] = []
        for commit in walker:
            if len(found) >= limit:
                return None
            found.append(str(commit.id))
        return found

    def changed_files(self, old: str, new: str, subdirectory: str = "") -> set[str]:
        """Paths of the files that differ between two commits (added, removed, modified or
        renamed: both names), relative to ``subdirectory``; only files under it."""
        before = self.repo.revparse_single(old).peel(pygit2.Commit).tree
        diff = before.diff_to_tree(self.repo.revparse_single(new).peel(pygit2.Commit).tree)
        prefix = f"{subdirectory.strip('/')}/" if subdirectory.strip("/") else ""
        paths = {p for d in diff.deltas for p in (d.old_file.path, d.new_file.path)}
        return {p.removeprefix(prefix) for p in paths if p.startswith(prefix)}

    def builds_on(self, candidate: str, applied: str) -> bool:
        """True when ``candidate`` is ``applied`` or a descendant of it (no history rewrite)."""
        return candidate == applied or bool(
            self.repo.descendant_of(pygit2.Oid(hex=candidate), pygit2.Oid(hex=applied))
        )


#: With every commit verified, a push of more commits than this at once is refused (each
#: check runs `ssh-keygen` or `gpg`).
MAX_COMMITS_VERIFIED = 1_000


class VerdictCode(StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    INVALID = "invalid"
    HISTORY_REWRITTEN = "history_rewritten"
    PREFLIGHT_FAILED = "preflight_failed"
    UNSIGNED = "unsigned"


@dataclass(frozen=True)
class RevisionVerdict:
    """Whether a fleet-repo revision takes effect, and why."""

    revision: str
    code: VerdictCode
    message: str
    fleet: Fleet | None = None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        return self.code is VerdictCode.APPLIED


def consider_revision(
    mirror: FleetMirror,
    candidate: str,
    applied: str | None,
    applied_fleet: Fleet | None,
    *,
    allow_history_rewrite: bool = False,
    commit_checker: CommitChecker = commit_exists,
    subdirectory: str = "",
    verify_signature: Callable[[str], str | None] | None = None,
    every_commit: bool = False,
    parsed: ParsedFileCache | None = None,
) -> RevisionVerdict:
    """Decide whether ``candidate`` replaces the applied revision; never raises on content.

    ``verify_signature`` checks the candidate's signature, or with ``every_commit`` that of
    every commit since the applied revision (merge commits included). With ``parsed``, only
    the files whose blobs it does not hold are parsed and validated.
    """
    if candidate == applied:
        return RevisionVerdict(candidate, VerdictCode.UNCHANGED, "already applied")
    if (
        applied is not None
        and not allow_history_rewrite
        and not mirror.builds_on(candidate, applied)
    ):
        return RevisionVerdict(
            candidate,
            VerdictCode.HISTORY_REWRITTEN,
            f"{candidate[:12]} does not contain the applied revision {applied[:12]}: the "
            "branch was force-pushed; refusing to act on rewritten history "
            "(allow it with --allow-history-rewrite)",
        )
    if verify_signature is not None:
        to_verify: list[str] | None = [candidate]
        if every_commit and applied is not None:
            to_verify = mirror.commits_since(applied, candidate, MAX_COMMITS_VERIFIED)
        if to_verify is None:
            return RevisionVerdict(
                candidate,
                VerdictCode.UNSIGNED,
                f"more than {MAX_COMMITS_VERIFIED} commits since the applied revision "
                f"{(applied or '')[:12]}: too many to verify one by one",
            )
        for commit in to_verify:
            refusal = verify_signature(commit)
            if refusal is not None:
                return RevisionVerdict(candidate, VerdictCode.UNSIGNED, refusal)
    result = load_fleet(GitRevisionSource(mirror.path, candidate, subdirectory), cache=parsed)
    if result.fleet is None:
        return RevisionVerdict(
            candidate,
            VerdictCode.INVALID,
            _invalid_message(result.errors),
            problems=result.problems,
        )
    missing = _missing_commits(result.fleet, applied_fleet, commit_checker)
    if missing:
        return RevisionVerdict(
            candidate, VerdictCode.PREFLIGHT_FAILED, "; ".join(missing), problems=result.problems
        )
    return RevisionVerdict(
        candidate, VerdictCode.APPLIED, f"applied {candidate[:12]}", result.fleet, result.problems
    )


def _missing_commits(fleet: Fleet, applied: Fleet | None, exists: CommitChecker) -> list[str]:
    """New stream and pin commits that their OSTree repository does not hold (or that
    cannot be checked), as sentences for the refusal."""
    problems = []
    for check in commit_checks(fleet, applied, exists):
        if check.result is CheckResult.MISSING:
            problems.append(
                f"{check.subject}: commit {check.commit[:12]} is not in "
                f"{', '.join(check.urls)} (a typo?); nothing was started"
            )
        elif check.result is CheckResult.UNCHECKABLE:
            problems.append(
                f"{check.subject}: cannot check commit {check.commit[:12]}: {check.detail}"
            )
    return problems


#: Errors of a refused revision kept in its verdict, after the summary line (the store and
#: `reconciler status` show them; `reconciler validate` gives all of them).
ERRORS_RECORDED = 10


def _invalid_message(errors: Sequence[Problem]) -> str:
    """A summary line naming the first error, then one line per error (at most
    :data:`ERRORS_RECORDED`): logs take the first line, `status` shows the rest."""
    described = [
        f"{p.location()}: {p.field + ': ' if p.field else ''}{p.message}"
        for p in errors[:ERRORS_RECORDED]
    ]
    more = len(errors) - len(described)
    return "\n".join(
        [f"{len(errors)} error(s); first: {described[0]}"]
        + [f"  {line}" for line in described]
        + ([f"  ... and {more} more (`reconciler validate --rev` lists them)"] if more else [])
    )
