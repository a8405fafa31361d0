"""Memory per host, restoring the latest reports at start-up, and the cost of a /metrics scrape.

Builds a fleet repo of 100,000 hosts in 200 groups of 500 (two labels each, a token, a
rollout under way), stores one realistic agent report per host in a real SQLite report store,
starts a FleetService on them (which restores every host's latest report and plans every
group) and sends each host's report again (a heartbeat: it fills the answer cache). Prints:

- resident memory (RSS) and Python allocations (tracemalloc) per host after each stage;
- the deep size per host of each structure the service keeps (objects shared between
  structures are counted once, in the first that reaches them);
- the largest allocation sites still alive, by file;
- the time to restore 100,000 stored reports, and to scrape /metrics (and its size).

Targets (issue 18): <= 4 KiB RSS per host; start-up to ready <= 10 s; a scrape <= 1 s.
Timings are taken before tracemalloc starts (it slows allocation several times).
Usage: python benchmarks/memory_per_host.py [--hosts N] [--groups N] [--no-trace]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet, load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource, SourceFile
from reconciler.serve import service as service_module
from reconciler.serve.metrics import (
    HostSeries,
    OperationalMetrics,
    export_fleet_state,
    exposition,
)
from reconciler.serve.schemas import AgentReport
from reconciler.serve.service import FleetService, observation_from_report
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store

HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
OLD, NEW = "a1" * 32, "b2" * 32
START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def write_fleet(root: Path, hosts: int, groups: int) -> None:
    """One inventory file per group (a site each), hosts labelled by group and rack."""
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True)
    (root / "fleet.yaml").write_text(
        HEADER + "kind: Fleet\nname: bench\ndefaults:\n  rollout:\n"
        "    waves: [1, 10%, 50%]\n    soakTime: 1h\n"
        "    rebootBudget: {maxUnavailable: 2, groupBy: [rack]}\n"
    )
    (root / "streams" / "prod.yaml").write_text(
        HEADER + f"kind: Stream\nname: prod\nremote: os\nref: os/prod\ncommit: {NEW}\n"
        "version: '42.20261125.0'\n"
    )
    per_group = hosts // groups
    for g in range(groups):
        name = f"g{g:03d}"
        (root / "groups" / f"{name}.yaml").write_text(
            HEADER + f"kind: Group\nname: {name}\nstream: prod\n"
            f"selector: {{matchLabels: {{group: {name}}}}}\n"
        )
        lines = [HEADER + "kind: HostInventory", f"labels: {{site: site{g % 5}}}", "hosts:"]
        for i in range(per_group):
            host = host_name(g, i)
            lines += [
                f"  - name: {host}",
                f"    labels: {{group: {name}, rack: r{i // 20:02d}}}",
                f"    tokenSha256: {hashlib.sha256(host.encode()).hexdigest()}",
            ]
        (root / "hosts" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def host_name(group: int, index: int) -> str:
    return f"g{group:03d}-host{index:04d}.example.net"


def report_body(host: str) -> str:
    """What an agent on the old build sends: booted deployment, boot id, greenboot."""
    return json.dumps(
        {
            "agentVersion": "0.4.1",
            "host": host,
            "backend": "rpm-ostree",
            "bootId": hashlib.md5(host.encode()).hexdigest(),
            "greenboot": "green",
            "booted": {
                "checksum": OLD,
                "baseChecksum": OLD,
                "origin": "os:os/prod",
                "version": "42.20261101.0",
            },
            "staged": None,
            "rollback": None,
            "lastApply": None,
        },
        separators=(",", ":"),
    )


# -- measuring ----------------------------------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


_SKIPPED = (type, ModuleType, FunctionType)


def deep_size(roots: Iterable[object], seen: set[int]) -> int:
    """Bytes of every object reachable from ``roots`` not already in ``seen`` (classes,
    modules and functions excluded: they are shared code, not per-host data)."""
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIPPED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


class Stages:
    """RSS and traced Python memory after each stage, per host."""

    def __init__(self, hosts: int, traced: bool) -> None:
        self.hosts, self.traced = hosts, traced
        gc.collect()
        self.rss = self.first_rss = rss_bytes()
        self.python = self.first_python = self._python()

    def _python(self) -> int:
        return tracemalloc.get_traced_memory()[0] if self.traced else 0

    def mark(self, name: str) -> None:
        gc.collect()
        rss, python = rss_bytes(), self._python()
        line = f"  {name:<44} RSS {(rss - self.rss) / 1024 / self.hosts:7.2f} KiB/host"
        if self.traced:
            line += f"   python {(python - self.python) / 1024 / self.hosts:7.2f} KiB/host"
        print(line)
        self.rss, self.python = rss, python

    def total(self) -> None:
        rss = (self.rss - self.first_rss) / 1024 / self.hosts
        python = (self.python - self.first_python) / 1024 / self.hosts
        line = f"  {'total':<44} RSS {rss:7.2f} KiB/host"
        if self.traced:
            line += f"   python {python:7.2f} KiB/host"
        print(line + "   (target: RSS <= 4 KiB/host)")


def components(
    service: FleetService, reports: SqliteReportStore, series: HostSeries
) -> dict[str, list[object]]:
    """What the service keeps, by what it is for (order matters: shared objects are counted
    in the first component that reaches them)."""
    fleet: Fleet = service.fleet
    return {
        "fleet: hosts (records, labels, tokens)": [fleet.hosts],
        "fleet: membership (members, group of host)": [fleet.members, fleet._group_of_host],
        "service: token and lock-id indexes": [
            service._hosts_by_token,
            service._hosts_by_lock_id,
        ],
        "observations (HostObservation)": [service.observed],
        "plans (HostPlan, reasons, specs)": [service.plans],
        "engine (rollout states, specs)": [service.engine],
        "answer cache (_answers)": [service._answers],
        "report store (in memory)": [reports.__dict__],
        "/metrics per-host lines kept": [series._groups, series._hosts],
    }


def print_components(
    service: FleetService, reports: SqliteReportStore, series: HostSeries, hosts: int
) -> None:
    seen: set[int] = set()
    # Code and interpreter-wide objects are not per host: mark them seen first.
    deep_size([sys.modules], seen)
    print("deep size of what the service keeps:")
    total = 0
    for name, roots in components(service, reports, series).items():
        size = deep_size(roots, seen)
        total += size
        print(f"  {name:<44} {size / 1024 / hosts:7.3f} KiB/host")
    print(f"  {'total':<44} {total / 1024 / hosts:7.3f} KiB/host")


def print_top_sites(snapshot: tracemalloc.Snapshot, hosts: int, limit: int = 15) -> None:
    print(f"largest live allocation sites (tracemalloc, by file:line, top {limit}):")
    for stat in snapshot.statistics("lineno")[:limit]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"  {where:<44} {stat.size / 1024 / hosts:7.3f} KiB/host  ({stat.count:,} blocks)")


def median_seconds(runs: int, action: Callable[[], Any]) -> float:
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


# -- the run ------------------------------------------------------------------------------


def store_reports(db: Path, fleet: Fleet, with_observations: bool = True) -> None:
    """One report per host, with the observation derived from it as the service stores it
    (``with_observations`` False: as stored before the observation column existed)."""
    reports = SqliteReportStore(db)
    for host in fleet.hosts:
        body = report_body(host)
        seen = None
        if with_observations:
            seen = observation_from_report(host, START, AgentReport.model_validate_json(body))
        reports.save(host, START, body, seen)
    reports.close()


def restore_seconds(db: Path) -> float:
    reports, store = SqliteReportStore(db), Store(db)
    started = time.perf_counter()
    service_module.restored_observations(reports, store)
    elapsed = time.perf_counter() - started
    reports.close()
    store.close()
    return elapsed


def timings(root: Path, hosts: int) -> None:
    """Restore the stored reports, start the service on them, scrape /metrics."""
    fleet = load_fleet_or_raise(DirectorySource(root / "fleet"))
    store_reports(root / "parsed.sqlite", fleet, with_observations=False)
    parsed = restore_seconds(root / "parsed.sqlite")
    store_reports(root / "timing.sqlite", fleet)
    restore = restore_seconds(root / "timing.sqlite")
    reports, store = SqliteReportStore(root / "timing.sqlite"), Store(root / "timing.sqlite")
    clock = ManualClock(START + timedelta(seconds=30))
    registry = CollectorRegistry()
    started = time.perf_counter()
    service = FleetService(fleet, store, reports, clock, OperationalMetrics(registry))
    start_up = time.perf_counter() - started
    export_fleet_state(service, registry)
    started = time.perf_counter()
    page = exposition(registry)  # the first scrape writes every group's lines
    first = time.perf_counter() - started
    scrape = median_seconds(3, lambda: exposition(registry))
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    reports.close()
    print(
        f"restore {hosts:,} stored reports (restored_observations): {restore:.2f} s from "
        f"stored observations; {parsed:.2f} s parsing every report (rows without one)"
    )
    print(f"FleetService start (restore + plan every group): {start_up:.2f} s (target <= 10)")
    print(
        f"/metrics scrape: median {scrape:.3f} s over 3 runs (one after a restart: "
        f"{first:.3f} s), {series:,} series, {len(page) / 2**20:.1f} MiB (target <= 1 s)"
    )


def memory(root: Path, hosts: int, traced: bool) -> None:
    """Memory stage by stage; with ``traced``, what the service keeps and where from."""
    gc.collect()
    if traced:
        tracemalloc.start(1)
    stages = Stages(hosts, traced)
    how = "traced: RSS includes tracemalloc's own bookkeeping" if traced else "untraced"
    print(f"memory by stage, per host ({how}):")
    fleet = load_fleet_or_raise(DirectorySource(root / "fleet"))
    stages.mark("fleet loaded (Fleet kept)")
    db = root / ("traced.sqlite" if traced else "state.sqlite")
    store_reports(db, fleet)
    reports, store = SqliteReportStore(db), Store(db)
    stages.mark("reports stored, store opened")
    clock = ManualClock(START + timedelta(seconds=30))
    service = FleetService(fleet, store, reports, clock, OperationalMetrics(None))
    stages.mark("service started (restored, planned)")
    for host in fleet.hosts:
        body = report_body(host)
        service.ingest(host, AgentReport.model_validate_json(body), body)
    reports.flush()
    stages.mark("one heartbeat per host ingested")
    registry = CollectorRegistry()
    series = export_fleet_state(service, registry)
    exposition(registry)
    stages.mark("/metrics scraped (per-host lines kept)")
    stages.total()
    if traced:
        print_components(service, reports, series, hosts)
        print("kept by the daemon beyond the service (not in the stages above):")
        print_parsed_file_cache(root, hosts)
        print_top_sites(tracemalloc.take_snapshot(), hosts)
    reports.close()


class _BlobSource:
    """The fleet directory's files with a blob id each, as a Git source gives them, so the
    loader fills a ParsedFileCache as the daemon's does."""

    revision = "bench"

    def __init__(self, root: Path) -> None:
        files = DirectorySource(root).files()
        self._files = [dataclasses.replace(f, blob_id=f"blob-{i}") for i, f in enumerate(files)]

    def files(self) -> Iterator[SourceFile]:
        return iter(self._files)


def print_parsed_file_cache(root: Path, hosts: int) -> None:
    """What the daemon's cache of parsed fleet files keeps beyond the Fleet itself."""
    cache = ParsedFileCache()
    fleet = load_fleet(_BlobSource(root / "fleet"), cache=cache).fleet
    seen: set[int] = set()
    deep_size([sys.modules, fleet], seen)
    size = deep_size([cache], seen)
    print(
        f"  {'parsed fleet files (daemon ParsedFileCache)':<44} {size / 1024 / hosts:7.3f} KiB/host"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc run")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    hosts = args.hosts // args.groups * args.groups
    if args.part is not None:
        PARTS[args.part](Path(args.root), hosts)
        return
    print(f"{hosts:,} hosts in {args.groups} groups (numbers are noisy on a shared machine)")
    with tempfile.TemporaryDirectory() as tmp:
        write_fleet(Path(tmp) / "fleet", args.hosts, args.groups)
        # Each part in a fresh process: RSS is a high-water mark of whatever ran before.
        for part in ("timing", "rss") if args.no_trace else PARTS:
            command = [sys.executable, __file__, "--part", part, "--root", tmp]
            command += ["--hosts", str(args.hosts), "--groups", str(args.groups)]
            subprocess.run(command, check=True)


PARTS: dict[str, Callable[[Path, int], None]] = {
    "timing": timings,
    "rss": lambda root, hosts: memory(root, hosts, traced=False),
    "trace": lambda root, hosts: memory(root, hosts, traced=True),
}


if __name__ == "__main__":
    main()
