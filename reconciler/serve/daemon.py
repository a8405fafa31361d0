"""`reconciler serve`: the event-driven daemon.

:func:`open_daemon` opens everything in order and judges the repo's tip once; the
:class:`Daemon` it returns only holds what was opened, and :meth:`Daemon.run` starts the loops
and the server inside one exit stack, so whatever started is stopped, whatever fails.

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
import gc
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from reconciler.clock import Clock, SystemClock
from reconciler.errors import GitRemoteUnavailable, ReconcilerError
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.fleet import Fleet
from reconciler.git.auth import GitCredentials, credentials_from_url
from reconciler.git.signatures import SignatureTrust
from reconciler.git.source import FleetMirror, RevisionVerdict, set_network_timeouts
from reconciler.git.writer import CommitSigner, GitIdentity
from reconciler.rollout.changes import FleetChanges, fleet_changes
from reconciler.serve.api.app import Webhook, create_app
from reconciler.serve.api.fleetlock import FleetLockSettings
from reconciler.serve.api.identity import AgentAuth
from reconciler.serve.healthgates import GateRunner
from reconciler.serve.metrics import OperationalMetrics, host_series
from reconciler.serve.ownership import WRITEBACK
from reconciler.serve.prometheus import PrometheusClient, PrometheusConnection
from reconciler.serve.replicas import Replicas
from reconciler.serve.revisions import RevisionFollower
from reconciler.serve.server import BackgroundServer, Listen, make_server
from reconciler.serve.service import (
    DEFAULT_LOCK_STALE_AFTER,
    FleetService,
    restored_observations,
)
from reconciler.serve.timers import Timers
from reconciler.serve.writeback import (
    InWorker,
    WriteBack,
    WriteBackConfig,
    in_place,
    next_promotion_check,
)
from reconciler.state.backends import StateBackend, open_state
from reconciler.state.database import is_postgres_url
from reconciler.state.leases import PostgresLeases
from reconciler.state.notifications import PlanListener

logger = logging.getLogger(__name__)

PROMOTION_TIMER = "promotion-due"
#: Where what each fleet file parsed to is kept between runs (see fleetrepo/blobcache.py).
PARSED_FLEET_DIRECTORY = "parsed-fleet"
#: How often due health checks are looked for; each check runs at its own `interval` (>= 5 s).
GATE_TICK_SECONDS = 5.0


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
    #: sha256 of the token a Prometheus scraper must send; None leaves /metrics open.
    metrics_token_sha256: str | None = None
    #: How agents prove who they are (a client certificate needs ``listen.client_ca``).
    agent_auth: AgentAuth = AgentAuth.TOKEN
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
    #: Serve the FleetLock protocol (None: off); with a secret hash, only under its path.
    fleetlock: FleetLockSettings | None = None
    #: A FleetLock reboot lock held longer than this is reported stale.
    fleetlock_stale_after: timedelta = DEFAULT_LOCK_STALE_AFTER
    #: Export the per-host series on /metrics (docs/metrics.md); off: group series only.
    metrics_per_host: bool = True
    #: Where health checks are evaluated (docs/health-gates.md); None: checks are never
    #: evaluated, so a gated wave or promotion waits (and `status` says why).
    prometheus: PrometheusConnection | None = None
    #: Where the rollout state lives: None, the SQLite file in ``state_dir``; a
    #: ``postgresql://`` URL, a database that replicas share (docs/ha.md).
    store: str | None = None
    #: Replicas: the URL other replicas reach this one at (default: from ``listen``).
    advertise_url: str | None = None
    #: Replicas: how long a group's lease lasts without renewal (renewed every third of it).
    lease_ttl: timedelta = timedelta(seconds=15)


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


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while start-up builds the fleet, its plans and the
    restored observations (millions of objects at 100k hosts: each full collection on the
    way walked all of them, a third of start-up), then those objects frozen out of later
    collections: they live as long as the revision, and walking them again and again would
    pause the loop that answers agents. Nothing is lost: they are freed by reference
    counting, and a frozen object in a cycle only stays until the process ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()


def open_daemon(config: ServeConfig, clock: Clock | None = None) -> Daemon:
    """Open what the daemon needs, in order, and decide the fleet in force.

    The state directory and database, libgit2's timeouts, the mirror (cloned the first time);
    then one look at the repo, the same fetch-judge-record pass the sync loop runs. A tip that
    cannot be fetched or is refused leaves the last applied revision in force; with none,
    the daemon cannot start (:class:`NoValidRevision`, or the fetch's own error). Whatever was
    opened is closed again if a later step fails.
    """
    clock = clock or SystemClock()
    # The state holds report history, the mirror (and its remote URL) and the event log:
    # for the reconciler's user only, whatever the caller's umask.
    config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config.state_dir.chmod(0o700)
    with ExitStack() as opened, collector_paused():
        backend = open_state(config.store or config.state_dir / "state.sqlite")
        opened.callback(backend.close)
        store, reports, gate_log = backend.store, backend.reports, backend.gate_samples
        replicas = None
        if config.store is not None and is_postgres_url(config.store):
            leases = PostgresLeases(config.store, config.lease_ttl)
            opened.callback(leases.close)
            replicas = Replicas(leases, config.advertise_url or config.listen.url)
        set_network_timeouts(config.git_timeout)
        url, credentials = credentials_from_url(config.repo, config.credentials)
        mirror = FleetMirror(url, config.state_dir / "fleet.git", config.branch, credentials)
        follower = RevisionFollower(
            mirror,
            store,
            clock,
            config.signatures,
            config.allow_history_rewrite,
            config.subdirectory,
            ParsedFileCache(config.state_dir / PARSED_FLEET_DIRECTORY),
        )
        fleet = follower.applied_fleet()
        try:
            tip, verdict = follower.look(fleet)
            follower.record(tip, verdict)
        except Exception as exc:  # the world or a bug: keep the last good revision if any
            if fleet is None:
                raise
            logger.warning(
                "cannot consider the fleet repo's tip; keeping %s: %s", follower.applied, exc
            )
        else:
            if verdict.accepted and verdict.fleet is not None:
                fleet = verdict.fleet
        if fleet is None:
            raise NoValidRevision(
                "no revision of the fleet repo has ever been valid; the tip "
                "was refused (see the log); fix it and start again"
            )
        registry = CollectorRegistry()
        service = FleetService(
            fleet,
            store,
            reports,
            clock,
            OperationalMetrics(registry),
            lock_stale_after=config.fleetlock_stale_after,
            gate_log=gate_log,
            ownership=replicas,
        )
        writeback = WriteBack(
            mirror,
            service,
            WriteBackConfig(
                config.identity, config.signer, config.push_notes, promotion_allowed(config)
            ),
            config.subdirectory,
        )
        opened.pop_all()
    return Daemon(config, clock, follower, service, backend, writeback, registry, replicas)


class Daemon:
    """The opened parts of `reconciler serve` and the loops that drive them."""

    def __init__(
        self,
        config: ServeConfig,
        clock: Clock,
        follower: RevisionFollower,
        service: FleetService,
        backend: StateBackend,
        writeback: WriteBack,
        registry: CollectorRegistry,
        replicas: Replicas | None = None,
    ) -> None:
        self.config, self.clock = config, clock
        self.follower, self.service, self.writeback = follower, service, writeback
        self.backend, self.replicas = backend, replicas
        self.mirror, self.store, self.reports = follower.mirror, service.store, backend.reports
        webhook = (
            Webhook(config.webhook_secret, self.request_sync, config.branch)
            if config.webhook_secret is not None
            else None
        )
        self.app: FastAPI = create_app(
            service,
            registry,
            config.operator_token_sha256,
            webhook,
            config.metrics_token_sha256,
            config.agent_auth,
            config.fleetlock,
            fetch_health=lambda: follower.fetch_health,
            replica=replicas.holder if replicas is not None else "",
        )
        per_host = host_series(registry)
        if per_host is not None:
            per_host.enabled = config.metrics_per_host
        self.timers: Timers | None = None  # while running
        self._dirty: asyncio.Event | None = None
        self._writeback_due: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def applied(self) -> str | None:
        """The fleet-repo revision in force."""
        return self.follower.applied

    # -- following the repo -----------------------------------------------------------------

    async def sync_pass(self, in_worker: InWorker = in_place) -> RevisionVerdict:
        """One look at the repo: fetch and judge the tip, and compare its fleet with the one
        in force, with ``in_worker`` (they touch only the mirror, the network and immutable
        fleets); then record the verdict and take the fleet in here. Only the groups the
        revision touches are planned: the change's canaries at once, the others one at a
        time, each after the reports waiting on this loop."""
        current = self.service.fleet
        try:
            looked: tuple[str, RevisionVerdict, FleetChanges | None] = await in_worker(
                _look_and_compare, self.follower, current
            )
        except GitRemoteUnavailable:
            self.service.metrics.git_fetch_errors.inc()
            raise
        tip, verdict, changes = looked
        self.follower.record(tip, verdict)
        if verdict.accepted and verdict.fleet is not None:
            if self.service.fleet is not current:  # compared against another fleet
                changes = None
            later = self.service.use_fleet(verdict.fleet, changes, first_only=True)
            for group in later:
                await asyncio.sleep(0)  # agents' reports first: this is the event loop
                if self.service.current_plan(group) is None:  # no report planned it since
                    self.service.look_again(group)
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
            if self.replicas is not None and not self.replicas.holds(WRITEBACK):
                continue  # another replica writes back; taking the lease asks again
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
        if self.timers is not None and when is not None:
            self.timers.arm(PROMOTION_TIMER, when, self._writeback_now)

    async def _writeback_now(self) -> None:
        self.request_writeback()

    # -- timers ---------------------------------------------------------------------------

    def _arm_look_again(self, group: str, when: datetime | None) -> None:
        """A pass of ``group`` asked to be looked at again at ``when`` (None: only when
        something changes)."""
        if self.timers is None:
            return
        key = f"look-again:{group}"
        if when is None:
            self.timers.disarm(key)
            return

        async def look_again() -> None:
            self.service.look_again(group)

        self.timers.arm(key, when, look_again)

    async def _lease_loop(self) -> None:
        """Replicas: every third of the lease ttl, renew and balance the leases; adopt the
        groups gained, relinquish those lost, and read the other groups' states again."""
        assert self.replicas is not None
        replicas, service = self.replicas, self.service
        while True:
            try:
                result = await asyncio.to_thread(replicas.round, list(service.fleet.groups))
                for group in result.lost:
                    if group != WRITEBACK:
                        service.relinquish(group)
                gained = [group for group in result.gained if group != WRITEBACK]
                if gained:
                    observed = await asyncio.to_thread(
                        restored_observations, service.reports, service.store
                    )
                    for group in gained:  # no await between: no report is planned before
                        replicas.adopted(group)
                        service.adopt(group, observed)
                        self._arm_look_again(group, service.next_look(group))
                if WRITEBACK in result.gained:
                    replicas.adopted(WRITEBACK)
                    self.request_writeback()
                stored = await asyncio.to_thread(service.store.load_all)
                held = {g for g in service.fleet.groups if replicas.holds(g)}
                service.engine.refresh_others(stored, held)
                if result.gained or result.lost:
                    logger.info(
                        "leases: gained %s, lost %s",
                        ", ".join(result.gained) or "none",
                        ", ".join(result.lost) or "none",
                        extra={"replica": replicas.holder},
                    )
            except Exception as exc:  # the database is down: the leases lapse, the fence holds
                logger.error("lease round failed: %s", exc, extra={"replica": replicas.holder})
            await asyncio.sleep(replicas.leases.renew_interval.total_seconds())

    def _plan_heard(self, group: str) -> None:
        """Replicas: another replica committed decisions about ``group`` (NOTIFY)."""
        if group not in self.service.fleet.groups or self.service.ownership.holds(group):
            return

        async def read_and_tell() -> None:
            try:
                state = await asyncio.to_thread(self.service.store.load, group)
            except ReconcilerError as exc:  # the next lease round reads it anyway
                logger.warning("cannot read group %s after its change: %s", group, exc)
                return
            self.service.heard_plan_change(group, state)

        asyncio.get_running_loop().create_task(read_and_tell())

    async def _resync(self) -> None:
        self.request_sync()
        self.request_writeback()
        self.service.reconcile_all()

    async def _poll(self) -> None:
        self.request_sync()

    # -- running --------------------------------------------------------------------------

    async def run(self, server: uvicorn.Server | None = None) -> None:
        """Serve until SIGTERM/SIGINT (or ``server.should_exit``); then shut down cleanly."""
        async with AsyncExitStack() as running:
            running.callback(self._stopped)
            running.callback(self.backend.close)
            self._loop = asyncio.get_running_loop()
            self._dirty = asyncio.Event()
            self._writeback_due = asyncio.Event()
            self._writeback_due.set()  # catch up with anything decided before a restart

            self.timers = timers = Timers(self.clock)
            running.callback(timers.cancel_all)
            self._listen(running)
            # The plans made at start-up asked for their first look-again before anyone
            # listened: arm those timers from the current plans (a read, not a pass).
            for group in self.service.fleet.groups:
                self._arm_look_again(group, self.service.next_look(group))

            scheduler = AsyncIOScheduler(event_loop=self._loop)
            scheduler.add_job(
                self._poll,
                "interval",
                seconds=self.config.poll_interval,
                jitter=self.config.poll_interval / 10,
                id="poll",
            )
            scheduler.add_job(
                self._resync, "interval", seconds=self.config.resync_interval, id="resync"
            )
            if self.config.prometheus is not None:
                runner = GateRunner.for_prometheus(
                    self.service,
                    PrometheusClient(self.config.prometheus),
                    self.clock,
                    on_stream_sample=self.request_writeback,
                )
                scheduler.add_job(
                    runner.evaluate_due,
                    "interval",
                    seconds=GATE_TICK_SECONDS,
                    id="health-checks",
                    max_instances=1,  # a slow Prometheus delays the next round, never doubles it
                    coalesce=True,
                )
            scheduler.start()
            running.callback(scheduler.shutdown, wait=False)

            if self.replicas is not None:
                running.callback(self.replicas.leases.close)
                running.callback(self.replicas.give_up)  # first: hand the groups over now
                lease_loop = asyncio.get_running_loop().create_task(self._lease_loop())
                running.callback(lease_loop.cancel)
                assert self.config.store is not None
                event_loop = asyncio.get_running_loop()
                listener = PlanListener(
                    self.config.store,
                    lambda group: event_loop.call_soon_threadsafe(self._plan_heard, group),
                )
                listener.start()
                running.callback(listener.stop)
            observer = self._watch()
            if observer is not None:
                running.callback(observer.join, timeout=5)
                running.callback(observer.stop)
            for loop in (self._sync_loop(), self._writeback_loop()):
                running.callback(asyncio.get_running_loop().create_task(loop).cancel)

            self.server = server or make_server(self.app, self.config.listen)
            _keep_signals_for_shutdown()
            await self.server.serve()

    def _listen(self, running: AsyncExitStack) -> None:
        """Subscribe to the service's passes for as long as the daemon runs."""
        requeue, plans = self.service.requeue_listeners, self.service.plan_listeners
        requeue.append(self._arm_look_again)
        running.callback(requeue.remove, self._arm_look_again)
        plans.append(self.request_writeback)
        running.callback(plans.remove, self.request_writeback)

    def _stopped(self) -> None:
        self.timers = None
        logger.info("stopped", extra={"revision": self.applied})

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


def _look_and_compare(
    follower: RevisionFollower, current: Fleet
) -> tuple[str, RevisionVerdict, FleetChanges | None]:
    """Fetch and judge the tip, and what its fleet changes against ``current`` (the costly
    part of taking a revision in, done off the event loop)."""
    applied = follower.applied
    tip, verdict = follower.look(current)
    if not verdict.accepted or verdict.fleet is None:
        return tip, verdict, None
    changed_files = None  # unknown unless ``current`` is the applied revision's fleet
    if applied is not None and current.revision == applied:
        with follower.mirror.lock:
            changed_files = follower.mirror.changed_files(applied, tip, follower.subdirectory)
    return tip, verdict, fleet_changes(current, verdict.fleet, changed_files)


class DaemonThread(BackgroundServer):
    """A daemon serving on its own event loop in a background thread (demo, tests, benchmarks).

    Use as a context manager; ``url`` is where it listens (port 0 picks a free port).
    """

    def __init__(self, config: ServeConfig, clock: Clock | None = None) -> None:
        self.daemon = open_daemon(config, clock)
        super().__init__(self.daemon.app, config.listen, serve=self.daemon.run)
