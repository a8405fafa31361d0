"""The fleet service: host reports in, assignments out, through the rollout engine.

It keeps the latest observation of every host in memory (loaded from the report store at
start), re-plans a host's group only when something that matters changed (a new deployment,
boot, greenboot verdict or apply result) or the group's plan asked to be looked at again, and
answers from the cached plan otherwise: a heartbeat costs a dictionary lookup, not a pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from reconciler.clock import Clock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.promotion.check import PromotionCheck, check_promotion
from reconciler.rollout.engine import Engine
from reconciler.rollout.observed import ApplyError, Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPlan
from reconciler.rollout.reasons import ReasonCode
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport, Assignment, ReasonOut, TargetOut
from reconciler.state.reports import ReportStore
from reconciler.state.store import Store

logger = logging.getLogger(__name__)

#: How soon an agent with work to do reports again, and the longest it stays silent.
BUSY_REPORT_SECONDS = 15
IDLE_REPORT_SECONDS = 60


def observation_from_report(host: str, at: datetime, report: AgentReport) -> HostObservation:
    """What the planner needs from a report; base commits, since that is what Git declares."""
    apply_error = None
    last = report.last_apply
    if last is not None and not last.ok and last.action == "stage":
        apply_error = ApplyError(last.commit, last.error or "stage failed")
    return HostObservation(
        host=host,
        received_at=at,
        booted_commit=report.booted.base_checksum if report.booted else None,
        boot_id=report.boot_id,
        greenboot=Greenboot(report.greenboot),
        staged_commit=report.staged.base_checksum if report.staged else None,
        booted_version=report.booted.version if report.booted else None,
        apply_error=apply_error,
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FleetService:
    """Joins the fleet in force, the engine and the report store."""

    def __init__(self, fleet: Fleet, store: Store, reports: ReportStore, clock: Clock) -> None:
        self.clock, self.reports, self.store = clock, reports, store
        self.engine = Engine(store, clock)
        self.observed: dict[str, HostObservation] = {}
        for host, (at, body) in reports.latest().items():
            self.observed[host] = observation_from_report(
                host, at, AgentReport.model_validate_json(body)
            )
        self.plans: dict[str, GroupPlan] = {}
        self._answers: dict[str, tuple[GroupPlan, Assignment]] = {}
        self.metrics: OperationalMetrics | None = None  # set by the API that exports them
        self.plan_listeners: list[Callable[[str, GroupPlan | None], None]] = []
        self.use_fleet(fleet)

    def use_fleet(self, fleet: Fleet) -> None:
        """Make a new validated fleet revision the desired state; every group is re-planned."""
        self.fleet = fleet
        # Hosts removed from the inventory are forgotten (their reports stay in the store).
        self.observed = {h: o for h, o in self.observed.items() if h in fleet.hosts}
        self._hosts_by_token = {h.token_sha256: h.name for h in fleet.hosts.values()}
        self.engine.use_fleet(fleet)
        self.plans.clear()
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

    def plan(self, group: str, replan: bool = False) -> GroupPlan:
        """The group's plan: cached unless asked to re-plan or the plan's look-again is due."""
        cached = self.plans.get(group)
        now = self.clock.now()
        due = cached is not None and cached.requeue_at is not None and now >= cached.requeue_at
        if cached is not None and not replan and not due:
            return cached
        started = time.perf_counter()
        try:
            plan = self.engine.reconcile_group(group, self.observed)
        except Exception:
            if self.metrics is not None:
                self.metrics.reconcile_errors.labels(group).inc()
            raise
        if self.metrics is not None:
            self.metrics.reconcile_seconds.labels(group).observe(time.perf_counter() - started)
            self.metrics.last_reconcile.set_to_current_time()
        self.plans[group] = plan
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
        if cached is None or plan.hosts != cached.hosts or plan.status != cached.status:
            self._notify(group, plan)
        return plan

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
        plan = self.plan(group, replan=replan)
        cached = self._answers.get(host)
        if cached is not None and cached[0] is plan:
            return cached[1]  # the same plan gives the same answer
        answer = self._answer(host, group, plan)
        self._answers[host] = (plan, answer)
        return answer

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
