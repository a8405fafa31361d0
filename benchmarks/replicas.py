"""Replicas over PostgreSQL: reports/s and the database's cost per report, against SQLite.

Three set-ups of the real `reconciler serve` (the console script), each on a fresh store, on
the fleet of benchmarks/fleet_serve.py (100,000 hosts in 200 groups by default, + 1 canary):

  A. one replica on SQLite (the embedded default: --state-dir only);
  B. one replica on PostgreSQL (--store postgresql://..., --advertise-url, --lease-ttl 15s);
  C. two replicas on the same PostgreSQL database; the load generator opens its connections
     to their two URLs in turn, so each takes half the load, and forwards to the other the
     reports of the groups it does not hold (about half of what it receives).

The PostgreSQL server (benchmarks/postgres_server.py) is started once, in a directory under
/tmp, as the postgres user when run as root, with PostgreSQL's durable defaults (fsync on,
synchronous_commit on); each set-up gets a database of its own; it is stopped at the end.
The agents are benchmarks/loadgen.py (several processes of asyncio keep-alive clients).

What runs, in order, for each set-up:

1. The replicas start; with two, the run waits until the group leases are split between
   them (the first one up takes every group, then gives back half).
2. First reports: every host's first report ever (timed up to the cap; the rest are sent
   untimed, so that every host has reported once). The database's size growth (SQLite: the
   file's, with its WAL) divided by the hosts is the size per host.
3. Idle, 10 s: what the leases' rounds alone write (PostgreSQL).
4. Heartbeats: every host reports its unchanged state again, up to the cap.
5. Reboot storm: every host reports a new boot id (the same commit), a state change, up to
   the cap.

For each phase: reports/s, errors (any answer but 200), the CPU of each replica, of
PostgreSQL's processes and of the generator; and on PostgreSQL, from its own statistics
before and after (pg_stat_user_tables, pg_current_wal_lsn(), pg_stat_wal): rows inserted or
updated per report (in all and per table), WAL bytes per report, WAL syncs per report. Last,
a projection for 1,000,000 hosts reporting every 60 s, with its arithmetic.

The machine's cores are shared by the replicas, PostgreSQL and the generator: two replicas
on 2 cores cannot show what two machines would; the per-replica rate is the figure to use.
Usage: python benchmarks/replicas.py [--quick] [--hosts N] [--groups N] [--workers N]
       [--connections N]     (--quick: 20,000 hosts in 40 groups, shorter caps)
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from fleet_serve import OLD, Serve, fleet_repo
from loadgen import Counts, LoadGenerator, Phase
from postgres_server import PostgresServer, Snapshot

TARGET_HOSTS, INTERVAL = 1_000_000, 60
LEASE_TTL = "15s"


@dataclass
class Caps:
    first: float
    heartbeats: float
    reboots: float


FULL, QUICK = Caps(30, 25, 25), Caps(15, 10, 10)


@dataclass
class Cost:
    """What one phase cost the database, per report."""

    reports: int
    rows: dict[str, float]
    wal_bytes: float
    wal_syncs: float
    size_bytes: int  # growth over the phase, in all

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot, reports: int) -> Cost:
        n = max(reports, 1)
        rows = {
            table: (after.rows.get(table, 0) - before.rows.get(table, 0)) / n
            for table in after.rows
        }
        return cls(
            reports=reports,
            rows={t: r for t, r in sorted(rows.items()) if r},
            wal_bytes=(after.wal_lsn - before.wal_lsn) / n,
            wal_syncs=(after.wal_syncs - before.wal_syncs) / n,
            size_bytes=after.database_bytes - before.database_bytes,
        )

    def print(self, per: str = "report") -> None:
        tables = ", ".join(f"{t} {r:.2f}" for t, r in self.rows.items())
        print(
            f"    PostgreSQL per {per}: {sum(self.rows.values()):.2f} rows ({tables or '-'}); "
            f"{self.wal_bytes:,.0f} WAL bytes; {self.wal_syncs:.3f} WAL syncs"
        )


@dataclass
class Result:
    name: str
    replicas: int
    rates: dict[str, float] = field(default_factory=dict)  # phase -> reports/s, all replicas
    costs: dict[str, Cost] = field(default_factory=dict)
    size_per_host: float = 0.0
    idle: Cost | None = None


class SetUp:
    """``replicas`` serve processes on SQLite (``database`` None) or one PostgreSQL database."""

    def __init__(
        self,
        name: str,
        tmp: Path,
        bare: Path,
        replicas: int,
        postgres: PostgresServer | None,
    ) -> None:
        self.name, self.postgres = name, postgres
        self.database = postgres.new_database() if postgres else None
        self.tmp = tmp
        self.serves = []
        for index in range(replicas):
            serve = Serve(bare, tmp / f"state-{index}", tmp, name=f"replica-{index}")
            if self.database:
                serve.extra_args = ["--store", self.database, "--advertise-url", serve.url]
                serve.extra_args += ["--lease-ttl", LEASE_TTL]
            self.serves.append(serve)

    def start(self, groups: int) -> None:
        for serve in self.serves:
            serve.start()
        for serve in self.serves:
            print(f"  {serve.name} ready after {serve.wait_ready():.1f} s")
        if len(self.serves) > 1:
            self.wait_for_split(groups)

    def wait_for_split(self, groups: int, timeout: float = 120) -> None:
        """Until each replica holds its share of the group leases (+ the write-back's)."""
        assert self.database is not None
        start = time.monotonic()
        share = (groups + 2) // len(self.serves)  # the fleet's groups, the canary's
        while True:
            with psycopg.connect(self.database, autocommit=True) as connection:
                held = connection.execute(
                    "SELECT split_part(holder, '#', 1), count(*) FROM group_leases "
                    "WHERE expires_at > clock_timestamp() GROUP BY 1"
                ).fetchall()
            counts = {str(url): int(n) for url, n in held}
            if len(counts) == len(self.serves) and min(counts.values()) >= share:
                print(f"  leases split after {time.monotonic() - start:.1f} s: {counts}")
                return
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the leases did not split: {counts}")
            time.sleep(0.25)

    def snapshot(self, settle: float = 15.0) -> Snapshot | None:
        if self.postgres is None or self.database is None:
            return None
        return self.postgres.snapshot(self.database, settle)

    def sqlite_bytes(self) -> int:
        state = self.serves[0].state
        return sum(p.stat().st_size for p in state.glob("state.sqlite*"))

    def stop(self) -> None:
        for serve in self.serves:
            if serve.process is not None:
                serve.stop()

    def errors_logged(self) -> list[str]:
        noted = ('"level": "error"', '"level": "critical"', "Traceback", '"level": "warning"')
        found = []
        for log in sorted(self.tmp.glob("replica-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if any(needle in line for needle in noted):
                    found.append(f"{log.name}: {line[:400]}")
        return found


def load(generator: LoadGenerator, setup: SetUp, what: str, phase: Phase) -> Counts:
    """Run ``phase``; print its rate, errors and every process's CPU."""
    cpus = [serve.cpu_seconds() for serve in setup.serves]
    database_cpu = setup.postgres.cpu_seconds() if setup.postgres else 0.0
    counts = generator.run(phase)
    seconds = counts.elapsed
    replica_cpu = ", ".join(
        f"{100 * (serve.cpu_seconds() - cpu) / seconds:.0f} %"
        for serve, cpu in zip(setup.serves, cpus, strict=True)
    )
    database = ""
    if setup.postgres:
        database = (
            f", PostgreSQL {100 * (setup.postgres.cpu_seconds() - database_cpu) / seconds:.0f} %"
        )
    print(
        f"  {what}: {counts.answered / seconds:,.0f}/s over {seconds:.1f} s "
        f"({counts.changes:,} state-changing, {counts.heartbeats:,} heartbeats, "
        f"{counts.errors} errors{'' if counts.exhausted else ', capped'}); CPU: replicas "
        f"{replica_cpu}{database}, generator {100 * counts.cpu / seconds:.0f} %"
    )
    return counts


def measure(setup: SetUp, args: argparse.Namespace, caps: Caps) -> Result:
    conns = args.connections
    result = Result(setup.name, len(setup.serves))
    print(f"\n{setup.name}")
    setup.start(args.groups)
    generator = LoadGenerator([s.port for s in setup.serves], args.hosts, OLD, args.workers)
    try:
        before, file_before = setup.snapshot(), setup.sqlite_bytes()
        first = load(generator, setup, "first reports", Phase("each", conns, caps.first))
        result.rates["first reports"] = first.answered / first.elapsed
        reported = first.answered
        if not first.exhausted:
            rest = load(
                generator, setup, "the other first reports (untimed)", Phase("each", conns, 900)
            )
            reported += rest.answered
        after = setup.snapshot()
        if before and after:
            cost = Cost.between(before, after, reported)
            cost.print()
            result.costs["first reports"] = cost
            result.size_per_host = cost.size_bytes / reported
            print(
                f"    database size: {before.database_bytes / 2**20:.1f} MiB before, "
                f"{after.database_bytes / 2**20:.1f} MiB after {reported:,} hosts' first "
                f"reports: {result.size_per_host:,.0f} bytes per host"
            )
            idle_before = setup.snapshot(settle=0)
            time.sleep(10)
            idle_after = setup.snapshot(settle=0)
            result.idle = Cost.between(idle_before, idle_after, 1)
            seconds = 10
            print(
                f"    idle {seconds:.1f} s (the leases' rounds): "
                f"{sum(result.idle.rows.values()) / seconds:.1f} rows/s, "
                f"{result.idle.wal_bytes / seconds:,.0f} WAL bytes/s, "
                f"{result.idle.wal_syncs / seconds:.2f} syncs/s"
            )
            result.idle.print(per=f"{seconds:.0f} s idle")
        else:
            time.sleep(2)  # the report store's writer catches up
            result.size_per_host = (setup.sqlite_bytes() - file_before) / reported
            print(
                f"    SQLite file (+ WAL): {file_before / 2**20:.1f} MiB before, "
                f"{setup.sqlite_bytes() / 2**20:.1f} MiB after {reported:,} hosts' first "
                f"reports: {result.size_per_host:,.0f} bytes per host"
            )
        for what, phase in (
            ("heartbeats", Phase("each", conns, caps.heartbeats, restart=True)),
            ("reboot storm", Phase("each", conns, caps.reboots, restart=True, bump_boot=True)),
        ):
            before = setup.snapshot()
            counts = load(generator, setup, what, phase)
            result.rates[what] = counts.answered / counts.elapsed
            after = setup.snapshot()
            if before and after:
                result.costs[what] = Cost.between(before, after, counts.answered)
                result.costs[what].print()
                growth = result.costs[what].size_bytes / max(counts.answered, 1)
                print(f"    database size growth: {growth:,.0f} bytes per report")
    finally:
        generator.close()
        setup.stop()
    problems = setup.errors_logged()
    print(f"  log lines at warning or above: {len(problems)}")
    for line in problems[:8]:
        print(f"    {line}")
    return result


def projection(results: list[Result]) -> None:
    rate = TARGET_HOSTS / INTERVAL
    needed = 1.5 * rate
    print(
        f"\nprojection: {TARGET_HOSTS:,} hosts every {INTERVAL} s = "
        f"{TARGET_HOSTS:,} / {INTERVAL} = {rate:,.0f} reports/s; with 50 % headroom "
        f"{rate:,.0f} x 1.5 = {needed:,.0f} reports/s of capacity"
    )
    for result in results:
        if result.name.startswith("A"):
            continue
        for what in ("heartbeats", "reboot storm"):
            per_replica = result.rates[what] / result.replicas
            print(
                f"  {result.name}, {what}: {result.rates[what]:,.0f}/s / {result.replicas} = "
                f"{per_replica:,.0f}/s per replica -> ceil({needed:,.0f} / {per_replica:,.0f}) "
                f"= {math.ceil(needed / per_replica)} replicas"
            )
    pg = next(r for r in results if r.name.startswith("C"))
    for what in ("heartbeats", "reboot storm"):
        cost = pg.costs[what]
        print(
            f"  database, all {what} ({pg.name}): WAL {cost.wal_bytes:,.0f} bytes/report x "
            f"{rate:,.0f}/s = {cost.wal_bytes * rate / 2**20:,.1f} MiB/s "
            f"({cost.wal_bytes * rate * 86400 / 2**40:,.2f} TiB/day); WAL syncs "
            f"{cost.wal_syncs:.3f}/report x {rate:,.0f}/s = {cost.wal_syncs * rate:,.0f}/s; rows "
            f"{sum(cost.rows.values()):.2f}/report x {rate:,.0f}/s = "
            f"{sum(cost.rows.values()) * rate:,.0f} rows/s"
        )
    history = pg.costs["heartbeats"].size_bytes / max(pg.costs["heartbeats"].reports, 1)
    first = pg.size_per_host
    print(
        f"  database size: {first:,.0f} bytes/host after one report x {TARGET_HOSTS:,} = "
        f"{first * TARGET_HOSTS / 2**30:,.1f} GiB; each later report keeps a history row "
        f"(up to 100 per host, trimmed every 20): growth measured {history:,.0f} bytes/report, "
        f"so at 100 rows per host ({first:,.0f} + 99 x {history:,.0f}) x {TARGET_HOSTS:,} = "
        f"{(first + 99 * history) * TARGET_HOSTS / 2**30:,.1f} GiB"
    )
    print(
        "  (WAL syncs per report depend on the concurrency: PostgreSQL syncs commits that "
        "wait together once; the figure is the one measured at this load)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 hosts, 40 groups")
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--groups", type=int)
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--connections", type=int, default=512)
    args = parser.parse_args()
    args.hosts = args.hosts or (20_000 if args.quick else 100_000)
    args.groups = args.groups or (40 if args.quick else 200)
    caps = QUICK if args.quick else FULL
    began = time.monotonic()
    print(f"fleet: {args.hosts:,} hosts in {args.groups} groups (+ 1 canary)")
    postgres = PostgresServer()
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bare, _ = fleet_repo(tmp, args.hosts, args.groups)
        try:
            postgres.start()
            print(f"PostgreSQL: {json.dumps(postgres.settings())}")
            for name, replicas, database in (
                ("A. one replica, SQLite", 1, None),
                ("B. one replica, PostgreSQL", 1, postgres),
                ("C. two replicas, PostgreSQL", 2, postgres),
            ):
                where = tmp / name[0]
                where.mkdir()
                results.append(measure(SetUp(name, where, bare, replicas, database), args, caps))
        finally:
            postgres.stop()
    print(f"\n{'set-up':<30} {'first reports':>14} {'heartbeats':>11} {'reboot storm':>13}")
    for r in results:
        rates = [
            f"{r.rates.get(k, 0):,.0f}/s" for k in ("first reports", "heartbeats", "reboot storm")
        ]
        print(f"{r.name:<30} {rates[0]:>14} {rates[1]:>11} {rates[2]:>13}")
    projection(results)
    print(
        f"\n{args.hosts:,} hosts, {args.groups} groups; run took {time.monotonic() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
