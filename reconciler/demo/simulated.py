"""The rollout engine on the example fleet, in virtual time: a good build, then a bad one.

Part of `make demo` until the daemon lands. Hosts are simulated (they stage, reboot and
report like rpm-ostree hosts with greenboot); everything else is the real engine with a real
SQLite store, real maintenance windows in each site's time zone and a manual clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.clock import ManualClock
from reconciler.demo.simulation import SimulatedHost, Simulation
from reconciler.fleetrepo.fleet import Fleet
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.engine import Engine
from reconciler.state.store import Store

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
GROUP_EVENTS = {
    DecisionKind.ROLLOUT_STARTED,
    DecisionKind.WAVE_OPENED,
    DecisionKind.ROLLOUT_HALTED,
    DecisionKind.ROLLOUT_COMPLETED,
    DecisionKind.HOST_FAILED,
}


def _print(group: str, decisions: Iterable[Decision]) -> None:
    for d in decisions:
        if d.kind in GROUP_EVENTS:
            print(f"  {d.at:%a %H:%MZ}  {group:20} {d.kind.value:18} {d.reason.message}")


def _simulate(engine: Engine[Store], sim: Simulation, until: timedelta) -> None:
    end = sim.clock.now() + until
    while sim.clock.now() < end:
        for group, plan in sim.step(STEP).items():
            _print(group, plan.decisions)


def run(fleet: Fleet, bad_fleet: Fleet, state_dir: Path) -> None:
    """Roll the example fleet's production commit out, then a staging build that fails."""
    clock = ManualClock(START)
    engine = Engine(Store(state_dir / "state.sqlite"), clock)
    previous = "9" * 64  # what every host ran before these commits
    hosts = []
    for name in fleet.hosts:
        group = fleet.group_of(name)
        pinned = group is not None and fleet.groups[group].pin is not None
        booted = fleet.target(group).commit if pinned and group else previous
        hosts.append(SimulatedHost(name, booted))
    sim = Simulation(engine, clock, hosts)
    engine.use_fleet(fleet)
    print("\n=== rollout of the example fleet, 3 days of virtual time in 5-minute steps")
    _simulate(engine, sim, timedelta(days=3))
    in_sync = sum(
        1
        for h in sim.hosts.values()
        if h.booted == fleet.target(fleet.group_of(h.name) or "").commit
    )
    print(f"  -> {in_sync}/{len(sim.hosts)} hosts on their desired commit")

    bad = bad_fleet.streams["staging"].commit
    sim.bad.add(bad)
    engine.use_fleet(bad_fleet)
    print(f"\n=== a staging build ({bad[:12]}) whose health checks fail on boot")
    _simulate(engine, sim, timedelta(hours=6))
    lab = engine.reconcile_group("staging-lab", sim.observations())
    print(f"  -> staging-lab: {lab.status.phase.value}: {lab.status.reason.message}")
    for host, plan in lab.hosts.items():
        print(f"     {host:12} {plan.state.value:12} {plan.action.value:6} {plan.reason.message}")
    engine.store.close()
