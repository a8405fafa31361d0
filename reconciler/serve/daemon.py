"""`reconciler serve`: the event-driven daemon.

Three triggers all mean "look at the repo again" and are coalesced into one pass: a watch on
a local repository's refs (a push renames `refs/heads/<branch>.lock` into place), a jittered
poll for remotes, and signed webhooks from the forge. Each pass fetches the mirror and puts the new
tip through the gate (:func:`reconciler.git.source.consider_revision`); a refused revision is
logged and recorded, and the last good one stays in force. Timers re-plan a group when its
plan asked to be looked at again (a soak ending, a window opening), so waves advance when due
rather than at the next report; a periodic resync catches anything missed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from reconciler.clock import Clock, SystemClock
from reconciler.errors import GitRemoteUnavailable, ReconcilerError
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import GitRevisionSource
from reconciler.git.auth import GitCredentials
from reconciler.git.signatures import SignatureTrust, check_commit_signature
from reconciler.git.source import (
    FleetMirror,
    RevisionVerdict,
    VerdictCode,
    consider_revision,
    set_network_timeouts,
)
from reconciler.git.writer import CommitSigner, GitIdentity
from reconciler.rollout.planner import GroupPlan
from reconciler.serve.api.app import create_app
from reconciler.serve.server import BackgroundServer, Listen, make_server
from reconciler.serve.service import FleetService
from reconciler.serve.webhooks import check_webhook
from reconciler.serve.writeback import (
    InWorker,
    WriteBack,
    WriteBackConfig,
    in_place,
    next_promotion_check,
)
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store

logger = logging.getLogger(__name__)

#: Forges send whole push payloads; GitHub caps them at 25 MB, we only need to hash them.
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024


class NoValidRevision(ReconcilerError):
    """The daemon has never applied a revision and the current tip is refused."""


@dataclass(frozen=True)
class ServeConfig:
    repo: str
    state_dir: Path
    branch: str = "main"
    subdirectory: str = ""
    listen: Listen = field(default_factory=lambda: Listen("127.0.0.1", 8443))
    operator_token_sha256: str | None = None
    poll_interval: float = 30.0
    resync_interval: float = 300.0
    allow_history_rewrite: bool = False
    watch: bool = True
    webhook_secret: str | None = None
    signatures: SignatureTrust = field(default_factory=SignatureTrust)
    #: Who the reconciler is in the fleet repo's history (rollout notes, promotions).
    identity: GitIdentity = field(default_factory=GitIdentity)
    signer: CommitSigner = field(default_factory=CommitSigner)
    #: Push rollout notes to the remote (needs write access); they are kept in the mirror anyway.
    push_notes: bool = True
    #: Make the promotion commits streams declare (needs write access to the fleet repo).
    promote: bool = True
    #: How to authenticate to the fleet repo's remote (a token over HTTPS, or an SSH key).
    credentials: GitCredentials = field(default_factory=GitCredentials)
    #: Longest wait for the fleet repo's remote to connect or answer, in seconds.
    git_timeout: float = 60.0


class _RefsChanged(FileSystemEventHandler):
    """Any write under refs/ or to packed-refs means "look again"; reads are ignored."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "modified", "moved", "deleted"):
            self.wake()


def promotion_allowed(config: ServeConfig) -> bool:
    """Promotions are off when asked, and when the daemon requires signed revisions but has
    no key to sign its own: it would refuse its own promotion, and with it every revision
    pushed on top until a human signed one."""
    if config.promote and config.signatures.configured and not config.signer.configured:
        logger.error(
            "automatic promotion is off: signed revisions are required but no signing "
            "key is configured (--signing-ssh-key or --signing-gpg-key)"
        )
        return False
    return config.promote


def _keep_signals_for_shutdown() -> None:
    """uvicorn stops on SIGTERM/SIGINT and then re-raises the signal to the handler that was
    there before it. With the default handler the process would die before our shutdown
    (flushing reports, closing the database) runs; a no-op handler lets it finish."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: None)


class Daemon:
    def __init__(self, config: ServeConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(config.state_dir / "state.sqlite")
        self.reports = SqliteReportStore(config.state_dir / "state.sqlite")
        set_network_timeouts(config.git_timeout)
        self.mirror = FleetMirror(
            config.repo, config.state_dir / "fleet.git", config.branch, config.credentials
        )
        self.applied = self.store.last_applied_revision()
        fleet = self._applied_fleet()
        try:
            tip = self.mirror.fetch()
            verdict = self._judge(tip, fleet)
            self._record(tip, verdict)
        except Exception as exc:  # the world or a bug: keep the last good revision if any
            if fleet is None:
                raise
            logger.warning(
                "cannot consider the fleet repo's tip; keeping %s: %s", self.applied, exc
            )
        else:
            if verdict.accepted:
                fleet = verdict.fleet
        if fleet is None:
            raise NoValidRevision(
                "no revision of the fleet repo has ever been valid; the tip "
                "was refused (see the log); fix it and start again"
            )
        self.service = FleetService(fleet, self.store, self.reports, self.clock)
        self.writeback = WriteBack(
            self.mirror,
            self.service,
            WriteBackConfig(
                config.identity, config.signer, config.push_notes, promotion_allowed(config)
            ),
            config.subdirectory,
        )
        self.app = self._build_app()
        self.scheduler: AsyncIOScheduler | None = None
        self._dirty: asyncio.Event | None = None
        self._writeback_due: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- Git ----------------------------------------------------------------------------

    def _applied_fleet(self) -> Fleet | None:
        if self.applied is None:
            return None
        result = load_fleet(
            GitRevisionSource(self.mirror.path, self.applied, self.config.subdirectory)
        )
        return result.fleet

    def _fetch(self) -> str:
        with self.mirror.lock:  # every use of the mirror holds it
            return self.mirror.fetch()

    def _judge(self, tip: str, current: Fleet | None) -> RevisionVerdict:
        """Put ``tip`` through the gate. Touches only the mirror and the network, so it may
        run in a worker thread; recording the verdict is :meth:`_record`'s job."""
        with self.mirror.lock:  # every use of the mirror holds it
            return self._consider(tip, current)

    def _consider(self, tip: str, current: Fleet | None) -> RevisionVerdict:
        trust = self.config.signatures
        return consider_revision(
            self.mirror,
            tip,
            self.applied,
            current,
            verify_signature=(
                (lambda revision: check_commit_signature(self.mirror.path, revision, trust))
                if trust.configured
                else None
            ),
            allow_history_rewrite=self.config.allow_history_rewrite,
            subdirectory=self.config.subdirectory,
        )

    def _record(self, tip: str, verdict: RevisionVerdict) -> None:
        """Store and log a verdict; on the thread that owns the store (the event loop's)."""
        last = self.store.last_verdict()
        repeated = last is not None and (last[0], last[2]) == (tip, verdict.code.value)
        back_to_applied = verdict.code is VerdictCode.UNCHANGED and last is not None and not last[1]
        if back_to_applied:  # the branch went back to the applied commit: nothing is refused
            self.store.record_revision(
                tip, self.clock.now(), True, verdict.code.value, verdict.message
            )
        elif verdict.code is not VerdictCode.UNCHANGED and not repeated:
            self.store.record_revision(
                tip, self.clock.now(), verdict.accepted, verdict.code.value, verdict.message
            )
            log = logger.info if verdict.accepted else logger.error
            log(
                "fleet revision %s: %s",
                verdict.code.value,
                verdict.message,
                extra={"revision": tip, "verdict": verdict.code.value},
            )
        if verdict.accepted:
            self.applied = tip

    async def sync_pass(self, in_worker: InWorker = in_place) -> RevisionVerdict:
        """One look at the repo: fetch and judge the tip with ``in_worker`` (they touch only
        the mirror and the network), then record the verdict and take the fleet in here."""
        try:
            tip = await in_worker(self._fetch)
        except GitRemoteUnavailable:
            if self.service.metrics is not None:
                self.service.metrics.git_fetch_errors.inc()
            raise
        verdict: RevisionVerdict = await in_worker(self._judge, tip, self.service.fleet)
        self._record(tip, verdict)
        if verdict.accepted and verdict.fleet is not None:
            self.service.use_fleet(verdict.fleet)
        return verdict

    def sync(self) -> RevisionVerdict:
        """One look at the repo on the calling thread (tests and one-shot use)."""
        return asyncio.run(self.sync_pass())

    def request_sync(self) -> None:
        """Thread-safe: ask for a look at the repo; many requests make one pass."""
        if self._loop is not None and self._dirty is not None:
            self._loop.call_soon_threadsafe(self._dirty.set)

    async def _sync_loop(self) -> None:
        assert self._dirty is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync_pass(asyncio.to_thread)
            except ReconcilerError as exc:
                logger.error("fleet repo sync failed: %s", exc)
            except Exception:  # a bug must not silently end the following of the repo
                logger.exception("fleet repo sync failed unexpectedly; will try again")

    # -- writing back: rollout notes and promotions -----------------------------------------

    def request_writeback(self, *_: object) -> None:
        """Ask for a notes pass and a promotion pass; many requests make one of each."""
        if self._loop is not None and self._writeback_due is not None:
            self._loop.call_soon_threadsafe(self._writeback_due.set)

    async def _writeback_loop(self) -> None:
        assert self._writeback_due is not None
        while True:
            await self._writeback_due.wait()
            self._writeback_due.clear()
            try:
                await self.writeback.notes_pass(asyncio.to_thread)
                if self.writeback.config.promote:  # off too when it could not sign its commits
                    await self._promotion_pass()
            except Exception:  # a bug must not end the writing back for good
                logger.exception("writing back to the fleet repo failed unexpectedly")

    async def _promotion_pass(self) -> None:
        checks, attempts = await self.writeback.promotion_pass(asyncio.to_thread)
        if any(attempt.written is not None for attempt in attempts):
            self.request_sync()  # take the promotion in now if it went to the branch
        when = next_promotion_check(checks)
        if self.scheduler is not None and when is not None:
            self.scheduler.add_job(
                self.request_writeback,
                "date",
                run_date=when,
                id="promotion-due",
                replace_existing=True,
                misfire_grace_time=None,
            )

    # -- timers ---------------------------------------------------------------------------

    def _schedule_look_again(self, group: str, plan: GroupPlan | None) -> None:
        if self.scheduler is None or plan is None or plan.requeue_at is None:
            return
        self.scheduler.add_job(
            self._look_again,
            "date",
            run_date=plan.requeue_at,
            args=[group],
            id=f"look-again:{group}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def _look_again(self, group: str) -> None:
        if group in self.service.fleet.groups:
            self.service.plan(group)

    async def _resync(self) -> None:
        self.request_sync()
        self.request_writeback()
        for group in list(self.service.fleet.groups):
            self.service.plan(group, replan=True)
        if self.service.metrics is not None:  # also true of a fleet with no groups at all
            self.service.metrics.last_reconcile.set_to_current_time()

    # -- HTTP -----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = create_app(self.service, self.config.operator_token_sha256)

        if self.config.webhook_secret is not None:
            self._add_webhook(app, self.config.webhook_secret)

        @app.get("/readyz")
        async def readyz() -> JSONResponse:
            last = self.store.last_verdict()
            body = {
                "status": "ready",
                "revision": self.service.fleet.revision,
                "lastVerdict": None
                if last is None
                else {
                    "revision": last[0],
                    "accepted": last[1],
                    "code": last[2],
                    "message": last[3],
                },
            }
            return JSONResponse(body)

        return app

    def _add_webhook(self, app: FastAPI, secret: str) -> None:
        @app.post("/v1/webhook", status_code=202, responses={401: {}, 413: {}})
        async def webhook(request: Request) -> JSONResponse:
            """A forge says the repo changed: look again (the payload is not trusted)."""
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_WEBHOOK_BYTES:
                    raise HTTPException(413, f"a webhook may be at most {MAX_WEBHOOK_BYTES} bytes")
            check = check_webhook(request.headers, body, secret)
            if self.service.metrics is not None:
                self.service.metrics.webhook_requests.labels(
                    "accepted" if check.ok else "bad_signature"
                ).inc()
            if not check.ok:
                logger.warning(
                    "webhook refused: %s", check.reason, extra={"provider": check.provider}
                )
                raise HTTPException(401, check.reason)
            self.request_sync()
            return JSONResponse({"accepted": True, "provider": check.provider}, status_code=202)

    # -- running --------------------------------------------------------------------------

    async def run(self, server: uvicorn.Server | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or ``server.should_exit``); then shut down cleanly."""
        self._loop = asyncio.get_running_loop()
        self._dirty = asyncio.Event()
        self._writeback_due = asyncio.Event()
        self._writeback_due.set()  # catch up with anything decided before a restart
        self.scheduler = AsyncIOScheduler(event_loop=self._loop)
        self.service.plan_listeners.append(self._schedule_look_again)
        self.service.plan_listeners.append(self.request_writeback)
        self.scheduler.add_job(
            self._poll,
            "interval",
            seconds=self.config.poll_interval,
            jitter=self.config.poll_interval / 10,
            id="poll",
        )
        self.scheduler.add_job(
            self._resync, "interval", seconds=self.config.resync_interval, id="resync"
        )
        self.scheduler.start()
        observer = self._watch()
        sync = asyncio.create_task(self._sync_loop())
        writeback = asyncio.create_task(self._writeback_loop())
        for group in list(self.service.fleet.groups):
            self.service.plan(group)  # schedules each group's first look-again
        self.server = server or make_server(self.app, self.config.listen)
        _keep_signals_for_shutdown()
        try:
            await self.server.serve()
        finally:
            sync.cancel()
            writeback.cancel()
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            self.scheduler.shutdown(wait=False)
            self.reports.close()
            self.store.close()
            logger.info("stopped", extra={"revision": self.applied})

    async def _poll(self) -> None:
        self.request_sync()

    def _watch(self) -> BaseObserver | None:
        local = Path(self.config.repo.removeprefix("file://"))
        if not self.config.watch or not local.is_dir():
            return None
        refs = local / "refs" if (local / "refs").is_dir() else local / ".git" / "refs"
        observer = Observer()
        handler = _RefsChanged(self.request_sync)
        observer.schedule(handler, str(refs), recursive=True)
        observer.schedule(handler, str(refs.parent), recursive=False)  # packed-refs
        observer.start()
        return observer


class DaemonThread(BackgroundServer):
    """A daemon serving on its own event loop in a background thread (demo, tests, benchmarks).

    Use as a context manager; ``url`` is where it listens (port 0 picks a free port).
    """

    def __init__(self, config: ServeConfig, clock: Clock | None = None) -> None:
        self.daemon = Daemon(config, clock)
        super().__init__(self.daemon.app, config.listen, serve=self.daemon.run)
