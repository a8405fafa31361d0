"""What the daemon writes back to the fleet repo: rollout notes and promotion commits.

Both are level-triggered passes: a trigger (a plan changed, a soak ended, the resync) only
says "look again"; a pass reads the event log, the rollout state and the reports afresh and
writes what is missing. Reading the store and the service happens on the caller's thread (the
event loop's); the Git part may run in a worker thread and holds the mirror's lock. A push
that fails is reported (log, metric, the promotions table) and tried again only after a
back-off, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from reconciler.errors import (
    GitPushFailed,
    GitPushRejected,
    GitRemoteUnavailable,
    PromotionImpossible,
    ReconcilerError,
)
from reconciler.git.notes import NOTED_KINDS, NotesWritten, RolloutNotes, note_lines
from reconciler.git.source import FleetMirror
from reconciler.git.writer import CommitSigner, GitIdentity
from reconciler.promotion.check import PromotionCheck, PromotionStatus
from reconciler.promotion.commit import PromotionOutcome, PromotionWriter, PromotionWritten
from reconciler.serve.service import FleetService
from reconciler.state.store import StoredEvent

logger = logging.getLogger(__name__)

#: After a failed push, wait this long before the next one, doubling up to the longest.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
NOTES_CURSOR = "notes"

T = TypeVar("T")
#: How a pass runs its Git half: ``asyncio.to_thread`` in the daemon, in place in one-shot use.
InWorker = Callable[..., Awaitable[Any]]


async def in_place(function: Callable[..., T], *args: Any) -> T:
    """Run the Git half on the calling thread (tests and one-shot use)."""
    return function(*args)


@dataclass
class Backoff:
    """When something that failed may be tried again, by key (virtual time in tests)."""

    failures: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, datetime] = field(default_factory=dict)

    def ready(self, key: str, now: datetime) -> bool:
        return now >= self.not_before.get(key, now)

    def failed(self, key: str, now: datetime) -> timedelta:
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        wait: timedelta = min(LONGEST_RETRY, FIRST_RETRY * 2 ** min(count - 1, 16))
        self.not_before[key] = now + wait
        return wait

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)
        self.not_before.pop(key, None)


@dataclass(frozen=True)
class WriteBackConfig:
    identity: GitIdentity = field(default_factory=GitIdentity)
    signer: CommitSigner = field(default_factory=CommitSigner)
    push_notes: bool = True
    promote: bool = True


@dataclass(frozen=True)
class PromotionAttempt:
    check: PromotionCheck
    written: PromotionWritten | None
    error: str | None = None


class WriteBack:
    """Rollout notes and promotions for one daemon's mirror, store and service."""

    def __init__(
        self,
        mirror: FleetMirror,
        service: FleetService,
        config: WriteBackConfig,
        subdirectory: str = "",
    ) -> None:
        self.mirror, self.service, self.config = mirror, service, config
        self.store, self.clock = service.store, service.clock
        self.notes = RolloutNotes(mirror.repo, config.identity, mirror.credentials)
        self.promoter = PromotionWriter(
            mirror.repo,
            mirror.branch,
            config.identity,
            config.signer,
            subdirectory,
            mirror.credentials,
        )
        self.backoff = Backoff()
        # Promotions that cannot be written into the fleet repo as it is, by the revision in
        # force when that was found.
        self.impossible: dict[str, str | None] = {}

    def _count_push_error(self, what: str) -> None:
        self.service.metrics.git_push_errors.labels(what).inc()

    # -- rollout notes ----------------------------------------------------------------------

    def pending_notes(self) -> tuple[dict[str, list[str]], int]:
        """Note lines for events not yet published, and the id of the last such event."""
        cursor = self.store.cursor(NOTES_CURSOR)
        events = self.store.events(after_id=cursor, kinds=NOTED_KINDS)

        def tally(event: StoredEvent) -> tuple[int, int]:
            if event.rollout is None:
                return 0, 0
            return self.store.host_outcomes(event.group, event.rollout, event.id)

        return note_lines(events, tally), max((e.id for e in events), default=cursor)

    def write_notes(self, lines: dict[str, list[str]], push: bool) -> NotesWritten:
        """The Git half of a notes pass; safe in a worker thread."""
        with self.mirror.lock:
            return self.notes.write(lines, self.clock.now(), push_to_remote=push)

    def notes_pushable(self) -> bool:
        return self.config.push_notes and self.backoff.ready(NOTES_CURSOR, self.clock.now())

    def notes_written(
        self, last: int, pushed_wanted: bool, outcome: NotesWritten | Exception
    ) -> None:
        """Record how a notes pass went; the cursor moves only once the lines are where they
        should be (pushed, or local when pushing is off)."""
        if isinstance(outcome, GitPushFailed | GitPushRejected | GitRemoteUnavailable):
            wait = self.backoff.failed(NOTES_CURSOR, self.clock.now())
            self._count_push_error("notes")
            logger.warning(
                "cannot push rollout notes (kept in the mirror; next try in %s): %s",
                wait,
                outcome,
            )
            return
        if isinstance(outcome, Exception):
            logger.error("cannot write rollout notes: %s", outcome)
            return
        if pushed_wanted or not self.config.push_notes:
            self.backoff.succeeded(NOTES_CURSOR)
            self.store.advance_cursor(NOTES_CURSOR, last)
        if outcome.lines_added:
            logger.info(
                "rollout notes: %d line(s) added%s",
                outcome.lines_added,
                ", pushed" if outcome.pushed else "",
                extra={"notes_commit": outcome.notes_commit},
            )

    async def notes_pass(self, in_worker: InWorker = in_place) -> NotesWritten | None:
        """Publish what the event log holds that the notes do not: read the store here, run
        the Git half with ``in_worker``, record the outcome here."""
        lines, last = self.pending_notes()
        if not lines:  # only host steps since: skip them next time
            self.store.advance_cursor(NOTES_CURSOR, last)
            return None
        push = self.notes_pushable()
        try:
            written: NotesWritten = await in_worker(self.write_notes, lines, push)
        except ReconcilerError as exc:
            self.notes_written(last, push, exc)
            return None
        self.notes_written(last, push, written)
        return written

    def publish_notes(self) -> NotesWritten | None:
        """A whole notes pass on the calling thread (tests and one-shot use)."""
        return asyncio.run(self.notes_pass())

    # -- promotions -----------------------------------------------------------------------

    def due(self, checks: list[PromotionCheck]) -> list[PromotionCheck]:
        """Checks that are due and not backing off from a failed attempt."""
        now, revision = self.clock.now(), self.service.fleet.revision
        return [
            c
            for c in checks
            if c.due
            and self.backoff.ready(_key(c), now)
            and self.impossible.get(_key(c), "") != revision
        ]

    def write_promotion(self, check: PromotionCheck) -> PromotionWritten:
        """The Git half of a promotion; safe in a worker thread. Everything it needs comes
        with the check, never from the fleet in force (which may change meanwhile)."""
        with self.mirror.lock:
            return self.promoter.promote(check, self.clock.now())

    def promotion_done(
        self, check: PromotionCheck, outcome: PromotionWritten | Exception
    ) -> PromotionAttempt:
        """Record an attempt: in the promotions table, the log and the metrics."""
        now = self.clock.now()
        key = _key(check)
        if isinstance(outcome, Exception):
            if isinstance(outcome, PromotionImpossible):
                # Only a new revision of the fleet repo can change this: say it once, and
                # try again when one is taken in.
                self.impossible[key] = self.service.fleet.revision
                message = f"{outcome} (next try once the fleet repo changes)"
            else:
                wait = self.backoff.failed(key, now)
                message = f"{outcome} (next try in {wait})"
                self._count_push_error("promotion")
            self.store.record_promotion(check, now, "failed", None, None, message)
            logger.error(
                "promotion of %s to %s failed: %s",
                check.commit[:12],
                check.stream,
                message,
                extra={"stream": check.stream, "commit": check.commit},
            )
            return PromotionAttempt(check, None, message)
        if outcome.outcome is PromotionOutcome.OVERTAKEN:
            # Someone changed the stream in a revision not taken in yet (maybe a refused
            # one): look again later rather than on every plan change until then.
            self.backoff.failed(key, now)
        else:
            self.backoff.succeeded(key)
            self.store.record_promotion(
                check, now, outcome.outcome.value, outcome.commit, outcome.branch, outcome.message
            )
        logger.info(
            "promotion of %s to %s: %s",
            check.commit[:12],
            check.stream,
            outcome.message,
            extra={
                "stream": check.stream,
                "commit": check.commit,
                "revision": outcome.commit,
                "outcome": outcome.outcome.value,
            },
        )
        return PromotionAttempt(check, outcome)

    async def promotion_pass(
        self, in_worker: InWorker = in_place
    ) -> tuple[list[PromotionCheck], list[PromotionAttempt]]:
        """Make every due promotion: checks here, the Git half with ``in_worker``, the record
        here. Returns the checks (for the next timer) and the attempts made."""
        checks = self.service.promotion_checks()
        attempts = []
        for check in self.due(checks):
            try:
                written: PromotionWritten | Exception = await in_worker(self.write_promotion, check)
            except ReconcilerError as exc:
                written = exc
            attempts.append(self.promotion_done(check, written))
        return checks, attempts

    def promote_due(self) -> list[PromotionAttempt]:
        """A whole promotion pass on the calling thread (tests and one-shot use)."""
        return asyncio.run(self.promotion_pass())[1]


def next_promotion_check(checks: list[PromotionCheck]) -> datetime | None:
    """When a soaking promotion becomes due if nothing else happens first."""
    soaking = [c.due_at for c in checks if c.status is PromotionStatus.SOAKING and c.due_at]
    return min(soaking, default=None)


def _key(check: PromotionCheck) -> str:
    return f"promotion:{check.stream}:{check.commit}"
