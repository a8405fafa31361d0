"""Time the rollout planner on 100,000 hosts in 200 groups, mid-rollout.

Targets (issue 3): a full planning pass over the fleet <= 0.5 s on one core, and re-planning
after one host report (one group) <= 5 ms. Prints medians; asserts nothing.
With --site-windows, every group spans three sites whose inventory files carry their own
nightly windows (Dublin, New York, Singapore), so each pass decides three window sets a group.
Usage: python benchmarks/plan_large_fleet.py [--hosts N] [--groups N] [--runs N] [--site-windows]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from datetime import UTC, datetime, timedelta

from reconciler.fleetrepo.fleet import Fleet, Inventory, InventoryHost
from reconciler.fleetrepo.models import FleetConfig, Group, MaintenanceWindow, Stream
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.planner import plan_group
from reconciler.rollout.spec import fleet_specs
from reconciler.rollout.state import GroupState

API = {"apiVersion": "ostree-fleet/v1alpha1"}
OLD, NEW = "1" * 64, "2" * 64
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SITES = {
    site: (
        MaintenanceWindow.model_validate(
            {"schedule": "0 2 * * *", "duration": "3h", "timeZone": zone}
        ),
    )
    for site, zone in (
        ("dub", "Europe/Dublin"),
        ("nyc", "America/New_York"),
        ("sin", "Asia/Singapore"),
    )
}


def build(hosts: int, groups: int, site_windows: bool = False) -> Fleet:
    per_group = hosts // groups
    config = FleetConfig.model_validate(
        {
            **API,
            "kind": "Fleet",
            "name": "bench",
            "defaults": {
                "rollout": {
                    "waves": [1, "10%", "50%"],
                    "soakTime": "1h",
                    "rebootBudget": {"maxUnavailable": 2, "groupBy": ["rack"]},
                }
            },
        }
    )
    stream = Stream.model_validate(
        {**API, "kind": "Stream", "name": "prod", "remote": "os", "ref": "os/prod", "commit": NEW}
    )
    group_models, inventory_hosts = {}, []
    for g in range(groups):
        name = f"g{g:03d}"
        group_models[name] = Group.model_validate(
            {
                **API,
                "kind": "Group",
                "name": name,
                "stream": "prod",
                "selector": {"matchLabels": {"group": name}},
                "maintenanceWindows": [
                    {"schedule": "0 2 * * *", "duration": "3h", "timeZone": "Europe/Dublin"}
                ],
            }
        )
        for i in range(per_group):
            host = f"{name}-h{i:04d}"
            site = list(SITES)[i % len(SITES)]
            inventory_hosts.append(
                InventoryHost(
                    host,
                    {"group": name, "rack": f"r{i // 20}"},
                    hashlib.sha256(host.encode()).hexdigest(),
                    f"hosts/{site}.yaml" if site_windows else "hosts.yaml",
                    windows=SITES[site] if site_windows else None,
                )
            )
    inventory = Inventory(inventory_hosts)
    members = {n: tuple(inventory.members(g)) for n, g in group_models.items()}
    return Fleet(
        config, {"prod": stream}, group_models, {h.name: h for h in inventory.hosts}, members, "rev"
    )


def observations(fleet: Fleet, now: datetime) -> dict[str, HostObservation]:
    """A third of each group updated, a third staged, a third still on the old commit."""
    observed = {}
    for index, name in enumerate(fleet.hosts):
        kind = index % 3
        observed[name] = HostObservation(
            name,
            now - timedelta(seconds=30),
            NEW if kind == 0 else OLD,
            f"{name}-b1",
            Greenboot.GREEN,
            staged_commit=NEW if kind == 1 else None,
        )
    return observed


def median_seconds(runs: int, action: object) -> float:
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--site-windows", action="store_true")
    args = parser.parse_args()
    fleet = build(args.hosts, args.groups, args.site_windows)
    specs = fleet_specs(fleet)
    observed = observations(fleet, NOW)
    # Bring every group mid-rollout: started, waves opened as far as the data allows.
    states = {}
    for name, spec in specs.items():
        plan = plan_group(spec, GroupState(name), observed, {}, NOW - timedelta(hours=3))
        plan = plan_group(spec, plan.state, observed, {}, NOW)
        states[name] = plan.state
    decisions = sum(
        len(plan_group(s, states[n], observed, {}, NOW).decisions) for n, s in specs.items()
    )

    def full_pass() -> None:
        for name, spec in specs.items():
            plan_group(spec, states[name], observed, {}, NOW)

    one = next(iter(specs))

    def one_group() -> None:
        plan_group(specs[one], states[one], observed, {}, NOW)

    full = median_seconds(args.runs, full_pass)
    single = median_seconds(args.runs * 20, one_group)
    print(
        f"full planning pass: {len(fleet.hosts)} hosts in {len(specs)} groups: "
        f"median {full:.3f} s over {args.runs} runs (target <= 0.5 s); "
        f"{decisions} decisions pending at steady state"
    )
    print(
        f"re-plan one group after a report ({len(fleet.members[one])} hosts): "
        f"median {single * 1000:.2f} ms over {args.runs * 20} runs (target <= 5 ms)"
    )


if __name__ == "__main__":
    main()
