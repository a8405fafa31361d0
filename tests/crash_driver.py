"""A rollout run as its own process, for the crash test: `python -m tests.crash_driver DB WORLD`.

The "world" (simulated hosts and the virtual clock) lives in a JSON file replaced atomically
after every step; the engine's state lives in SQLite. Killing this process at any instant
must leave both in a state from which a restart carries on and completes the rollout.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.clock import ManualClock
from reconciler.demo.simulation import SimulatedHost, Simulation
from reconciler.rollout.engine import Engine
from reconciler.rollout.observed import Greenboot
from reconciler.rollout.state import Lifecycle
from reconciler.state.store import Store
from tests.fleets import NEW, NEWER, OLD, build_fleet

HOSTS = {f"{site}{i}": {"site": site} for site in ("dub", "nyc", "sin") for i in range(1, 9)}
POLICY = {
    "waves": [1, "25%", "50%"],
    "soakTime": "60m",
    "healthTimeout": "30m",
    "rebootBudget": {"maxUnavailable": 1, "groupBy": ["site"]},
}
GROUPS = {
    "canary": {"hosts": ["dub1", "nyc1"], "rollout": POLICY},
    "main": {
        "hosts": [h for h in HOSTS if h not in ("dub1", "nyc1")],
        "rollout": POLICY,
        "dependsOn": ["canary"],
    },
}
START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
SWITCH_AT = START + timedelta(hours=2)  # the fleet repo moves to a newer commit mid-rollout
STEP = timedelta(seconds=10)
LIMIT = START + timedelta(days=2)


def load_world(path: Path) -> tuple[datetime, list[SimulatedHost]]:
    if not path.exists():
        return START, [SimulatedHost(name, OLD) for name in HOSTS]
    data = json.loads(path.read_text())
    hosts = []
    for raw in data["hosts"]:
        raw["greenboot"] = Greenboot(raw["greenboot"])
        raw["greenboot_after_boot"] = Greenboot(raw["greenboot_after_boot"])
        raw["reboots_at"] = [datetime.fromisoformat(t) for t in raw["reboots_at"]]
        hosts.append(SimulatedHost(**raw))
    return datetime.fromisoformat(data["now"]), hosts


def save_world(path: Path, now: datetime, hosts: list[SimulatedHost]) -> None:
    data = {"now": now.isoformat(), "hosts": [asdict(h) for h in hosts]}
    temporary = path.with_suffix(".tmp")
    with temporary.open("w") as out:
        json.dump(data, out, default=str)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)


def main(db: Path, world: Path) -> int:
    now, hosts = load_world(world)
    clock = ManualClock(now)
    engine = Engine(Store(db), clock)
    simulation = Simulation(engine, clock, hosts)
    while clock.now() < LIMIT:
        commit = NEW if clock.now() < SWITCH_AT else NEWER
        engine.use_fleet(build_fleet(GROUPS, HOSTS, {"main": commit}, revision=commit[-1]))
        simulation.step(STEP)
        save_world(world, clock.now(), list(simulation.hosts.values()))
        done = all(h.booted == NEWER for h in simulation.hosts.values()) and all(
            (s := engine.state(g)).rollout is not None
            and s.rollout.lifecycle is Lifecycle.COMPLETED
            and s.rollout.target == NEWER
            for g in GROUPS
        )
        if done:
            print("DONE", clock.now().isoformat(), flush=True)
            return 0
    print("TIMEOUT", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
