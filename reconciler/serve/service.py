"""The fleet service: host reports in, assignments out, through the rollout engine.

It keeps the latest observation of every host in memory (loaded from the report store at
start), re-plans a host's group only when something that matters changed (a new deployment,
boot, greenboot verdict or apply result) or the group's plan asked to be looked at again, and
answers from the cached plan otherwise: a heartbeat costs a dictionary lookup, not a pass.

The API's reports (:meth:`FleetService.report`) ask for those passes through a work queue
(:mod:`reconciler.serve.workqueue`): a report that changed something waits for a pass of its
group that starts after its observation was recorded, and every report that arrives before
that pass starts shares it, so a burst of reports into one group costs a pass or a few. The
answers are cached per group plan as the JSON bytes sent, one per kind of answer (hosts with
equal plans share it, their names spliced in), kept while a new plan of the group would say
the same. :meth:`FleetService.ingest` plans at once instead, for callers without an event
loop (tools, tests).

:meth:`FleetService.reconcile` is the one path that plans a group and persists its decisions,
whatever asked for it (a report, a timer, a resync, a new fleet revision): it is timed,
logged and counted there, and a failure stays with its group, which is retried with backoff.
Everything else only reads the current plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.clock import Clock
from reconciler.errors import NotHeld, Unavailable
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Stream
from reconciler.promotion.check import PromotionCheck, check_promotion
from reconciler.rollout.changes import FleetChanges, fleet_changes
from reconciler.rollout.engine import Engine
from reconciler.rollout.explanation import HostPlan
from reconciler.rollout.gates import GateSample
from reconciler.rollout.observed import (
    ApplyError,
    Greenboot,
    HostObservation,
    LockRequests,
    RebootDeferral,
)
from reconciler.rollout.planner import Action, GroupPlan
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import GroupState
from reconciler.serve.answers import (
    BUSY_REPORT_SECONDS,
    HOST_SLOT,
    IDLE_REPORT_SECONDS,
    Answer,
    SharedAnswer,
    assignment_id,
    unmanaged_answer,
    unmanaged_assignment,
)
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.ownership import WRITEBACK, Ownership, SingleNode
from reconciler.serve.schemas import AgentReport, Assignment, ReasonOut, TargetOut
from reconciler.serve.workqueue import DEFAULT_DELAY_SECONDS, PassQueue
from reconciler.state.gatesamples import KEPT_FOR, SqliteGateSamples, group_scope, stream_scope
from reconciler.state.reports import ReportStore
from reconciler.state.store import Store

logger = logging.getLogger(__name__)

#: A FleetLock reboot lock held longer than this is reported stale (metric and alert).
DEFAULT_LOCK_STALE_AFTER = timedelta(hours=1)

#: A group whose pass failed is tried again after this long, doubling up to the longest.
FIRST_RETRY = timedelta(seconds=1)
LONGEST_RETRY = timedelta(minutes=5)
#: Evaluations kept in memory per scope: a day of one check a minute, or several checks.
SAMPLES_KEPT_PER_SCOPE = 5_000
#: Replicas: how old an operator's view of groups planned elsewhere may be.
VIEW_MAX_AGE = timedelta(seconds=2)

#: Called after every pass of a group with when it wants to be looked at again (None: only
#: when something changes), be it the plan's look-again or a failed pass's retry.
RequeueListener = Callable[[str, datetime | None], None]
#: Called when a group's plan changes what hosts are told or its status (None: the fleet
#: revision changed and the plan is about to be replaced).
PlanListener = Callable[[str, "GroupPlan | None"], None]


@dataclass(frozen=True)
class ReconcileFailure:
    """A group's last pass failed: with what, how many times in a row, when to retry."""

    error: Exception
    attempts: int
    retry_at: datetime


@dataclass(frozen=True)
class LockAnswer:
    """What a FleetLock client is told: whether its host holds the reboot lock, and why."""

    granted: bool
    reason: Reason


@dataclass(frozen=True)
class HeldLock:
    """A FleetLock reboot lock as operators see it."""

    group: str
    host: str
    granted_at: datetime
    stale: bool  # held longer than the service's ``lock_stale_after``


def observation_from_report(host: str, at: datetime, report: AgentReport) -> HostObservation:
    """What the planner needs from a report; base commits, since that is what Git declares."""
    apply_error = None
    last = report.last_apply
    if last is not None and not last.ok and last.action == "stage":
        apply_error = ApplyError(last.commit, last.error or "stage failed")
    deferred = report.reboot_deferred
    return HostObservation(
        host=host,
        received_at=at,
        booted_commit=report.booted.base_checksum if report.booted else None,
        boot_id=report.boot_id,
        greenboot=Greenboot(report.greenboot),
        staged_commit=report.staged.base_checksum if report.staged else None,
        booted_version=report.booted.version if report.booted else None,
        apply_error=apply_error,
        reboot_deferred=None
        if deferred is None
        else RebootDeferral(
            deferred.since, deferred.message, deferred.exit_code, deferred.timed_out
        ),
    )


def restored_observations(reports: ReportStore, store: Store) -> dict[str, HostObservation]:
    """What each host last reported, as known after a restart: its stored report, unless a
    decision about it was based on a newer one (reports are written in batches, decisions at
    once, so a crash can lose the report a decision was taken on; planning from the older
    one would undo the decision).

    Reports were validated when they arrived, and the observation derived then is stored
    with each: it is taken back as it is. Only a report stored without one (by an older
    version) is parsed again."""
    observed, unparsed = reports.latest_observations()
    for host, (at, body) in unparsed.items():
        observed[host] = observation_from_report(host, at, AgentReport.model_validate_json(body))
    for host, basis in store.observation_basis().items():
        known = observed.get(host)
        # At the same instant the basis wins: a decision was taken on it, and the stored
        # report may be the one before it (a manual clock, or a coarse one).
        if known is None or basis.received_at >= known.received_at:
            observed[host] = basis
    return observed


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FleetService:
    """Joins the fleet in force, the engine and the report store."""

    def __init__(
        self,
        fleet: Fleet,
        store: Store,
        reports: ReportStore,
        clock: Clock,
        metrics: OperationalMetrics,
        lock_stale_after: timedelta = DEFAULT_LOCK_STALE_AFTER,
        coalesce_delay: float = DEFAULT_DELAY_SECONDS,
        gate_log: SqliteGateSamples | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        """``coalesce_delay``: seconds a group asked for by a report waits before its pass,
        so the reports of a burst share it (:class:`PassQueue`); ``gate_log``: where
        health-check evaluations are kept (None: in memory only, for tests and the demo);
        ``ownership``: which groups this process plans (None: all of them, alone)."""
        self.clock, self.reports, self.store, self.metrics = clock, reports, store, metrics
        self.lock_stale_after = lock_stale_after
        self.queue: PassQueue[GroupPlan | None] = PassQueue(self._queued_pass, coalesce_delay)
        self.engine = Engine(store, clock)
        self.ownership: Ownership = ownership or SingleNode()
        self.observed = restored_observations(reports, store)
        self.gate_log = gate_log
        # Health-check evaluations by scope (a group, or a stream's source build), oldest first.
        self.gate_samples: dict[str, list[GateSample]] = (
            gate_log.since(clock.now() - KEPT_FOR) if gate_log is not None else {}
        )
        self.plans: dict[str, GroupPlan] = {}
        # Replicas: previews of the groups other replicas plan, for operators' views only.
        self._views: dict[str, GroupPlan] = {}
        self._view_observed: dict[str, HostObservation] = {}
        self._views_at = float("-inf")
        self.failures: dict[str, ReconcileFailure] = {}
        # group -> (the plan answered from, what hosts with each host plan are told).
        self._answers: dict[str, tuple[GroupPlan, dict[HostPlan, SharedAnswer]]] = {}
        # Hosts whose latest report changed something no pass has planned yet.
        self._unplanned: set[str] = set()
        self.plan_listeners: list[PlanListener] = []
        self.requeue_listeners: list[RequeueListener] = []
        self.use_fleet(fleet)

    def use_fleet(
        self, fleet: Fleet, changes: FleetChanges | None = None, *, first_only: bool = False
    ) -> tuple[str, ...]:
        """Make a new validated fleet revision the desired state and plan the groups it
        touches (:func:`reconciler.rollout.changes.fleet_changes`; ``changes``, if given,
        computed against the fleet in force, e.g. in a worker thread). Untouched groups keep
        their plans, answers and look-again timers: nothing they plan from changed.

        The touched groups that wait on no other touched group (the change's canaries) are
        planned first, so their long-polls wake at once. With ``first_only`` the rest are
        returned, in dependency order, for the caller to plan between other work (the
        daemon does, yielding to agents' reports); else they are planned here too.
        """
        before: Fleet | None = getattr(self, "fleet", None)
        if before is None:  # the first revision: every group
            self._take(fleet, None)
            self.reconcile_all()
            return ()
        if changes is None:
            changes = fleet_changes(before, fleet)
        self._take(fleet, changes)
        held = self.ownership.holds  # replicas: only the groups this one plans
        first = tuple(group for group in changes.first(fleet) if held(group))
        rest = tuple(group for group in changes.touched if group not in first and held(group))
        for group in first if first_only else (*first, *rest):
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)
        self.metrics.last_reconcile.set_to_current_time()
        return rest if first_only else ()

    def _take(self, fleet: Fleet, changes: FleetChanges | None) -> None:
        """Swap ``fleet`` in and forget what ``changes`` made stale (None: everything)."""
        before: Fleet | None = getattr(self, "fleet", None)
        self.fleet = fleet
        if before is None or changes is None:
            # Hosts removed from the inventory are forgotten (their reports stay stored).
            self.observed = {h: o for h, o in self.observed.items() if h in fleet.hosts}
            self._hosts_by_token = {h.token_sha256: h.name for h in fleet.hosts.values()}
            self._hosts_by_lock_id = {
                h.fleet_lock_id: h.name for h in fleet.hosts.values() if h.fleet_lock_id is not None
            }
            self.engine.use_fleet(fleet)
            self.plans.clear()
            self.failures.clear()
            self._answers.clear()
            for group in fleet.groups:
                self._notify(group, None)
            return
        for host in changes.removed_hosts:
            self.observed.pop(host, None)
        # Lookups of changed hosts only: the old entries out first, so that two hosts may
        # swap tokens (or FleetLock ids) in one revision.
        for name in changes.changed_hosts:
            old = before.hosts.get(name)
            if old is None:
                continue
            if self._hosts_by_token.get(old.token_sha256) == name:
                del self._hosts_by_token[old.token_sha256]
            lock_id = old.fleet_lock_id
            if lock_id is not None and self._hosts_by_lock_id.get(lock_id) == name:
                del self._hosts_by_lock_id[lock_id]
        for name in changes.changed_hosts:
            new = fleet.hosts.get(name)
            if new is not None:
                self._hosts_by_token[new.token_sha256] = name
                if new.fleet_lock_id is not None:
                    self._hosts_by_lock_id[new.fleet_lock_id] = name
        self.engine.use_fleet(fleet, changes.specs)
        stale = (*changes.touched, *sorted(changes.removed_groups))
        for group in stale:
            self.plans.pop(group, None)
            self.failures.pop(group, None)
            self._answers.pop(group, None)
        for group in stale:  # long-polls of these groups wake to the new revision
            self._notify(group, None)

    def host_for_token(self, token: str) -> str | None:
        """The host whose token this is. The lookup is by the token's sha256, so timing can
        only reveal facts about a hash; the final comparison is constant-time anyway."""
        digest = token_hash(token)
        host = self._hosts_by_token.get(digest)
        if host is None or not hmac.compare_digest(digest, self.fleet.hosts[host].token_sha256):
            return None
        return host

    def host_for_lock_id(self, lock_id: str) -> str | None:
        """The host whose FleetLock client sends this id (`fleetLockId` in the inventory)."""
        return self._hosts_by_lock_id.get(lock_id)

    def pre_reboot(self, host: str) -> LockAnswer:
        """A FleetLock client asks to reboot ``host``: a pass of its group decides, by the
        same rules and budget as the agent's reboots. Idempotent: a holder is told yes."""
        group = self.fleet.group_of(host)
        if group is None:
            return LockAnswer(False, Reason(ReasonCode.NOT_A_MEMBER, f"{host} is in no group"))
        if host in self.engine.state(group).locks and group not in self.failures:
            return LockAnswer(True, Reason(ReasonCode.LOCK_GRANTED, f"{host} holds the lock"))
        plan = self.reconcile(group, LockRequests(acquire=frozenset({host})))
        granted = host in plan.state.locks
        reason = plan.locks.get(host) or Reason(ReasonCode.LOCK_REQUESTED, "not granted")
        return LockAnswer(granted, reason)

    def steady_state(self, host: str) -> LockAnswer:
        """A FleetLock client says ``host`` is back: its lock, if it holds one, is released.
        Idempotent: a host without a lock is told yes at once."""
        group = self.fleet.group_of(host)
        if group is not None and host in self.engine.state(group).locks:
            self.reconcile(group, LockRequests(release=frozenset({host})))
        return LockAnswer(True, Reason(ReasonCode.LOCK_RELEASED, f"{host} holds no lock"))

    def held_locks(self) -> list[HeldLock]:
        """Every FleetLock reboot lock held now, by group and host (a read)."""
        now = self.clock.now()
        return [
            HeldLock(group, host, lock.granted_at, now - lock.granted_at >= self.lock_stale_after)
            for group, state in sorted(self.engine.states().items())
            for host, lock in sorted(state.locks.items())
        ]

    def ingest(self, host: str, report: AgentReport, raw: str | None = None) -> Assignment:
        """Store a report (``raw``, its validated JSON text, when at hand), re-plan the host's
        group at once if it matters, and answer (the path without an event loop)."""
        material = self._observe(host, report, raw)
        return self.assignment(host, replan=material)

    async def report(self, host: str, report: AgentReport, raw: str | None = None) -> Answer:
        """Store a report and answer it, after a queued pass of the host's group if the
        report changed something that matters (the API's path: see :meth:`answer`)."""
        if self._observe(host, report, raw):
            self._unplanned.add(host)
        return await self.answer(host)

    def _observe(self, host: str, report: AgentReport, raw: str | None) -> bool:
        """Store a report and take in its observation; whether it changed what matters."""
        now = self.clock.now()
        observation = observation_from_report(host, now, report)
        # With the observation beside it, a restart takes it back without parsing the report.
        self.reports.save(host, now, raw or report.model_dump_json(by_alias=True), observation)
        previous = self.observed.get(host)
        self.observed[host] = observation
        return previous is None or not previous.says_the_same_as(observation)

    # -- the one writer ---------------------------------------------------------------------

    def reconcile(self, group: str, locks: LockRequests | None = None) -> GroupPlan:
        """Plan ``group`` now and persist its decisions: the only path that does. ``locks``
        is what FleetLock clients of the group ask of this pass, if anything.

        Timed, logged and counted here. A failure is remembered, counted and logged, a retry
        is requested with backoff (through :attr:`requeue_listeners`), and the error is raised
        to the caller, who decides whether it answers for it (the API: a 503) or goes on with
        the other groups (:meth:`reconcile_all`).
        """
        started = time.perf_counter()
        try:
            if not self.ownership.holds(group):
                raise NotHeld(f"group {group} is planned by another replica")
            samples = self.gate_samples.get(group_scope(group), ())
            fence = self.ownership.fence(group)
            plan = self.engine.reconcile_group(group, self.observed, locks, samples, fence)
        except Exception as exc:
            self._failed(group, exc)
            raise
        self.metrics.reconcile_seconds.labels(group).observe(time.perf_counter() - started)
        self.metrics.last_reconcile.set_to_current_time()
        self.failures.pop(group, None)
        if self._unplanned:
            self._unplanned.difference_update(plan.hosts)  # planned from what they reported
        previous, self.plans[group] = self.plans.get(group), plan
        self._carry_answers(group, previous, plan)
        for decision in plan.decisions:
            logger.info(
                "%s",
                decision.reason.message,
                extra={
                    "group": group,
                    "decision": decision.kind.value,
                    "host": decision.host,
                    "reason": decision.reason.code.value,
                    "revision": self.fleet.revision,
                    "commit": decision.commit,
                },
            )
        if previous is None or plan.hosts != previous.hosts or plan.status != previous.status:
            self._notify(group, plan)
        self._requeue(group, plan.requeue_at)
        return plan

    def reconcile_all(self) -> None:
        """Plan every group, dependencies first so a completion unblocks its dependents in the
        same round; a group that fails is left to its retry and the others are planned."""
        for group in self.engine.groups_in_order():
            if not self.ownership.holds(group):
                continue
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)
        self.metrics.last_reconcile.set_to_current_time()  # also for a fleet with no groups

    def _queued_pass(self, group: str) -> GroupPlan | None:
        """A pass the queue asked for; none for a group a new fleet revision took away."""
        if group in self.fleet.groups and self.ownership.holds(group):
            return self.reconcile(group)
        return None

    def look_again(self, group: str) -> None:
        """A timer says ``group`` asked to be looked at again now: plan it if it still exists
        (a failure is contained: reconcile() logged it and asked for a retry)."""
        if group in self.fleet.groups and self.ownership.holds(group):
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)

    # -- replicas: groups taken over and given up ---------------------------------------------

    def adopt(self, group: str, observed: Mapping[str, HostObservation]) -> None:
        """This replica took ``group``'s lease: plan it from what the database holds now (its
        state, and ``observed``: its hosts' latest reports, read by the caller), not from
        anything remembered from before.

        ``observed`` was read while the lease was already this replica's, so a host may have
        reported here since: a stored report never replaces a newer one (planning from the
        older one would tell a host that just rebooted to reboot again)."""
        self.engine.reload(group)
        for host in self.fleet.members.get(group, ()):
            seen, known = observed.get(host), self.observed.get(host)
            if seen is not None and (known is None or seen.received_at > known.received_at):
                self.observed[host] = seen
        self.plans.pop(group, None)
        self._answers.pop(group, None)
        self.failures.pop(group, None)
        if group in self.fleet.groups:
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)

    def exports(self, group: str | None) -> bool:
        """Replicas: this replica's /metrics carries the per-host series of the groups it
        plans, and of the hosts in no group if it writes back (one replica at a time)."""
        return self.ownership.holds(group if group is not None else WRITEBACK)

    def view_plan(self, group: str) -> GroupPlan | None:
        """The plan an operator sees: this replica's own for a group it plans, else the
        preview of one planned elsewhere (:meth:`refresh_views`). Never used to answer."""
        return self.plans.get(group) or self._views.get(group)

    def view_observation(self, host: str) -> HostObservation | None:
        return self.observed.get(host) or self._view_observed.get(host)

    async def refresh_views(self) -> None:
        """Replicas: read the groups other replicas plan (their states are refreshed by the
        lease loop; their hosts' reports are read here, in a worker thread) and preview
        them, at most every :data:`VIEW_MAX_AGE`; so any replica answers operators about
        every group. A single node has nothing to do."""
        others = [g for g in self.fleet.groups if not self.ownership.holds(g)]
        if not others or time.monotonic() - self._views_at < VIEW_MAX_AGE.total_seconds():
            return
        observed = await asyncio.to_thread(restored_observations, self.reports, self.store)
        self._view_observed = observed
        self._views = {
            g: self.engine.preview(g, observed) for g in others if g in self.engine.specs
        }
        self._views_at = time.monotonic()

    def heard_plan_change(self, group: str, state: GroupState) -> None:
        """Replicas: another replica changed ``group``'s plan (``state``, read since). A
        group of this replica's that depends on it may go on now; views show it afresh."""
        if self.ownership.holds(group):
            return
        held = {g for g in self.fleet.groups if self.ownership.holds(g)}
        self.engine.refresh_others({group: state}, held)
        self._views_at = float("-inf")
        for name, model in self.fleet.groups.items():
            if group in model.depends_on and name in held:
                self.look_again(name)

    def relinquish(self, group: str) -> None:
        """Another replica plans ``group`` now: forget its plan, and wake its long-polls so
        their agents ask again (and are forwarded to the new holder)."""
        self.plans.pop(group, None)
        self._answers.pop(group, None)
        self.failures.pop(group, None)
        self._requeue(group, None)
        self._notify(group, None)

    def _failed(self, group: str, exc: Exception) -> None:
        self.metrics.reconcile_errors.labels(group).inc()
        last = self.failures.get(group)
        attempts = last.attempts + 1 if last is not None else 1
        wait = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)
        failure = ReconcileFailure(exc, attempts, self.clock.now() + wait)
        self.failures[group] = failure
        if isinstance(exc, Unavailable):  # the world's fault: expected to pass
            logger.error(
                "planning group %s failed (attempt %d, next in %s): %s",
                group,
                attempts,
                wait,
                exc,
                extra={"group": group},
            )
        else:  # a bug: the traceback is what a developer needs
            logger.exception(
                "planning group %s failed (attempt %d, next in %s)",
                group,
                attempts,
                wait,
                extra={"group": group},
            )
        self._requeue(group, failure.retry_at)

    def _requeue(self, group: str, when: datetime | None) -> None:
        for listener in self.requeue_listeners:
            listener(group, when)

    # -- reads ------------------------------------------------------------------------------

    def current_plan(self, group: str) -> GroupPlan | None:
        """The group's latest plan (None until a pass of it succeeded); never plans."""
        return self.plans.get(group)

    def next_look(self, group: str) -> datetime | None:
        """When ``group`` should be planned again: its failed pass's retry, else its plan's
        look-again (None: only when something changes)."""
        failure = self.failures.get(group)
        if failure is not None:
            return failure.retry_at
        plan = self.plans.get(group)
        return plan.requeue_at if plan is not None else None

    def promotion_checks(self) -> list[PromotionCheck]:
        """Where each stream's automatic promotion stands now (a read: nothing is decided
        or written; the daemon's write-back makes the commit when one is due)."""
        states, now = self.engine.states(), self.clock.now()
        store = self.store
        return [
            check_promotion(
                self.fleet,
                stream,
                states,
                self.observed,
                store.promoted_commits(name),
                now,
                self.gate_samples.get(self._promotion_scope(stream), ()),
            )
            for name, stream in sorted(self.fleet.streams.items())
            if stream.promotion is not None
        ]

    def _promotion_scope(self, stream: Stream) -> str:
        assert stream.promotion is not None
        return stream_scope(stream.name, self.fleet.streams[stream.promotion.from_stream].commit)

    def record_gate_sample(self, scope: str, sample: GateSample) -> None:
        """Keep one health-check evaluation: durably first, then where passes read it (the
        caller asks for the pass that judges it)."""
        if self.gate_log is not None:
            self.gate_log.append(scope, sample)
        kept = self.gate_samples.setdefault(scope, [])
        kept.append(sample)
        if len(kept) > SAMPLES_KEPT_PER_SCOPE:
            del kept[: len(kept) - SAMPLES_KEPT_PER_SCOPE]

    def _notify(self, group: str, plan: GroupPlan | None) -> None:
        for listener in self.plan_listeners:
            listener(group, plan)

    def assignment(self, host: str, replan: bool = False) -> Assignment:
        """What ``host`` is told now, planning its group at once if ``replan`` or the plan is
        stale (the path without an event loop; built afresh, not cached)."""
        group = self.fleet.group_of(host)
        if group is None:
            return unmanaged_assignment(host)
        plan = self._plan_for_answer(group, replan or host in self._unplanned)
        return self._answer(host, group, plan, plan.hosts[host])

    async def answer(self, host: str) -> Answer:
        """What ``host`` is told now, from its group's current plan; after a queued pass of
        the group if the host's own last change is not planned yet, the plan's look-again is
        due, the group's last pass failed, or it has no plan. A pass that fails raises here.

        Cached per plan and kind of answer: a heartbeat costs a lookup and a join."""
        group = self.fleet.group_of(host)
        if group is None:
            return unmanaged_answer(host)
        plan = self.plans.get(group)
        if plan is None or host in self._unplanned or self._stale(group, plan):
            await self.queue.pass_of(group)
            # Answer from the newest plan: the queued pass or one after it (a timer's, a new
            # fleet revision's), all started after this host's report was taken in.
            group = self.fleet.group_of(host)
            if group is None:
                return unmanaged_answer(host)
            plan = self.plans.get(group) or self._plan_for_answer(group, False)
        cached = self._answers.get(group)
        if cached is None or cached[0] is not plan:
            cached = self._answers[group] = (plan, {})
        host_plan = plan.hosts[host]
        shared = cached[1].get(host_plan)
        if shared is None:
            assignment = self._answer(HOST_SLOT, group, plan, host_plan)
            shared = cached[1][host_plan] = SharedAnswer.of(assignment)
        return shared.to(host)

    def _carry_answers(self, group: str, previous: GroupPlan | None, plan: GroupPlan) -> None:
        """Keep the cached answers of ``group`` for its new plan when what they say besides
        the host's plan is the same (target and look-again), and they are not more than
        its hosts (reasons may name a host or a time); else let them go with the old plan."""
        cached = self._answers.pop(group, None)
        if (
            cached is not None
            and previous is not None
            and plan.requeue_at == previous.requeue_at
            and plan.spec.target == previous.spec.target
            and len(cached[1]) <= len(plan.hosts)
        ):
            self._answers[group] = (plan, cached[1])

    def _stale(self, group: str, plan: GroupPlan) -> bool:
        """Whether ``group``'s plan must not be answered from: its last pass failed, or the
        look-again it asked for is due."""
        if group in self.failures:
            return True
        return plan.requeue_at is not None and self.clock.now() >= plan.requeue_at

    def _plan_for_answer(self, group: str, replan: bool) -> GroupPlan:
        """The plan to answer a host of ``group`` from: the current one, unless the report
        changed something that matters, the plan's look-again is due, the group's last pass
        failed (the plan is stale), or there is none."""
        plan = self.plans.get(group)
        if plan is None or replan or self._stale(group, plan):
            return self.reconcile(group)
        return plan

    def _answer(self, host: str, group: str, plan: GroupPlan, host_plan: HostPlan) -> Assignment:
        target = plan.spec.target
        busy = host_plan.action is not Action.NONE
        after = BUSY_REPORT_SECONDS if busy else IDLE_REPORT_SECONDS
        wait = plan.requeue_after(self.clock.now())
        if wait is not None:
            after = max(5, min(after, int(wait / timedelta(seconds=1)) + 1))
        return Assignment(
            host=host,
            group=group,
            action=host_plan.action.value,
            state=host_plan.state.value,
            target=TargetOut(
                commit=target.commit, remote=target.remote, ref=target.ref, version=target.version
            ),
            reason=ReasonOut(code=host_plan.reason.code, message=host_plan.reason.message),
            report_after_seconds=after,
            assignment_id=assignment_id(
                host_plan.action.value, target.commit, host_plan.reason.code
            ),
        )
