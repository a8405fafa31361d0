"""Rollout records in Git: what each fleet-repo commit did to the fleet, as git notes.

When a rollout starts, opens or finishes a wave, loses a host, halts, resumes or completes,
a line is appended to the note (``refs/notes/rollouts``) on the fleet-repo commit that caused
it, so ``git log --notes=rollouts`` shows under each merge what happened because of it.

The event log in SQLite stays the source of truth and the notes are a projection of it,
which is what makes them safe: a line is derived from its event alone (the same event always
gives the same line), lines already in a note are never written again, and the notes ref only
ever moves forward. A remote that moved on (another reconciler, a restart that overlapped) is
fetched and built upon, never overwritten, so no record is lost and none appears twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pygit2

from reconciler.git.auth import GitCredentials
from reconciler.git.remote import Built, push_rebuilding
from reconciler.git.writer import GitIdentity
from reconciler.rollout.decisions import DecisionKind
from reconciler.state.store import StoredEvent

NOTES_REF = "refs/notes/rollouts"
#: Where the remote's notes are fetched to; a tracking ref, so it may be overwritten.
REMOTE_NOTES_REF = "refs/remotes/origin/notes/rollouts"
#: Built here, then moved to NOTES_REF in one step: a crash leaves the old notes in place.
PENDING_NOTES_REF = "refs/reconciler/notes-pending"

#: Events worth a line: the life of a rollout, not every host's every step.
NOTED_KINDS = frozenset(
    {
        DecisionKind.ROLLOUT_STARTED,
        DecisionKind.WAVE_OPENED,
        DecisionKind.WAVE_COMPLETED,
        DecisionKind.HOST_FAILED,
        DecisionKind.ROLLOUT_HALTED,
        DecisionKind.ROLLOUT_RESUMED,
        DecisionKind.ROLLOUT_SUPERSEDED,
        DecisionKind.ROLLOUT_COMPLETED,
    }
)
#: Kinds after which the note says how many hosts reached the target and failed so far.
_TALLIED = frozenset(
    {
        DecisionKind.WAVE_COMPLETED,
        DecisionKind.ROLLOUT_HALTED,
        DecisionKind.ROLLOUT_SUPERSEDED,
        DecisionKind.ROLLOUT_COMPLETED,
    }
)

Tally = Callable[[StoredEvent], tuple[int, int]]  # (hosts on the target, failed) as of it


def note_line(event: StoredEvent, tally: Tally) -> str:
    """One line of a rollout note; a function of the event alone, so it is written once."""
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kind = DecisionKind(event.kind)
    what = kind.value.replace("_", " ")
    subject = f"rollout {event.rollout}" if event.rollout is not None else "rollout"
    if kind in (DecisionKind.WAVE_OPENED, DecisionKind.WAVE_COMPLETED) and event.wave is not None:
        subject += f" wave {event.wave + 1}"  # stored from 0, shown from 1 like the messages
    if event.host is not None:
        subject += f" host {event.host}"
    target = f" target {event.commit[:12]}" if event.commit else ""
    counts = ""
    if kind in _TALLIED:
        updated, failed = tally(event)
        counts = f" ({updated} on the target, {failed} failed)"
    return f"{at} {event.group} {subject}{target}: {what}{counts}: {_one_line(event.message)}"


#: Longest reason kept in a note line; the whole text stays in the event log.
MAX_REASON = 400


def _one_line(message: str) -> str:
    """A reason on one line: it may quote a host's error output, which must neither split the
    line (and forge another record) nor defeat the "already written" check."""
    flat = " ".join(message.split())
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"


def note_lines(events: Sequence[StoredEvent], tally: Tally) -> dict[str, list[str]]:
    """Lines to add, by the fleet-repo revision each event traces to (events without one, from
    before revisions were recorded, have no commit to annotate and are left out)."""
    lines: dict[str, list[str]] = {}
    for event in events:
        if event.revision is not None and event.kind in NOTED_KINDS:
            lines.setdefault(event.revision, []).append(note_line(event, tally))
    return lines


@dataclass(frozen=True)
class NotesWritten:
    """What one publication did."""

    notes_commit: str | None  # tip of the local notes ref afterwards
    lines_added: int
    pushed: bool


class RolloutNotes:
    """Appends rollout lines to the notes ref of a bare mirror and pushes it."""

    def __init__(
        self,
        repo: pygit2.Repository,
        identity: GitIdentity,
        credentials: GitCredentials | None = None,
    ) -> None:
        self.repo = repo
        self.identity = identity
        self.credentials = credentials or GitCredentials()

    def write(
        self, lines: Mapping[str, Sequence[str]], at: datetime, push_to_remote: bool = True
    ) -> NotesWritten:
        """Add ``lines`` (by revision) that the notes do not hold yet, then push.

        Raises :class:`~reconciler.errors.GitPushFailed` when the push fails for a reason
        other than the remote having moved on; the lines are in the local ref by then.
        """
        if not push_to_remote:
            tip, added = self._append(self._base(None), lines, at)
            return NotesWritten(_hex(tip), added, pushed=False)

        def build(_attempt: int) -> Built[NotesWritten]:
            remote_tip = self._tip(REMOTE_NOTES_REF)
            tip, added = self._append(self._base(remote_tip), lines, at)
            ahead = tip is not None and (added > 0 or tip != remote_tip)
            return Built(NotesWritten(_hex(tip), added, pushed=ahead), push=ahead)

        return push_rebuilding(
            self.repo,
            [f"+{NOTES_REF}:{REMOTE_NOTES_REF}"],
            build,
            NOTES_REF,
            NOTES_REF,
            credentials=self.credentials,
            fetching=NOTES_REF,
            gave_up=f"{NOTES_REF} kept moving in the remote; will try again later",
        )

    def _tip(self, ref: str) -> pygit2.Oid | None:
        try:
            target = self.repo.references[ref].target
        except KeyError:
            return None
        return target if isinstance(target, pygit2.Oid) else None

    def _base(self, remote: pygit2.Oid | None) -> tuple[pygit2.Oid | None, pygit2.Oid | None]:
        """(commit to build on, local notes to carry over onto it).

        Local notes that the remote lacks and cannot fast-forward to (written while the
        remote was unreachable, and someone else pushed since) are carried over line by line,
        so the remote's history is never rewritten and nothing local is lost.
        """
        local = self._tip(NOTES_REF)
        if remote is None or remote == local:
            return local, None
        if local is None or self.repo.descendant_of(remote, local):
            return remote, None
        if self.repo.descendant_of(local, remote):
            return local, None
        return remote, local

    def _append(
        self,
        base: tuple[pygit2.Oid | None, pygit2.Oid | None],
        lines: Mapping[str, Sequence[str]],
        at: datetime,
    ) -> tuple[pygit2.Oid | None, int]:
        start, carry_over = base
        wanted: dict[str, list[str]] = {}
        if carry_over is not None:
            carried = _ref_at(self.repo, carry_over)
            for note in self.repo.notes(carried):  # type: ignore[call-arg]  # stub lacks ref
                wanted.setdefault(str(note.annotated_id), []).extend(note.message.splitlines())
            _delete(self.repo, carried)
        for revision, new in lines.items():
            wanted.setdefault(revision, []).extend(new)
        if start is None:
            _delete(self.repo, PENDING_NOTES_REF)
        else:
            self.repo.references.create(PENDING_NOTES_REF, start, force=True)
        who = self.identity.signature(at)
        added = 0
        for revision, candidates in wanted.items():
            existing = _note_text(self.repo, revision, PENDING_NOTES_REF)
            have = set(existing.splitlines())
            fresh = [line for line in dict.fromkeys(candidates) if line not in have]
            if not fresh:
                continue
            text = (existing.rstrip("\n") + "\n" if existing else "") + "\n".join(fresh) + "\n"
            self.repo.create_note(text, who, who, revision, PENDING_NOTES_REF, True)
            added += len(fresh)
        tip = self._tip(PENDING_NOTES_REF)
        if tip is not None:
            self.repo.references.create(NOTES_REF, tip, force=True)
        _delete(self.repo, PENDING_NOTES_REF)
        return tip, added


def _note_text(repo: pygit2.Repository, revision: str, ref: str) -> str:
    try:
        return str(repo.lookup_note(revision, ref).message)
    except (KeyError, pygit2.GitError):
        return ""


def _ref_at(repo: pygit2.Repository, commit: pygit2.Oid) -> str:
    """A ref pointing at ``commit``, since libgit2 lists notes by ref name only."""
    name = "refs/reconciler/notes-carried-over"
    repo.references.create(name, commit, force=True)
    return name


def _delete(repo: pygit2.Repository, ref: str) -> None:
    with contextlib.suppress(KeyError):
        repo.references.delete(ref)


def _hex(oid: pygit2.Oid | None) -> str | None:
    return None if oid is None else str(oid)
