"""A virtual-time fleet: simulated hosts that obey their assignments, driven by the real engine.

Used by tests, the crash test and benchmarks. Hosts behave like rpm-ostree hosts with
greenboot: staging deploys the target for the next boot; a reboot boots it; a commit marked
bad fails greenboot's checks and greenboot falls back to the previous deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.clock import ManualClock
from reconciler.rollout.engine import Engine, RolloutStore
from reconciler.rollout.observed import ApplyError, Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPlan


@dataclass
class SimulatedHost:
    """One host: what it has booted and staged, its boot count, and whether it is up."""

    name: str
    booted: str
    staged: str | None = None
    boots: int = 1
    greenboot: Greenboot = Greenboot.GREEN
    apply_error: ApplyError | None = None
    online: bool = True
    greenboot_after_boot: Greenboot = Greenboot.GREEN  # verdict on a successful new boot
    reboots_at: list[datetime] = field(default_factory=list)

    def report(self, now: datetime) -> HostObservation:
        return HostObservation(
            self.name,
            now,
            self.booted,
            f"{self.name}-boot-{self.boots}",
            self.greenboot,
            self.staged,
            apply_error=self.apply_error,
        )

    def obey(
        self, plan_action: Action, target: str, now: datetime, bad: set[str], unstageable: set[str]
    ) -> None:
        if plan_action is Action.STAGE and target not in (self.staged, self.booted):
            if target in unstageable:
                self.apply_error = ApplyError(target, "error: No such metadata object")
            else:
                self.staged, self.apply_error = target, None
        elif plan_action is Action.REBOOT and self.staged == target:
            self.reboot(now, bad)
        elif plan_action is Action.UNSTAGE:
            self.staged = None

    def reboot(self, now: datetime, bad: set[str]) -> None:
        self.boots += 1
        self.reboots_at.append(now)
        if self.staged is None:
            return
        if self.staged in bad:  # greenboot: red checks, then fallback to the previous commit
            self.staged = None
            self.greenboot = Greenboot.GREEN
            return
        self.booted, self.staged, self.greenboot = self.staged, None, self.greenboot_after_boot


class Simulation:
    """Steps virtual time: hosts report, the engine plans every group, hosts obey."""

    def __init__(
        self,
        engine: Engine[RolloutStore],
        clock: ManualClock,
        hosts: Iterable[SimulatedHost],
        bad_commits: Iterable[str] = (),
        unstageable: Iterable[str] = (),
    ) -> None:
        self.engine, self.clock = engine, clock
        self.hosts = {h.name: h for h in hosts}
        self.bad, self.unstageable = set(bad_commits), set(unstageable)
        self.last_plans: dict[str, GroupPlan] = {}
        self.last_seen: dict[str, HostObservation] = {}

    def observations(self) -> Mapping[str, HostObservation]:
        """What the reconciler knows: a fresh report from each host that is up, and the last
        one (with its old time) from each host that went down, as the real service keeps it."""
        now = self.clock.now()
        for name, host in self.hosts.items():
            if host.online:
                self.last_seen[name] = host.report(now)
        return dict(self.last_seen)

    def step(self, dt: timedelta) -> dict[str, GroupPlan]:
        observed = self.observations()
        plans = {g: self.engine.reconcile_group(g, observed) for g in self.engine.groups_in_order()}
        now = self.clock.now()
        for plan in plans.values():
            for name, host_plan in plan.hosts.items():
                host = self.hosts.get(name)
                if host is not None and host.online:
                    host.obey(
                        host_plan.action, plan.spec.target.commit, now, self.bad, self.unstageable
                    )
        self.last_plans = plans
        self.clock.advance(dt)
        return plans
