"""Time what the daemon's write-back costs on a large fleet.

The promotion check runs after every plan change, so it must stay cheap next to planning:
it is timed on 100,000 hosts in 200 production groups plus a 50-host staging lab, every
group mid-rollout. Rollout notes are timed end to end on real Git: 1,000 lines on 50
fleet-repo commits appended to a bare mirror and pushed to a bare origin, then a second pass
with nothing new (what most passes are). Prints medians; asserts nothing.
Usage: python benchmarks/writeback_large_fleet.py [--hosts N] [--groups N] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2
from plan_large_fleet import build, median_seconds  # a sibling script, on sys.path when run

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Promotion, Stream
from reconciler.git.notes import RolloutNotes
from reconciler.git.writer import GitIdentity
from reconciler.promotion.check import check_promotion
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.state import GroupState, HostProgress, Lifecycle, Rollout

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
OLD, NEW = "1a" * 32, "2b" * 32


def fleet_with_lab(hosts: int, groups: int) -> Fleet:
    """`plan_large_fleet`'s fleet, its first group turned into a staging lab."""
    fleet = build(hosts, groups)
    production = fleet.streams["prod"].model_copy(
        update={
            "commit": OLD,
            "promotion": Promotion.model_validate(
                {"from": "staging", "soakTime": "48h", "minHealthyHosts": 3}
            ),
        }
    )
    staging = Stream.model_validate(
        {
            "apiVersion": "ostree-fleet/v1alpha1",
            "kind": "Stream",
            "name": "staging",
            "remote": "os",
            "ref": "os/staging",
            "commit": NEW,
        }
    )
    lab = next(iter(fleet.groups))
    groups = dict(fleet.groups)
    groups[lab] = groups[lab].model_copy(update={"stream": "staging"})
    return Fleet(
        fleet.config,
        {"prod": production, "staging": staging},
        groups,
        fleet.hosts,
        fleet.members,
        "rev",
    )


def mid_rollout(fleet: Fleet) -> tuple[dict[str, GroupState], dict[str, HostObservation]]:
    """Every group mid-rollout of NEW; half of each group's hosts already succeeded."""
    states, observed = {}, {}
    for group, members in fleet.members.items():
        rollout = Rollout(1, NEW, OLD, "rev", NOW - timedelta(days=3), lifecycle=Lifecycle.ACTIVE)
        for index, host in enumerate(members):
            done = index % 2 == 0
            rollout.hosts[host] = HostProgress(
                offered_at=NOW - timedelta(days=3),
                succeeded_at=NOW - timedelta(days=2, hours=index % 24) if done else None,
            )
            observed[host] = HostObservation(
                host, NOW - timedelta(seconds=30), NEW if done else OLD, "b", Greenboot.GREEN
            )
        states[group] = GroupState(group, rollout)
    return states, observed


def notes_benchmark(runs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {"GIT_AUTHOR_NAME": "ops", "GIT_AUTHOR_EMAIL": "o@x", "GIT_COMMITTER_NAME": "ops"}
        env["GIT_COMMITTER_EMAIL"] = "o@x"
        subprocess.run(
            ["git", "init", "-q", "--bare", "-b", "main", str(tmp / "o.git")], check=True
        )
        work = tmp / "work"
        subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
        for n in range(50):
            subprocess.run(
                ["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", f"change {n}"],
                check=True,
                env={**env, "PATH": "/usr/bin:/bin"},
            )
        subprocess.run(
            ["git", "-C", str(work), "push", "-q", str(tmp / "o.git"), "main"], check=True
        )
        firsts, seconds = [], []
        for run in range(runs):
            mirror = pygit2.clone_repository(
                str(tmp / "o.git"), str(tmp / f"m{run}.git"), bare=True
            )
            revisions = [str(c.id) for c in mirror.walk(mirror.head.target)]
            lines = {
                rev: [
                    f"2026-11-25T03:00:{i:02d}Z g{k:03d} rollout 1: line {run}-{i}"
                    for i in range(20)
                ]
                for k, rev in enumerate(revisions)
            }
            notes = RolloutNotes(mirror, GitIdentity())
            start = time.perf_counter()
            first = notes.write(lines, NOW)
            firsts.append(time.perf_counter() - start)
            start = time.perf_counter()
            again = notes.write(lines, NOW)
            seconds.append(time.perf_counter() - start)
            assert first.lines_added == 1000, first
            assert first.pushed, first
            assert again.lines_added == 0, again
        return statistics.median(firsts), statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    fleet = fleet_with_lab(args.hosts, args.groups)
    states, observed = mid_rollout(fleet)
    production = fleet.streams["prod"]
    check = check_promotion(fleet, production, states, observed, set(), NOW)
    took = median_seconds(
        args.runs, lambda: check_promotion(fleet, production, states, observed, set(), NOW)
    )
    print(
        f"promotion check: {len(fleet.hosts)} hosts in {len(fleet.groups)} groups: "
        f"median {took * 1000:.2f} ms over {args.runs} runs ({check.status.value}, "
        f"{len(check.healthy_hosts)} healthy lab hosts)"
    )
    first, again = notes_benchmark(args.runs)
    print(
        f"rollout notes: 1,000 lines on 50 commits, appended and pushed: median {first:.3f} s; "
        f"a pass with nothing new (fetch, compare, no push): median {again * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
