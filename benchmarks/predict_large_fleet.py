"""How fast `plan --predict` is at 10,000 hosts, and how close the engine's rollout comes to
the fastest its policy allows (issue 21).

Fleets of 10,000 hosts in 50 groups of 200 over 5 sites: one whose hosts may reboot at any
time, one with a 3-hour night window in each site's own time zone. Waves [1, 10%, 50%] (and
100 %), soak 1 h, a reboot budget of 10 % per group, and `dependsOn` chaining each site's
groups one after the other. Every host starts on the old build. The third is the night-window
fleet as the pull request that moves *staging* sees it: 100 more hosts in a staging group
per site take the new build, production is promoted from staging by the reconciler once 50
of them have run it for 24 h, and every production wave has a health gate (3 passes 5
minutes apart).

For each fleet it prints the time :func:`reconciler.rollout.prediction.predict` takes, the
predicted makespan (the merge until the last group is done), and a lower bound on it.

**The lower bound** is what the policy allows, computed per group along its dependency chain:
- it starts when what it depends on is done;
- each wave is the stage time, then its reboot rounds (ceil(hosts / budget) rounds, each a
  reboot time long), each round starting only while a window is open (`reboot_window`,
  margin included);
- the next wave opens a soak after the wave is done;
- with a promotion, production's groups start when the promotion is due: the soak after the
  moment the bound has `minHealthyHosts` staging hosts done (the health gates pass within a
  soak, so they add nothing to it).

The bound ignores nothing the engine must respect, and assumes nothing the engine may skip.
A makespan above 1.05 x the bound means the engine waits when it need not.

Usage: python benchmarks/predict_large_fleet.py [--hosts N] [--groups N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.promotion.ahead import PredictedPromotions
from reconciler.rollout.prediction import Assumptions, Prediction, predict
from reconciler.rollout.spec import GroupSpec, dependency_order, group_spec
from reconciler.rollout.windows import reboot_window

SITES = {
    "dub": "Europe/Dublin",
    "fra": "Europe/Berlin",
    "nyc": "America/New_York",
    "sin": "Asia/Singapore",
    "syd": "Australia/Sydney",
}
HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
OLD, NEW = "a1" * 32, "b2" * 32
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


STAGING_HOSTS_PER_SITE = 20
PROMOTION = "  from: staging\n  soakTime: 24h\n  minHealthyHosts: 50\n"
HEALTH_CHECKS = (
    "  healthChecks:\n    - {name: calls, query: 'min(up)', successCondition: '>= 1', "
    "interval: 5m, consecutiveSuccesses: 3}\n"
)


def write_fleet(root: Path, hosts: int, groups: int, windows: bool, promoted: bool = False) -> None:
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        HEADER + "kind: Fleet\nname: bench\ndefaults:\n  rollout:\n"
        "    waves: [1, 10%, 50%]\n    soakTime: 1h\n    healthTimeout: 2h\n"
        "    rebootMargin: 20m\n    rebootBudget: {maxUnavailable: 10%}\n"
        + (HEALTH_CHECKS if promoted else "")
    )
    production = OLD if promoted else NEW
    (root / "streams" / "prod.yaml").write_text(
        HEADER
        + f"kind: Stream\nname: prod\nremote: os\nref: os/prod\ncommit: {production}\n"
        + (f"promotion:\n{PROMOTION}" if promoted else "")
    )
    if promoted:
        _write_staging(root)
    per_group, sites = hosts // groups, list(SITES)
    for g in range(groups):
        site = sites[g % len(sites)]
        name = f"{site}-{g:03d}"
        before = g - len(sites)  # the previous group of the same site
        depends = f"dependsOn: [{sites[before % len(sites)]}-{before:03d}]\n" if before >= 0 else ""
        window = (
            f"maintenanceWindows:\n  - {{schedule: '0 1 * * *', duration: 3h, "
            f"timeZone: {SITES[site]}}}\n"
            if windows
            else "maintenanceWindows: []\n"
        )
        (root / "groups" / f"{name}.yaml").write_text(
            HEADER + f"kind: Group\nname: {name}\nstream: prod\n"
            f"selector: {{matchLabels: {{group: {name}}}}}\n{depends}{window}"
        )
        _write_hosts(root, name, per_group, first_token=g * 1000)


def _write_staging(root: Path) -> None:
    (root / "streams" / "staging.yaml").write_text(
        HEADER + f"kind: Stream\nname: staging\nremote: os\nref: os/staging\ncommit: {NEW}\n"
    )
    for number, (site, zone) in enumerate(SITES.items()):
        name = f"staging-{site}"
        (root / "groups" / f"{name}.yaml").write_text(
            HEADER + f"kind: Group\nname: {name}\nstream: staging\n"
            f"selector: {{matchLabels: {{group: {name}}}}}\n"
            f"maintenanceWindows:\n  - {{schedule: '0 1 * * *', duration: 3h, timeZone: {zone}}}\n"
        )
        _write_hosts(root, name, STAGING_HOSTS_PER_SITE, first_token=10**6 + number * 1000)


def _write_hosts(root: Path, group: str, count: int, first_token: int) -> None:
    """`hosts/<group>.yaml`: ``count`` hosts labelled for ``group``."""
    lines = [HEADER + "kind: HostInventory", "hosts:"]
    lines += [
        f"  - {{name: {group}-h{i:03d}, labels: {{group: {group}}}, tokenSha256: "
        f"'{(first_token + i):064x}'}}"
        for i in range(count)
    ]
    (root / "hosts" / f"{group}.yaml").write_text("\n".join(lines) + "\n")


def lower_bound(fleet: Fleet, assumed: Assumptions) -> datetime:
    """The earliest the policy allows every group to be done (see the module docstring)."""
    done: dict[str, datetime] = {}
    succeeded: list[datetime] = []  # when each host of a stream promoted from is done
    order = dependency_order({n: g.depends_on for n, g in fleet.groups.items()})
    sources = {s.promotion.from_stream: s for s in fleet.streams.values() if s.promotion}
    for name in (n for n in order if fleet.groups[n].stream in sources):
        done[name] = _group_bound(group_spec(fleet, name), START, assumed, succeeded)
    promoted_at = START
    for stream in sources.values():
        assert stream.promotion is not None
        nth = sorted(succeeded)[stream.promotion.min_healthy_hosts - 1]
        promoted_at = nth + stream.promotion.soak_time
    for name in (n for n in order if fleet.groups[n].stream not in sources):
        spec = group_spec(fleet, name)
        begins = promoted_at if fleet.streams[spec.target.stream or ""].promotion else START
        t = max([begins, *(done[d] for d in spec.depends_on if d in done)])
        done[name] = _group_bound(spec, t, assumed, [])
    return max(done.values())


def _group_bound(
    spec: GroupSpec, t: datetime, assumed: Assumptions, succeeded: list[datetime]
) -> datetime:
    previous = 0
    limit = max(1, min(spec.budget_limit.values(), default=1))
    for index, end in enumerate(spec.wave_ends):
        if index:
            t += spec.soak_time
        t += assumed.stage
        left = end - previous
        while left > 0:
            t = _next_reboot_start(spec, t) + assumed.reboot
            succeeded += [t] * min(limit, left)
            left -= limit
        previous = end
    return t


def _next_reboot_start(spec: GroupSpec, t: datetime) -> datetime:
    while True:
        window = reboot_window(spec.windows, t, spec.policy.reboot_margin)
        if window.allowed:
            return t
        assert window.changes_at is not None
        assert window.changes_at > t
        t = window.changes_at


def measure(name: str, hosts: int, groups: int, windows: bool, promoted: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fleet(root, hosts, groups, windows, promoted)
        fleet = load_fleet_or_raise(DirectorySource(root))
    assumed = Assumptions()
    booted = dict.fromkeys(fleet.hosts, OLD)
    started = time.perf_counter()
    # As `plan --predict` does it: the reconciler's promotions happen when due.
    prediction: Prediction = predict(fleet, START, booted, assumed, PredictedPromotions())
    took = time.perf_counter() - started
    hosts = len(fleet.hosts)
    bound = lower_bound(fleet, assumed)
    end = prediction.end
    print(f"{name}: {hosts:,} hosts in {groups} groups over {len(SITES)} sites")
    print(f"  predicted in {took:.2f} s ({prediction.passes:,} planning passes; target < 10 s)")
    if end is None:
        unfinished = [g.group for g in prediction.groups if g.rolls_out and g.finished is None]
        print(f"  does not finish within the horizon: {', '.join(unfinished[:5])} ...")
        return
    makespan, least = end - START, bound - START
    ratio = makespan / least
    print(
        f"  makespan {makespan}; lower bound {least}; ratio {ratio:.3f} "
        "(above 1.05: the engine waits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    args = parser.parse_args()
    measure("any time (no windows)", args.hosts, args.groups, windows=False)
    measure("night windows in each site's time zone", args.hosts, args.groups, windows=True)
    measure(
        "staging, then production promoted by the reconciler, health gates, night windows",
        args.hosts,
        args.groups,
        windows=True,
        promoted=True,
    )


if __name__ == "__main__":
    main()
