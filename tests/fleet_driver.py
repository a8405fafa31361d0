"""Simulated hosts that report to a real FleetService and obey its answers, in virtual time.

Unlike :class:`reconciler.demo.simulation.Simulation`, which drives the engine directly, this goes
through the service the API uses (reports in, assignments out), so what the daemon sees of
the fleet (observations, plans, the event log) is exactly what real agents would produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from reconciler.clock import ManualClock
from reconciler.demo.simulation import SimulatedHost
from reconciler.rollout.planner import Action
from reconciler.serve.schemas import AgentReport, DeploymentReport
from reconciler.serve.service import FleetService


class ReportingFleet:
    def __init__(
        self,
        service: FleetService,
        clock: ManualClock,
        booted: Mapping[str, str],
        bad_commits: Iterable[str] = (),
    ) -> None:
        self.service, self.clock = service, clock
        self.hosts = {name: SimulatedHost(name, commit) for name, commit in booted.items()}
        self.bad = set(bad_commits)

    def report(self, host: SimulatedHost) -> AgentReport:
        def deployment(commit: str | None) -> DeploymentReport | None:
            return (
                None if commit is None else DeploymentReport(checksum=commit, base_checksum=commit)
            )

        return AgentReport(
            agent_version="test",
            boot_id=f"{host.name}-boot-{host.boots}",
            greenboot=host.greenboot.value,
            booted=deployment(host.booted),
            staged=deployment(host.staged),
        )

    def step(self, dt: timedelta = timedelta(minutes=5)) -> None:
        """Every host reports once and does what it is told; then time moves on."""
        now = self.clock.now()
        for host in self.hosts.values():
            answer = self.service.ingest(host.name, self.report(host))
            if answer.target is not None:
                host.obey(Action(answer.action), answer.target.commit, now, self.bad, set())
        self.clock.advance(dt)

    def run(self, duration: timedelta, dt: timedelta = timedelta(minutes=5)) -> None:
        """Step for ``duration``, then report once more, so that what the reconciler knows
        is as fresh as it would be from agents reporting every minute."""
        end = self.clock.now() + duration
        while self.clock.now() < end:
            self.step(dt)
        self.step(timedelta(0))
