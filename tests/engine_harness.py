"""A real engine on a real SQLite file, a manual clock and simulated hosts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.clock import ManualClock
from reconciler.demo.simulation import SimulatedHost, Simulation
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.engine import Engine
from reconciler.rollout.observed import HostObservation, RebootDeferral
from reconciler.rollout.planner import Action, GroupPlan
from reconciler.state.store import Store
from tests.fleets import OLD, build_fleet

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class BusyHost(SimulatedHost):
    """A host whose pre-reboot command exits 1 while it has active calls, as the agent
    does: it holds the reboot back and says so in every report until the command passes
    or the server no longer asks for the reboot."""

    calls: int = 0
    deferred_since: datetime | None = None

    def report(self, now: datetime) -> HostObservation:
        seen = super().report(now)
        if self.deferred_since is None:
            return seen
        deferral = RebootDeferral(self.deferred_since, f"{self.calls} active calls", 1)
        return dataclasses.replace(seen, reboot_deferred=deferral)

    def obey(
        self, plan_action: Action, target: str, now: datetime, bad: set[str], unstageable: set[str]
    ) -> None:
        draining = plan_action is Action.REBOOT and self.staged == target and self.calls > 0
        if draining:
            self.deferred_since = self.deferred_since or now
            return
        self.deferred_since = None
        super().obey(plan_action, target, now, bad, unstageable)


class Harness:
    #: Where the store is: None, a SQLite file in the test's directory; a PostgreSQL URL when
    #: the test runs on both stores (tests/state_backends.py, ``harness_on_both_stores``).
    location: str | None = None

    def __init__(
        self,
        tmp: Path,
        groups: Mapping[str, Mapping[str, Any]],
        hosts: Mapping[str, Mapping[str, str]],
        *,
        streams: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        start: datetime = START,
        booted: str = OLD,
        bad: Iterable[str] = (),
        unstageable: Iterable[str] = (),
        host_windows: Mapping[str, list[Mapping[str, Any]]] | None = None,
    ):
        self.db: Path | str = self.location or tmp / "state.sqlite"
        self.clock = ManualClock(start)
        self.store = Store(self.db)
        self.engine = Engine(self.store, self.clock)
        self.groups, self.hosts_labels = dict(groups), dict(hosts)
        self.streams, self.defaults = streams, defaults
        self.host_windows = host_windows
        self.revision = 1
        self.engine.use_fleet(
            build_fleet(groups, hosts, streams, defaults, "rev-1", host_windows=host_windows)
        )
        self.sim = Simulation(
            self.engine, self.clock, [SimulatedHost(h, booted) for h in hosts], bad, unstageable
        )
        self.decisions: list[Decision] = []
        self.log: list[tuple[str, Decision]] = []  # (group, decision) in decision order

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def change_fleet(
        self,
        *,
        groups: Mapping[str, Mapping[str, Any]] | None = None,
        streams: Mapping[str, str] | None = None,
    ) -> None:
        self.groups = dict(groups or self.groups)
        self.streams = streams or self.streams
        self.revision += 1
        self.engine.use_fleet(
            build_fleet(
                self.groups,
                self.hosts_labels,
                self.streams,
                self.defaults,
                f"rev-{self.revision}",
                host_windows=self.host_windows,
            )
        )

    def step(self, dt: timedelta = timedelta(minutes=1)) -> dict[str, GroupPlan]:
        plans = self.sim.step(dt)
        for name, plan in plans.items():
            self.record(name, plan)
        return plans

    def record(self, group: str, plan: GroupPlan) -> None:
        self.decisions.extend(plan.decisions)
        self.log.extend((group, d) for d in plan.decisions)

    def run(self, duration: timedelta, dt: timedelta = timedelta(minutes=1)) -> None:
        end = self.now + duration
        while self.now < end:
            self.step(dt)

    def plan(self, group: str) -> GroupPlan:
        """A fresh pass at the current time without moving the clock or hosts."""
        plan = self.engine.reconcile_group(group, self.sim.observations())
        self.record(group, plan)
        return plan

    def restart(self) -> None:
        """Drop the engine and open the store again, as after a crash."""
        self.store.close()
        self.store = Store(self.db)
        specs = self.engine.specs
        self.engine = Engine(self.store, self.clock)
        self.engine.specs = specs
        self.sim.engine = self.engine

    def kinds(self, kind: DecisionKind, host: str | None = None) -> list[Decision]:
        return [d for d in self.decisions if d.kind is kind and (host is None or d.host == host)]
