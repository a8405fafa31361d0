"""Time validating a fleet of 5,000 hosts in 100 groups, from a directory and from Git.

Target (issue 2): under 2 s. Prints the median of several runs; asserts nothing.
Usage: python benchmarks/validate_large_fleet.py [--hosts N] [--groups N] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.fleetrepo.loader import LoadResult, load_fleet
from reconciler.fleetrepo.sources import DirectorySource, GitRevisionSource

HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
ZONES = ["Europe/Dublin", "America/New_York", "Asia/Singapore", "Europe/Berlin"]


def write_fleet(root: Path, hosts: int, groups: int) -> None:
    """Sites of equal size, two groups per site (split by a `tier` label)."""
    sites = groups // 2
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        HEADER + "kind: Fleet\nname: bench\ndefaults:\n  rollout:\n    waves: [1, 10%, 50%]\n"
        "    rebootBudget: {maxUnavailable: 1, groupBy: [rack]}\n"
    )
    for stream in ("staging", "production"):
        (root / "streams" / f"{stream}.yaml").write_text(
            HEADER + f"kind: Stream\nname: {stream}\nremote: os\nref: os/{stream}\n"
            f"commit: {hashlib.sha256(stream.encode()).hexdigest()}\n"
        )
    per_site = hosts // sites
    for site in range(sites):
        lines = [HEADER + "kind: HostInventory", f"labels: {{site: s{site:03d}}}", "hosts:"]
        for index in range(per_site):
            name = f"s{site:03d}-h{index:04d}"
            token = hashlib.sha256(name.encode()).hexdigest()
            lines += [
                f"  - name: {name}",
                f"    labels: {{tier: t{index % 2}, rack: r{index // 10}}}",
                f"    tokenSha256: {token}",
            ]
        (root / "hosts" / f"s{site:03d}.yaml").write_text("\n".join(lines) + "\n")
        for tier in range(2):
            (root / "groups" / f"s{site:03d}-t{tier}.yaml").write_text(
                HEADER + f"kind: Group\nname: s{site:03d}-t{tier}\nstream: production\n"
                f"selector:\n  matchLabels: {{site: s{site:03d}, tier: t{tier}}}\n"
                'maintenanceWindows:\n  - schedule: "0 2 * * *"\n    duration: 3h\n'
                f"    timeZone: {ZONES[site % len(ZONES)]}\n"
            )


def timed(runs: int, load: Callable[[], LoadResult]) -> tuple[float, LoadResult]:
    durations, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = load()
        durations.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(durations), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fleet"
        write_fleet(root, args.hosts, args.groups)
        for command in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"],
        ):
            subprocess.run(["git", "-C", str(root), *command], check=True)
        for label, load in (
            ("directory", lambda: load_fleet(DirectorySource(root))),
            ("git --rev HEAD", lambda: load_fleet(GitRevisionSource(root))),
        ):
            seconds, result = timed(args.runs, load)
            assert result.fleet is not None, result.problems[:3]
            print(
                f"validate {label:15} {len(result.fleet.hosts)} hosts, "
                f"{len(result.fleet.groups)} groups, {result.files_read} files: "
                f"median {seconds:.3f} s over {args.runs} runs (target < 2 s)"
            )


if __name__ == "__main__":
    main()
