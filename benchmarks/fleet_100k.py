"""One node, 100,000 hosts: every figure of issue 18 against a real `reconciler serve`.

The daemon is the console script (.venv/bin/reconciler serve) in its own process, following a
local bare Git repository through its watch, on a state directory of its own. The fleet
(benchmarks/fleet_serve.py): 100,000 hosts in 200 groups of 500, each with a token, every
group on the stream `prod`, waves [1, 10%, 50%] (and 100 %), soakTime 0s, maxUnavailable
10 %; plus one host alone in the group `canary` on the stream `canary`. The agents are
benchmarks/loadgen.py: several processes of asyncio keep-alive HTTP/1.1 clients, at least
500 connections, following their answers as agents do.

What runs, in order (each load phase is capped in time; a capped phase reports its rate over
the time it ran, and says how far it got):

1. Life 1: serve starts on an empty state directory; the load generator's ceiling is measured
   against /healthz; then hosts make their first report ever, until the cap.
2. Hosts that did not report within the cap get a stored report written straight into the
   state directory's report store (reconciler.state.reports.SqliteReportStore), the same
   JSON their agent would have sent: a documented shortcut so that a slow server does not
   make the run take half an hour; the daemon only ever starts on what it would have
   written itself. Then every host has a stored report.
3. Life 2 (SIGTERM, start again on the same state): time from the process's start to
   /readyz 200, and to the canary's first report answered.
4. Restart storm: every host's first report after the restart, as long-polling agents
   reconnect when their server comes back: the same state as their stored report (when the
   storm is capped, the other hosts then report once too, not timed). Then a reboot storm:
   every host's first report after its *own* restart (a new boot id, same commit), which
   changes every host's state.
5. RSS of the process (VmRSS) after the storms (every host has reported in this life),
   minus that of a 200-host fleet after each of its hosts reported once, per host; the
   /metrics scrape (median of 3, size, series).
6. Rollout in progress: a real `git push` moves `prod` to a new commit; once the daemon has
   it in force, rounds of heartbeats (each host still waiting reports its unchanged state, as
   its periodic report would; the answers say who may stage or reboot) alternate with drains
   (only state-changing reports: staged, then booted on the new commit with a new boot id
   and greenboot green, following each answer). The state-changing rate counts the drains
   of at least two reports per connection (a smaller one times a few hosts' chains, not the
   server); the heartbeat rate counts the rounds; then their ratio.
7. Merge -> first canary: the canary long-polls (wait=300, knownAssignment = its current
   assignment) while a `git push` changes only the canary's stream; time from the push's
   start and from its completion (the merge has landed) to the long-poll's answer naming the
   new commit; the target is judged from its completion. Idle, then under ~2,000 reports/s
   of background load (heartbeats with every fifth report a state change: the rollout's
   next step, or a reboot); the rate the background load achieved during the pushes is
   printed.
8. The full planning pass of benchmarks/plan_large_fleet.py, run as it is.

The final table compares each figure with the issue's target. Numbers on a shared machine
are noisy: the server and the generator share its cores (the server uses one, the
generator's CPU share is printed with each phase). About 6 minutes at 100,000 hosts, under
2 with --quick.
Usage: python benchmarks/fleet_100k.py [--quick] [--hosts N] [--groups N] [--workers N]
       [--connections N] [--pushes N]     (--quick: 20,000 hosts in 40 groups, shorter caps)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleet_serve import (
    CANARY_TOKEN,
    NEW,
    OLD,
    PROD_ORIGIN,
    Serve,
    canary_commit,
    canary_report,
    commit_stream,
    fleet_repo,
    head_revision,
    push,
    request,
)
from loadgen import Counts, LoadGenerator, Phase, host_name, report_body

from reconciler.serve.schemas import AgentReport  # type: ignore[import-untyped]
from reconciler.serve.service import observation_from_report  # type: ignore[import-untyped]
from reconciler.state.reports import SqliteReportStore  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent


@dataclass
class Caps:
    """Seconds each load phase may take."""

    first_reports: float
    storm: float
    reboot_storm: float
    rollout: float
    heartbeat_round: float
    pushes: float


FULL = Caps(first_reports=20, storm=40, reboot_storm=20, rollout=150, heartbeat_round=30, pushes=75)
QUICK = Caps(first_reports=8, storm=12, reboot_storm=6, rollout=30, heartbeat_round=8, pushes=15)


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, figure: str, measured: str, target: str, ok: bool | None) -> None:
        verdict = "-" if ok is None else "ok" if ok else "MISSED"
        self.rows.append((figure, measured, target, verdict))

    def print(self) -> None:
        widths = [
            max(len(row[i]) for row in [*self.rows, ("figure", "", "", "")]) for i in range(4)
        ]
        for row in [("figure", "measured", "target", ""), *self.rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def load(
    generator: LoadGenerator, serve: Serve, what: str, phase: Phase, per_report: bool = True
) -> Counts:
    """Run ``phase``, print what it did, the server's and the generator's CPU."""
    cpu = serve.cpu_seconds()
    counts = generator.run(phase)
    server_cpu = (serve.cpu_seconds() - cpu) / counts.elapsed
    generator_cpu = counts.cpu / counts.elapsed
    kinds = f"{counts.changes:,} state-changing, {counts.heartbeats:,} heartbeats"
    if not per_report:
        kinds = f"{counts.gets:,} requests"
    print(
        f"  {what}: {counts.answered / counts.elapsed:,.0f}/s over {counts.elapsed:.1f} s "
        f"({kinds}, {counts.errors} errors{'' if counts.exhausted else ', capped'}); "
        f"server CPU {100 * server_cpu:.0f} %, generator CPU {100 * generator_cpu:.0f} % "
        f"({phase.connections} connections)"
    )
    if counts.errors:
        raise RuntimeError(f"{what}: {counts.errors} failed requests; see {serve.tail()}")
    return counts


def store_missing_reports(state: Path, hosts: int) -> int:
    """Write the report each silent host's agent would have sent (the documented shortcut),
    with the observation the daemon stores beside each report it receives."""
    reports = SqliteReportStore(state / "state.sqlite")
    try:
        stored = reports.latest()
        now = datetime.now(UTC)
        written = 0
        for index in range(hosts):
            name = host_name(index)
            if name not in stored:
                body = report_body(index, OLD, None, 0, PROD_ORIGIN)
                seen = observation_from_report(name, now, AgentReport.model_validate_json(body))
                reports.save(name, now, body, seen)
                written += 1
    finally:
        reports.close()
    return written


def metrics_scrape(serve: Serve) -> tuple[float, int, int]:
    """Median seconds of three scrapes, bytes, series."""
    seconds, body = [], b""
    for _ in range(3):
        start = time.perf_counter()
        status, body = request(serve.port, "GET", "/metrics")
        seconds.append(time.perf_counter() - start)
        assert status == 200, status
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return statistics.median(seconds), len(body), series


def rollout(generator: LoadGenerator, serve: Serve, work: Path, caps: Caps, conns: int) -> Table:
    """Push a new `prod` commit, then heartbeat rounds and state-changing drains.

    A round is a heartbeat from each host still waiting (not on the new commit, nothing to
    do), as their periodic reports would come; the answers say who may stage or reboot. A
    drain then sends only state-changing reports, following each answer. Only drains with at
    least two changes per connection count for the state-changing rate: a small drain
    measures the latency of a few hosts' stage-reboot chains, not what the server can take.
    """
    commit_stream(work, "prod", NEW)
    pushed = time.monotonic()
    push(work)
    revision = head_revision(work)
    while serve.revision() != revision:
        time.sleep(0.02)
    print(f"  the new revision in force {time.monotonic() - pushed:.1f} s after the push")
    deadline = time.monotonic() + caps.rollout
    beats, beat_seconds = 0, 0.0
    drains: list[Counts] = []
    restart = True
    while (left := deadline - time.monotonic()) > 1:
        cap = min(left, caps.heartbeat_round)
        round_ = load(
            generator,
            serve,
            "heartbeat round",
            Phase("each", conns, cap, restart=restart, skip_booted_on=NEW),
        )
        restart = round_.exhausted
        beats += round_.heartbeats
        beat_seconds += round_.elapsed
        if (left := deadline - time.monotonic()) <= 1:
            break
        drains.append(load(generator, serve, "drain", Phase("drain", conns, left)))
        if round_.exhausted and round_.heartbeats == 0 and drains[-1].changes == 0:
            print("  the rollout is complete")
            break
    table = Table()
    big = [d for d in drains if d.changes >= 2 * conns] or drains
    changes = sum(d.changes for d in big)
    change_seconds = sum(d.elapsed for d in big)
    change_rate = changes / max(change_seconds, 1e-9)
    beat_rate = beats / max(beat_seconds, 1e-9)
    print(
        f"  rollout: {sum(d.changes for d in drains):,} state-changing reports in "
        f"{len(drains)} drains; the rate is over the {len(big)} drains of >= {2 * conns:,} "
        f"({changes:,} in {change_seconds:.1f} s){'' if big is not drains else ' (none: all)'}; "
        f"{beats:,} heartbeats in {beat_seconds:.1f} s"
    )
    table.add(
        "rollout: state-changing reports",
        f"{change_rate:,.0f}/s",
        ">= 2,000/s",
        change_rate >= 2000,
    )
    table.add("rollout: heartbeats", f"{beat_rate:,.0f}/s", "", None)
    ratio = change_rate / max(beat_rate, 1e-9)
    table.add("rollout: changes / heartbeats", f"{100 * ratio:.0f} %", ">= 50 %", ratio >= 0.5)
    return table


class CanaryPusher:
    """Pushes that change only the canary's stream, each timed to the canary's long-poll."""

    def __init__(self, serve: Serve, work: Path) -> None:
        self.serve, self.work = serve, work
        self.pushes = 0
        self.windows: list[tuple[float, float]] = []  # (push started, answer) per push

    def one(self) -> tuple[float, float]:
        """(seconds from the push's start, seconds from its completion) to the answer."""
        port, booted = self.serve.port, canary_commit(0)
        status, body = request(
            port, "POST", "/v1/report", canary_report(booted, None), CANARY_TOKEN
        )
        assert status == 200, body
        known = json.loads(body)["assignmentId"]
        answer: dict[str, object] = {}

        def long_poll() -> None:
            path = "/v1/report?wait=300"
            status, body = request(
                port, "POST", path, canary_report(booted, known), CANARY_TOKEN, timeout=320
            )
            answer.update(json.loads(body), status=status, at=time.monotonic())

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.3)  # parked on the server
        self.pushes += 1
        target = canary_commit(self.pushes)
        commit_stream(self.work, "canary", target)  # the merge, ready to land
        started = time.monotonic()
        push(self.work)
        completed = time.monotonic()
        poller.join(timeout=330)
        seen = answer.get("target")
        if not isinstance(seen, dict) or seen.get("commit") != target:
            raise RuntimeError(f"the canary was answered {answer}")
        at = float(answer["at"])  # type: ignore[arg-type]
        self.windows.append((started, at))
        return at - started, at - completed

    def series(self, pushes: int, cap: float) -> tuple[list[float], list[float]]:
        """Up to ``pushes`` pushes, fewer if ``cap`` seconds pass; ms from start, from end."""
        from_start, from_end = [], []
        deadline = time.monotonic() + cap
        for _ in range(pushes):
            start, end = self.one()
            from_start.append(1000 * start)
            from_end.append(1000 * end)
            if time.monotonic() > deadline:
                break
        return from_start, from_end


def merge_to_canary(
    generator: LoadGenerator, serve: Serve, work: Path, pushes: int, cap: float
) -> Table:
    table = Table()
    pusher = CanaryPusher(serve, work)

    def judge(what: str, series: tuple[list[float], list[float]]) -> None:
        start, end = statistics.median(series[0]), statistics.median(series[1])
        print(
            f"  merge -> canary {what}, {len(series[0])} pushes: from the push's start "
            f"median {start:.0f} ms (max {max(series[0]):.0f}), from its completion median "
            f"{end:.0f} ms (max {max(series[1]):.0f})"
        )
        table.add(f"merge -> canary, {what} (push done)", f"{end:.0f} ms", "<= 100 ms", end <= 100)
        table.add(f"merge -> canary, {what} (push start)", f"{start:.0f} ms", "", None)

    judge("idle", pusher.series(pushes, cap))
    offered = 2000
    generator.start(Phase("mixed", 200, 3600, rate=offered))
    time.sleep(2)  # the background load settles
    began, cpu = time.monotonic(), serve.cpu_seconds()
    windows_before = len(pusher.windows)
    loaded = pusher.series(pushes, cap)
    ended = time.monotonic()
    generator.stop.set()
    background = generator.finish()
    server_cpu = (serve.cpu_seconds() - cpu) / (ended - began)
    judge("under load", loaded)
    windows = pusher.windows[windows_before:]
    inside = sum(background.answered_between(a, b) for a, b in windows)
    window_rate = inside / sum(b - a for a, b in windows)
    overall = background.answered_between(began, ended) / (ended - began)
    print(
        f"  background load during the pushes: {window_rate:,.0f} reports/s (offered "
        f"{offered:,}; {overall:,.0f}/s over the whole loaded series; "
        f"{background.changes:,} state-changing, {background.heartbeats:,} heartbeats in all); "
        f"server CPU {100 * server_cpu:.0f} %"
    )
    table.add(
        "background load during pushes",
        f"{window_rate:,.0f}/s",
        f">= 1,800/s (of {offered:,})",
        window_rate >= 0.9 * offered,
    )
    return table


def baseline_rss(tmp: Path) -> int:
    """VmRSS (KiB) of serve on a 200-host fleet after every host reported once."""
    bare, _ = fleet_repo(tmp, 200, 1)
    serve = Serve(bare, tmp / "state", tmp)
    generator = LoadGenerator(serve.port, 200, OLD, 1)
    try:
        serve.start()
        serve.wait_ready()
        load(generator, serve, "200-host fleet, every host once", Phase("each", 50, 60))
        rss = serve.rss_kib()
        serve.stop()
    finally:
        generator.close()
    return rss


def planning_pass(hosts: int, groups: int) -> float:
    sizes = ["--hosts", str(hosts), "--groups", str(groups), "--runs", "3"]
    out = subprocess.run(
        [sys.executable, str(HERE / "plan_large_fleet.py"), *sizes],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print("  " + out.strip().replace("\n", "\n  "))
    return float(out.split("full planning pass:")[1].split("median ")[1].split(" s")[0])


def timed(what: str, action: Callable[[], object]) -> None:
    start = time.monotonic()
    action()
    print(f"  {what}: {time.monotonic() - start:.1f} s")


def life_one(generator: LoadGenerator, serve: Serve, caps: Caps, conns: int) -> Counts:
    """An empty state directory: the generator's ceiling, then first reports ever; stop."""
    print("life 1: an empty state directory")
    serve.start()
    print(f"  ready after {serve.wait_ready():.1f} s")
    ceiling = load(generator, serve, "/healthz", Phase("get", conns, 3), per_report=False)
    canary = canary_report(canary_commit(0), None)
    request(serve.port, "POST", "/v1/report", canary, CANARY_TOKEN)
    load(generator, serve, "first reports ever", Phase("each", conns, caps.first_reports))
    timed("stopped (SIGTERM)", serve.stop)
    return ceiling


def life_two(generator: LoadGenerator, serve: Serve, caps: Caps, conns: int) -> Table:
    """Start-up on every host's stored report, the storms and the /metrics scrape."""
    table = Table()
    print("life 2: the same state directory, every host with a stored report")
    serve.start()
    ready = serve.wait_ready()
    canary = canary_report(canary_commit(0), None)
    status, _ = request(serve.port, "POST", "/v1/report", canary, CANARY_TOKEN)
    answered = time.monotonic() - serve.started
    assert status == 200
    print(f"  ready after {ready:.1f} s, first report answered after {answered:.1f} s")
    table.add("start-up to ready (stored reports)", f"{ready:.1f} s", "<= 10 s", ready <= 10)
    table.add("start-up to first answer", f"{answered:.1f} s", "<= 10 s", answered <= 10)
    for what, figure, bump in (
        ("restart storm (same state)", "restart storm: first reports", False),
        ("reboot storm (new boot ids)", "reboot storm: new boot ids", True),
    ):
        cap = caps.reboot_storm if bump else caps.storm
        storm = load(
            generator,
            serve,
            what,
            Phase("each", conns, cap, restart=True, bump_boot=bump, reconnect=not bump),
        )
        rate = storm.answered / storm.elapsed
        table.add(figure, f"{rate:,.0f}/s", ">= 2,000/s", rate >= 2000)
        if not storm.exhausted and not bump:  # RSS is taken once every host has reported
            rest = Phase("each", conns, 600)
            load(generator, serve, "the other hosts' first reports (not timed)", rest)
    scrape, size, series = metrics_scrape(serve)
    print(f"  /metrics: {scrape:.2f} s, {size / 2**20:.1f} MiB, {series:,} series")
    table.add(
        "/metrics scrape",
        f"{scrape:.2f} s ({size / 2**20:.1f} MiB, {series:,} series)",
        "<= 1 s",
        scrape <= 1,
    )
    return table


def big_fleet(tmp: Path, args: argparse.Namespace, table: Table) -> tuple[int, Counts]:
    """Every figure of the large fleet; returns its RSS after the storms and the ceiling."""
    caps, conns = QUICK if args.quick else FULL, args.connections
    start = time.monotonic()
    bare, work = fleet_repo(tmp, args.hosts, args.groups)
    print(f"  fleet repo written and pushed: {time.monotonic() - start:.1f} s")
    serve = Serve(bare, tmp / "state", tmp)
    generator = LoadGenerator(serve.port, args.hosts, OLD, args.workers)
    try:
        ceiling = life_one(generator, serve, caps, conns)
        written = store_missing_reports(serve.state, args.hosts)
        print(f"  stored reports written for the {written:,} hosts that had not reported")
        table.rows += life_two(generator, serve, caps, conns).rows
        rss = serve.rss_kib()
        print(f"  RSS after the storms: {rss / 2**20:.2f} GiB")
        print("rollout in progress")
        table.rows += rollout(generator, serve, work, caps, conns).rows
        print("merge -> first canary")
        table.rows += merge_to_canary(generator, serve, work, args.pushes, caps.pushes).rows
        print(f"  RSS at the end: {serve.rss_kib() / 2**20:.2f} GiB")
        timed("stopped (SIGTERM)", serve.stop)
    finally:
        generator.close()
        if serve.process is not None:
            serve.process.kill()
    return rss, ceiling


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 hosts, 40 groups")
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--groups", type=int)
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--pushes", type=int, default=5, help="canary pushes per series")
    args = parser.parse_args()
    args.hosts = args.hosts or (20_000 if args.quick else 100_000)
    args.groups = args.groups or (40 if args.quick else 200)
    began = time.monotonic()
    print(f"fleet: {args.hosts:,} hosts in {args.groups} groups (+ 1 canary)")
    table = Table()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "big").mkdir()
        rss, ceiling = big_fleet(tmp / "big", args, table)
        print("memory baseline: a 200-host fleet")
        (tmp / "small").mkdir()
        small = baseline_rss(tmp / "small")
    per_host = (rss - small) / (args.hosts - 200)
    print(f"  RSS {small / 1024:.0f} MiB at 200 hosts, {rss / 1024:.0f} MiB at {args.hosts:,}")
    table.add(
        "RSS per host", f"{per_host:.1f} KiB ({rss / 2**20:.2f} GiB)", "<= 4 KiB", per_host <= 4
    )
    print("full planning pass (benchmarks/plan_large_fleet.py)")
    full = planning_pass(args.hosts, args.groups)
    table.add("full planning pass", f"{full:.3f} s", "<= 0.5 s", full <= 0.5)
    # /healthz is bounded by the server too; what the generator could do alone is what its
    # processes' CPU allows: requests per CPU-second, times its share of the machine.
    limit = ceiling.answered / ceiling.elapsed
    alone = args.workers * ceiling.answered / max(ceiling.cpu, 1e-9)
    table.add(
        "load generator (/healthz)",
        f"{limit:,.0f}/s; its CPU allows {alone:,.0f}/s",
        "above the rates",
        None,
    )
    print(
        f"\n{args.hosts:,} hosts, {args.groups} groups; run took {time.monotonic() - began:.0f} s"
    )
    table.print()


if __name__ == "__main__":
    main()
