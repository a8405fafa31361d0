"""Three real `reconciler serve` replicas on one PostgreSQL database, and the one planning
the rollout's group SIGKILLed at seeded random moments, at least 20 times (docs/ha.md).

The fleet is the crash test's (tests/test_crash_serve.py): one group of ten Dublin hosts,
two with a bad build, a reboot budget of two. The hosts (tests/agent_fleet.py) send each
report to one of the three replicas at random, as a load balancer would; a replica that does
not hold the group's lease forwards the report to the one that does. Each kill is of the
replica holding the group's lease, read from the database; the killed replica is started
again at once (a new process: a new holder id). After every fifth kill the new holder is
frozen with SIGSTOP until another replica has taken the group over, then resumed: it must
not write a decision with its lost lease (the fence). What must hold:

- another replica takes the group over within the lease's time (ttl + a renewal round);
- no decision is made twice and the reboot budget is never exceeded, by the event log and
  by what the hosts did (the crash test's checks, unchanged);
- no event is lost: every reboot a host was told to make is in the event log;
- the rollout ends as one without kills does: NEW done on every host, once.

``RECONCILER_FAILOVER_SEED`` picks another seed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg

from reconciler.state.store import Store
from tests.agent_fleet import AgentFleet, Build
from tests.serve_process import ServeProcess
from tests.test_crash_serve import (
    BUILDS,
    GROUP,
    HOSTS,
    NEW,
    OLD,
    crash_fleet,
    event_violations,
    settled,
    told_violations,
)
from tests.test_gitsource import Remote, replace

SEED = int(os.environ.get("RECONCILER_FAILOVER_SEED", "20261130"))
KILLS = 20
REPLICAS = 3
LEASE_TTL = timedelta(seconds=2)
#: A lease lost by a kill is free at most ttl after its last renewal; a survivor's next round
#: (every ttl / 3) takes it; a round itself takes a few database round trips.
TAKEOVER_LIMIT = LEASE_TTL + LEASE_TTL / 3 + timedelta(seconds=1)
RUN_BUDGET_SECONDS = 300.0


@dataclass(frozen=True)
class Takeover:
    killed: str  # the replica's URL
    token_before: int
    token_after: int
    seconds: float


def lease_of(url: str, group: str) -> tuple[str, int] | None:
    """The current, unexpired holder of ``group``'s lease and its token."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT holder, token FROM group_leases "
            "WHERE group_name = %s AND expires_at > clock_timestamp()",
            (group,),
        ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def completed(url: str, commit: str) -> bool:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'rollout_completed' AND commit_id = %s",
            (commit,),
        ).fetchone()
    return bool(row and row[0])


class Cluster:
    def __init__(self, tmp: Path, database: str) -> None:
        self.database = database
        self.origin = Remote(tmp)
        self.origin.commit("one group for the failover test", crash_fleet)
        self.replicas: list[ServeProcess] = []
        for index in range(REPLICAS):
            replica = ServeProcess(self.origin.bare, tmp / f"state-{index}", tmp / f"logs-{index}")
            replica.extra_args = [
                "--store",
                database,
                "--advertise-url",
                replica.url,
                "--lease-ttl",
                f"{int(LEASE_TTL.total_seconds())}s",
            ]
            self.replicas.append(replica)
        self.fleet = AgentFleet([replica.url for replica in self.replicas])
        for index, host in enumerate(HOSTS):
            self.fleet.add(
                host, f"demo-token-{host}", OLD, BUILDS.get(host, Build.GOOD), SEED + index
            )
        self.pushed = threading.Event()
        self.deadline = time.monotonic() + RUN_BUDGET_SECONDS

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait_ready()
        self.fleet.start()
        threading.Thread(target=self._push_once_in_sync, daemon=True).start()

    def _push_once_in_sync(self) -> None:
        while not self.pushed.is_set() and time.monotonic() < self.deadline:
            if settled(self.fleet, OLD):
                self.origin.commit(
                    "production: 9.20261125.0", replace("streams/production.yaml", OLD, NEW)
                )
                self.pushed.set()
            time.sleep(0.05)

    def holder(self) -> tuple[ServeProcess, int] | None:
        lease = lease_of(self.database, GROUP)
        if lease is None:
            return None
        url = lease[0].partition("#")[0]
        found = [replica for replica in self.replicas if replica.url == url]
        return (found[0], lease[1]) if found else None

    def kill_the_holder(self) -> Takeover | None:
        held = self.holder()
        if held is None or held[0].process is None:
            return None
        replica, token = held
        replica.kill()
        killed_at = time.monotonic()
        replica.start()  # a new process: a new holder id, no lease of its own
        while True:
            self.check_time("waiting for a takeover")
            lease = lease_of(self.database, GROUP)
            if lease is not None and lease[1] > token:
                return Takeover(replica.url, token, lease[1], time.monotonic() - killed_at)
            time.sleep(0.02)

    def freeze_the_holder(self) -> Takeover | None:
        """SIGSTOP the holder past its lease, wait for another to take over, SIGCONT it: the
        resumed replica believes nothing changed until its next round, and anything it
        tries to write meanwhile meets the fence."""
        held = self.holder()
        if held is None or held[0].process is None:
            return None
        replica, token = held
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            while True:
                self.check_time("waiting for a takeover from a frozen replica")
                lease = lease_of(self.database, GROUP)
                if lease is not None and lease[1] > token:
                    took = time.monotonic() - frozen_at
                    break
                time.sleep(0.02)
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        return Takeover(replica.url, token, lease[1], took)

    def done(self) -> bool:
        return self.pushed.is_set() and settled(self.fleet, NEW) and completed(self.database, NEW)

    def check_time(self, doing: str) -> None:
        if time.monotonic() > self.deadline:
            told = {h: (t.action, t.state, t.target) for h, t in self.fleet.last_answers().items()}
            tails = "\n".join(replica.tail()[-1500:] for replica in self.replicas)
            raise AssertionError(f"seed {SEED}: still {doing}; hosts last told {told}\n{tails}")

    def stop(self) -> None:
        self.fleet.stop()
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.stop()
            elif replica.process is not None:
                replica.process.wait()


def test_replicas_survive_20_kills_of_the_lease_holder_without_a_double_decision(
    tmp_path: Path, postgres_url: str
) -> None:
    rng = random.Random(SEED)
    cluster = Cluster(tmp_path, postgres_url)
    takeovers: list[Takeover] = []
    freezes: list[Takeover] = []  # SIGSTOP past the lease, then SIGCONT
    try:
        cluster.start()
        while len(takeovers) < KILLS or not cluster.done():
            cluster.check_time(f"running after {len(takeovers)} kills")
            time.sleep(rng.uniform(0.2, 1.5))
            if len(takeovers) < KILLS:
                takeover = cluster.kill_the_holder()
                if takeover is not None:
                    takeovers.append(takeover)
                if len(takeovers) % 5 == 0 and (frozen := cluster.freeze_the_holder()):
                    freezes.append(frozen)
        for replica in cluster.replicas:
            replica.wait_ready()
    finally:
        cluster.stop()
    store = Store(postgres_url)
    events = store.events()
    store.close()

    slow = [t for t in takeovers + freezes if t.seconds > TAKEOVER_LIMIT.total_seconds()]
    assert len(freezes) >= 3
    assert not slow, f"takeovers slower than {TAKEOVER_LIMIT}: {slow}"
    assert all(t.token_after > t.token_before for t in takeovers)
    assert event_violations(events) == []
    assert told_violations(cluster.fleet) == []
    decided = {(e.host, e.commit) for e in events if e.kind == "reboot_allowed"}
    told_to_reboot = {(t.host, t.target) for t in cluster.fleet.answers if t.action == "reboot"}
    assert told_to_reboot <= decided, f"told without a decision: {told_to_reboot - decided}"
    print(
        f"failover: {len(takeovers)} kills of the lease holder; takeover median "
        f"{sorted(t.seconds for t in takeovers)[len(takeovers) // 2]:.2f} s, max "
        f"{max(t.seconds for t in takeovers):.2f} s (limit {TAKEOVER_LIMIT.total_seconds()} s); "
        f"{len(freezes)} SIGSTOPs past the lease, taken over in "
        f"{max(t.seconds for t in freezes):.2f} s at most; "
        f"violations: 0"
    )
