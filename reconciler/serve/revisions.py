"""Following the fleet repo's branch: fetch the mirror, put the tip through the gate, record
the verdict. The daemon's start-up and its sync loop both go through :meth:`look` and
:meth:`record`, so the first revision is judged exactly like every later one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.clock import Clock
from reconciler.errors import GitRemoteUnavailable
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import GitRevisionSource
from reconciler.git.signatures import SignatureTrust, check_commit_signature
from reconciler.git.source import FleetMirror, RevisionVerdict, VerdictCode, consider_revision
from reconciler.logs import redact
from reconciler.state.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchHealth:
    """How fetching the fleet repo goes, since this process started: an operator's first
    question when a merged change does not arrive. Replaced whole, never mutated, so a
    reader on another thread sees one consistent value."""

    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None  # credentials redacted

    def succeeded(self, at: datetime) -> FetchHealth:
        return replace(
            self, last_attempt_at=at, last_success_at=at, consecutive_failures=0, last_error=None
        )

    def failed(self, at: datetime, error: Exception) -> FetchHealth:
        return replace(
            self,
            last_attempt_at=at,
            consecutive_failures=self.consecutive_failures + 1,
            last_error=redact(str(error)),
        )


class RevisionFollower:
    """The mirror, the gate's settings and the revision in force (``applied``)."""

    def __init__(
        self,
        mirror: FleetMirror,
        store: Store,
        clock: Clock,
        signatures: SignatureTrust,
        allow_history_rewrite: bool = False,
        subdirectory: str = "",
        parsed: ParsedFileCache | None = None,
    ) -> None:
        self.mirror, self.store, self.clock = mirror, store, clock
        self.signatures = signatures
        self.allow_history_rewrite = allow_history_rewrite
        self.subdirectory = subdirectory
        self.applied = store.last_applied_revision()
        # The last tip refused, and why: a refused tip is judged once, not at every poll
        # (judging an adversarial revision costs real work; its verdict cannot change).
        self._refused: tuple[str, RevisionVerdict] | None = None
        self.fetch_health = FetchHealth()
        # What each fleet file's blob parsed to: a revision costs the files it changed
        # (kept on disk by the daemon, so a restart does not parse the fleet again).
        self.parsed = parsed if parsed is not None else ParsedFileCache()

    def applied_fleet(self) -> Fleet | None:
        """The fleet of the revision in force, read back from the mirror (None if there is
        none yet)."""
        if self.applied is None:
            return None
        with self.mirror.lock:  # every use of the mirror holds it
            source = GitRevisionSource(self.mirror.path, self.applied, self.subdirectory)
            return load_fleet(source, cache=self.parsed).fleet

    def look(self, current: Fleet | None) -> tuple[str, RevisionVerdict]:
        """Fetch and judge the tip against ``current``, the fleet in force, under one hold of
        the mirror lock. Touches only the mirror and the network, so it may run in a worker
        thread; :meth:`record` the verdict on the thread that owns the store."""
        with self.mirror.lock:
            tip = self._fetch()
            if self._refused is not None and self._refused[0] == tip:
                return tip, self._refused[1]
            trust = self.signatures
            verdict = consider_revision(
                self.mirror,
                tip,
                self.applied,
                current,
                verify_signature=(
                    (lambda revision: check_commit_signature(self.mirror.path, revision, trust))
                    if trust.configured
                    else None
                ),
                allow_history_rewrite=self.allow_history_rewrite,
                subdirectory=self.subdirectory,
                every_commit=trust.every_commit,
                parsed=self.parsed,
            )
        if not verdict.accepted and verdict.code is not VerdictCode.PREFLIGHT_FAILED:
            # A preflight failure may be the OSTree repository being down: ask again.
            self._refused = (tip, verdict)
        return tip, verdict

    def _fetch(self) -> str:
        try:
            tip = self.mirror.fetch()
        except GitRemoteUnavailable as exc:
            self.fetch_health = self.fetch_health.failed(self.clock.now(), exc)
            raise
        self.fetch_health = self.fetch_health.succeeded(self.clock.now())
        return tip

    def record(self, tip: str, verdict: RevisionVerdict) -> None:
        """Store and log a verdict once (a refusal repeated at every poll is recorded once);
        an accepted tip becomes the revision in force."""
        last = self.store.last_verdict()
        repeated = last is not None and (last.revision, last.code) == (tip, verdict.code.value)
        back_to_applied = (
            verdict.code is VerdictCode.UNCHANGED and last is not None and not last.accepted
        )
        now: datetime = self.clock.now()
        if back_to_applied:  # the branch went back to the applied commit: nothing is refused
            self.store.record_revision(tip, now, True, verdict.code.value, verdict.message)
        elif verdict.code is not VerdictCode.UNCHANGED and not repeated:
            self.store.record_revision(
                tip, now, verdict.accepted, verdict.code.value, verdict.message
            )
            log = logger.info if verdict.accepted else logger.error
            log(
                "fleet revision %s: %s",
                verdict.code.value,
                verdict.message.splitlines()[0],  # the summary; `status` shows the errors
                extra={"revision": tip, "verdict": verdict.code.value},
            )
        if verdict.accepted:
            self.applied = tip
