"""The fleet service: host reports in, assignments out, through the rollout engine.

It keeps the latest observation of every host in memory (loaded from the report store at
start), re-plans a host's group only when something that matters changed (a new deployment,
boot, greenboot verdict or apply result) or the group's plan asked to be looked at again, and
answers from the cached plan otherwise: a heartbeat costs a dictionary lookup, not a pass.

:meth:`FleetService.reconcile` is the one path that plans a group and persists its decisions,
whatever asked for it (a report, a timer, a resync, a new fleet revision): it is timed,
logged and counted there, and a failure stays with its group, which is retried with backoff.
Everything else only reads the current plans.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.clock import Clock
from reconciler.errors import Unavailable
from reconciler.fleetrepo.fleet import Fleet
from reconciler.promotion.check import PromotionCheck, check_promotion
from reconciler.rollout.engine import Engine
from reconciler.rollout.observed import (
    ApplyError,
    Greenboot,
    HostObservation,
    LockRequests,
    RebootDeferral,
)
from reconciler.rollout.planner import Action, GroupPlan
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport, Assignment, ReasonOut, TargetOut
from reconciler.state.reports import ReportStore
from reconciler.state.store import Store

logger = logging.getLogger(__name__)

#: How soon an agent with work to do reports again, and the longest it stays silent.
BUSY_REPORT_SECONDS = 15
IDLE_REPORT_SECONDS = 60

#: A FleetLock reboot lock held longer than this is reported stale (metric and alert).
DEFAULT_LOCK_STALE_AFTER = timedelta(hours=1)

#: A group whose pass failed is tried again after this long, doubling up to the longest.
FIRST_RETRY = timedelta(seconds=1)
LONGEST_RETRY = timedelta(minutes=5)

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


def _restored_observations(reports: ReportStore, store: Store) -> dict[str, HostObservation]:
    """What each host last reported, as known after a restart: its stored report, unless a
    decision about it was based on a newer one (reports are written in batches, decisions at
    once, so a crash can lose the report a decision was taken on; planning from the older
    one would undo the decision)."""
    observed = {
        host: observation_from_report(host, at, AgentReport.model_validate_json(body))
        for host, (at, body) in reports.latest().items()
    }
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
    ) -> None:
        self.clock, self.reports, self.store, self.metrics = clock, reports, store, metrics
        self.lock_stale_after = lock_stale_after
        self.engine = Engine(store, clock)
        self.observed = _restored_observations(reports, store)
        self.plans: dict[str, GroupPlan] = {}
        self.failures: dict[str, ReconcileFailure] = {}
        self._answers: dict[str, tuple[GroupPlan, Assignment]] = {}
        self.plan_listeners: list[PlanListener] = []
        self.requeue_listeners: list[RequeueListener] = []
        self.use_fleet(fleet)

    def use_fleet(self, fleet: Fleet) -> None:
        """Make a new validated fleet revision the desired state and plan every group."""
        self._take(fleet)
        self.reconcile_all()

    def _take(self, fleet: Fleet) -> None:
        self.fleet = fleet
        # Hosts removed from the inventory are forgotten (their reports stay in the store).
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
        group if it matters, and answer."""
        now = self.clock.now()
        self.reports.save(host, now, raw or report.model_dump_json(by_alias=True))
        observation = observation_from_report(host, now, report)
        previous = self.observed.get(host)
        self.observed[host] = observation
        material = previous is None or dataclasses.replace(previous, received_at=now) != observation
        return self.assignment(host, replan=material)

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
            plan = self.engine.reconcile_group(group, self.observed, locks)
        except Exception as exc:
            self._failed(group, exc)
            raise
        self.metrics.reconcile_seconds.labels(group).observe(time.perf_counter() - started)
        self.metrics.last_reconcile.set_to_current_time()
        self.failures.pop(group, None)
        previous, self.plans[group] = self.plans.get(group), plan
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
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)
        self.metrics.last_reconcile.set_to_current_time()  # also for a fleet with no groups

    def look_again(self, group: str) -> None:
        """A timer says ``group`` asked to be looked at again now: plan it if it still exists
        (a failure is contained: reconcile() logged it and asked for a retry)."""
        if group in self.fleet.groups:
            with contextlib.suppress(Exception):  # logged, counted and retried by reconcile()
                self.reconcile(group)

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
                self.fleet, stream, states, self.observed, store.promoted_commits(name), now
            )
            for name, stream in sorted(self.fleet.streams.items())
            if stream.promotion is not None
        ]

    def _notify(self, group: str, plan: GroupPlan | None) -> None:
        for listener in self.plan_listeners:
            listener(group, plan)

    def assignment(self, host: str, replan: bool = False) -> Assignment:
        group = self.fleet.group_of(host)
        if group is None:
            return Assignment(
                host=host,
                group=None,
                action="none",
                state="unmanaged",
                target=None,
                reason=ReasonOut(
                    code=ReasonCode.NOT_A_MEMBER, message="in the inventory but in no group"
                ),
                report_after_seconds=IDLE_REPORT_SECONDS,
                assignment_id=_assignment_id("none", "", "not_a_member"),
            )
        plan = self._plan_for_answer(group, replan)
        cached = self._answers.get(host)
        if cached is not None and cached[0] is plan:
            return cached[1]  # the same plan gives the same answer
        answer = self._answer(host, group, plan)
        self._answers[host] = (plan, answer)
        return answer

    def _plan_for_answer(self, group: str, replan: bool) -> GroupPlan:
        """The plan to answer a host of ``group`` from: the current one, unless the report
        changed something that matters, the plan's look-again is due, the group's last pass
        failed (the plan is stale), or there is none."""
        plan = self.plans.get(group)
        if plan is None or replan or group in self.failures:
            return self.reconcile(group)
        if plan.requeue_at is not None and self.clock.now() >= plan.requeue_at:
            return self.reconcile(group)
        return plan

    def _answer(self, host: str, group: str, plan: GroupPlan) -> Assignment:
        host_plan = plan.hosts[host]
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
            assignment_id=_assignment_id(
                host_plan.action.value, target.commit, host_plan.reason.code
            ),
        )


def _assignment_id(action: str, commit: str, code: str) -> str:
    return hashlib.sha256(f"{action}|{commit}|{code}".encode()).hexdigest()[:16]
