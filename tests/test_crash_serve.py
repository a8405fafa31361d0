"""`kill -9` of a real `reconciler serve` during a rollout, at least 30 times, with hosts that
keep reporting over HTTP: the event log and what the hosts were told must show no harm, and
the run must end as one without kills does (docs/rollouts.md, "Restarts" and "Guarantees").

A real bare Git fleet repo (the example fleet cut down to one group of ten Dublin hosts that
may reboot at any time), one daemon process at a time on the same state directory and port
(``tests/serve_process.py``), and simulated hosts (``tests/agent_fleet.py``). Two hosts have
a bad new build: one falls back to the old commit, one boots it with greenboot red; the
failure threshold is above two, so they fail without halting the rollout. The hosts start in
sync on OLD; once all of them were told so, NEW is pushed.

The daemon is killed at seeded random moments of three kinds: while it starts (before it
answers, or while it takes in the push), while it serves, and within half a second after a
host's changed report was answered, inside the window in which reports are only queued for
their batch. Kills go on until there were at least 30 and the rollout of NEW is done.
``RECONCILER_CRASH_SEED`` picks another seed; `make test` runs the default one.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from reconciler.git.notes import NOTED_KINDS
from reconciler.serve.writeback import NOTES_CURSOR
from reconciler.state.store import Store, StoredEvent
from tests.agent_fleet import AgentFleet, Build
from tests.serve_process import ServeProcess
from tests.test_daemon import NEW_PRODUCTION, OLD_PRODUCTION, no_urls
from tests.test_gitsource import Remote, replace

OLD, NEW = OLD_PRODUCTION, NEW_PRODUCTION
SEED = int(os.environ.get("RECONCILER_CRASH_SEED", "20261130"))
KILLS = 30
GROUP = "crash"
HOSTS = [f"dub-call-{i:02}" for i in range(1, 11)]
BUILDS = {"dub-call-04": Build.FALLS_BACK, "dub-call-07": Build.RED}
#: The state each kind of host ends in on NEW.
SETTLED_AS = {Build.GOOD: "in_sync", Build.FALLS_BACK: "rolled_back", Build.RED: "failed"}
MAX_UNAVAILABLE = 2
#: A run that takes longer is stuck (unkilled it takes ~25 s, killed ~45 s).
RUN_BUDGET_SECONDS = 240.0
#: The file the daemon flock()s around uses of its mirror: it stays, and locks nothing once
#: its holder is gone (unlike Git's own `<ref>.lock` files, which lock until deleted).
MIRROR_FLOCK = "reconciler.lock"
#: When a kill lands, with its weight: while starting, while serving, in a report batch window.
KILL_MOMENTS = {"starting": 3, "serving": 3, "batch_window": 4}

GROUP_FILE = f"""\
apiVersion: ostree-fleet/v1alpha1
kind: Group
name: {GROUP}
hosts: [{", ".join(HOSTS)}]
stream: production
canaries: [dub-call-01]
maintenanceWindows: []
rollout:
  waves: [1, 30%, 60%]
  soakTime: 3s
  healthTimeout: 10m
  rebootBudget: {{maxUnavailable: {MAX_UNAVAILABLE}}}
  failureThreshold: 3
"""


def crash_fleet(root: Path) -> None:
    """The example fleet with one group, no maintenance windows and nothing to preflight."""
    no_urls(root)
    for group in (root / "groups").glob("*.yaml"):
        group.unlink()
    (root / "groups" / f"{GROUP}.yaml").write_text(GROUP_FILE)


@dataclass(frozen=True)
class Kill:
    life: int
    moment: str  # a key of KILL_MOMENTS
    mid_rollout: bool  # the rollout of NEW was not yet done and settled on every host


@dataclass(frozen=True)
class Run:
    """What one run of the scenario left behind."""

    fleet: AgentFleet
    events: list[StoredEvent]
    kills: list[Kill]
    lives: int
    seconds: float
    exit_code: int  # of the last life, stopped with SIGTERM
    notes_behind: int  # noted events the rollout notes in the mirror do not cover
    stale_locks: list[str]  # Git lock files left in the state directory
    errors_logged: list[tuple[str, str]]


class Scenario:
    """One run: the fleet repo, the daemon, the hosts, and an operator who pushes NEW."""

    def __init__(self, tmp: Path, seed: int) -> None:
        tmp.mkdir()
        self.started = time.monotonic()
        self.deadline = self.started + RUN_BUDGET_SECONDS
        self.origin = Remote(tmp)
        self.origin.commit("one group for the crash test", crash_fleet)
        self.state = tmp / "state"
        self.server = ServeProcess(self.origin.bare, self.state, tmp / "logs")
        self.fleet = AgentFleet(self.server.url)
        for index, host in enumerate(HOSTS):
            build = BUILDS.get(host, Build.GOOD)
            self.fleet.add(host, f"demo-token-{host}", OLD, build, seed + index)
        self.seed, self.rng = seed, random.Random(seed)
        self.kills: list[Kill] = []
        self.pushed = threading.Event()

    def run(self, kills_wanted: int) -> Run:
        """Roll NEW out, killing the daemon until it was killed ``kills_wanted`` times and
        the rollout is done; then let the last life run a while and stop it."""
        operator = threading.Thread(target=self._push_once_in_sync, daemon=True)
        self.server.start()
        self.fleet.start()
        operator.start()
        try:
            while len(self.kills) < kills_wanted or (kills_wanted and not self.done()):
                self._check_time("killing")
                if self.server.process is None:
                    self.server.start()
                self._kill_at_a_random_moment()
            if self.server.process is None:
                self.server.start()
            self.server.wait_ready()  # a SIGTERM before it serves ends it the default way
            while not self.done():
                self._check_time("waiting for the rollout to finish")
                time.sleep(0.1)
            time.sleep(1.0)  # hosts go on reporting: nothing may change any more
            exit_code = self.server.stop()
        finally:
            self.pushed.set()
            self.fleet.stop()
            operator.join(timeout=5)
            if self.server.process is not None:
                self.server.kill()
        return self._result(exit_code)

    def _kill_at_a_random_moment(self) -> None:
        moment = self.rng.choices(list(KILL_MOMENTS), weights=list(KILL_MOMENTS.values()))[0]
        if moment == "starting":
            time.sleep(self.rng.uniform(0.0, 1.2))  # it answers after ~1 s: some land before
        else:
            self.server.wait_ready()
            if moment == "serving":
                time.sleep(self.rng.uniform(0.0, 1.0))
            else:  # a changed report was just answered; its batch is written within 0.5 s
                self.fleet.wait_for_change(self.fleet.changes(), timeout=1.5)
                time.sleep(self.rng.uniform(0.0, 0.5))
        self.kills.append(Kill(self.server.lives, moment, mid_rollout=not self.done()))
        self.server.kill()

    def _push_once_in_sync(self) -> None:
        while not self.pushed.is_set() and time.monotonic() < self.deadline:
            if settled(self.fleet, OLD):
                self.origin.commit(
                    "production: 9.20261125.0", replace("streams/production.yaml", OLD, NEW)
                )
                self.pushed.set()
            time.sleep(0.05)

    def done(self) -> bool:
        return (
            self.pushed.is_set()
            and settled(self.fleet, NEW)
            and rollout_completed(self.state / "state.sqlite", NEW)
        )

    def _check_time(self, doing: str) -> None:
        if time.monotonic() > self.deadline:
            told = {h: (t.action, t.state, t.target) for h, t in self.fleet.last_answers().items()}
            raise AssertionError(
                f"seed {self.seed}: still {doing} after {RUN_BUDGET_SECONDS} s and "
                f"{len(self.kills)} kills; hosts were last told {told}; Git lock files left: "
                f"{self.stale_locks()}; errors logged: {self.server.errors_logged()[-3:]}"
            )

    def stale_locks(self) -> list[str]:
        """Git lock files in the state directory."""
        return sorted(
            str(lock.relative_to(self.state))
            for lock in self.state.rglob("*.lock")
            if lock.name != MIRROR_FLOCK
        )

    def _result(self, exit_code: int) -> Run:
        store = Store(self.state / "state.sqlite")
        events, published = store.events(), store.cursor(NOTES_CURSOR)
        store.close()
        return Run(
            self.fleet,
            events,
            self.kills,
            self.server.lives,
            time.monotonic() - self.started,
            exit_code,
            notes_behind=sum(1 for e in events if e.kind in NOTED_KINDS and e.id > published),
            stale_locks=self.stale_locks(),
            errors_logged=self.server.errors_logged(),
        )


def rollout_completed(db: Path, commit: str) -> bool:
    """Whether the event log records a completed rollout of ``commit`` (read while the daemon
    runs: a WAL reader does not block it)."""
    try:
        with closing(sqlite3.connect(db, timeout=1)) as connection:
            row = connection.execute(
                "SELECT COUNT(*) FROM events WHERE kind = 'rollout_completed' AND commit_id = ?",
                (commit,),
            ).fetchone()
    except sqlite3.Error:  # not created yet, or busy
        return False
    return bool(row and row[0])


def settled(fleet: AgentFleet, commit: str) -> bool:
    """Every host was last told to do nothing, in the state its build earns on ``commit``."""
    last = fleet.last_answers()
    return all(
        (told := last.get(host)) is not None
        and (told.action, told.target) == ("none", commit)
        and told.state == (SETTLED_AS[BUILDS.get(host, Build.GOOD)] if commit == NEW else "in_sync")
        for host in HOSTS
    )


# -- what must hold ----------------------------------------------------------------------------


#: Events after which a host no longer counts against the reboot budget.
FINISHED_UPDATING = ("host_succeeded", "host_failed", "reboot_revoked", "superseded_host_finished")


def event_violations(events: list[StoredEvent]) -> list[str]:
    """Duplicate host steps, re-offers, the budget, waves and drift, from the event log."""
    found: list[str] = []
    steps: Counter[tuple[int | None, str | None, str]] = Counter()
    revoked: Counter[tuple[int | None, str | None]] = Counter()
    finished_on: dict[tuple[str | None, str | None], str] = {}  # (host, commit) -> how
    updating: set[str] = set()
    waves: dict[int | None, list[int | None]] = defaultdict(list)
    for e in events:
        where = f"event {e.id} {e.kind} {e.host or ''} (rollout {e.rollout}, {e.at:%H:%M:%S.%f})"
        steps[(e.rollout, e.host, e.kind)] += 1
        count = steps[(e.rollout, e.host, e.kind)]
        if e.kind == "host_drifted":
            found.append(f"{where}: drift, though nothing changed on the host: {e.message}")
        elif e.kind in ("host_offered", "host_succeeded", "host_failed") and count > 1:
            found.append(f"{where}: recorded {count} times for the host in this rollout")
        elif e.kind == "reboot_allowed" and count > 1 + revoked[(e.rollout, e.host)]:
            found.append(f"{where}: a reboot slot again, never revoked")
        elif e.kind == "reboot_revoked":
            revoked[(e.rollout, e.host)] += 1
        elif e.kind == "wave_opened":
            waves[e.rollout].append(e.wave)
        earlier = finished_on.get((e.host, e.commit))
        if e.kind in ("host_offered", "reboot_allowed") and earlier is not None:
            found.append(f"{where}: {(e.commit or '')[:12]} again, after the host {earlier} on it")
        if e.kind in ("host_succeeded", "host_failed"):
            finished_on.setdefault((e.host, e.commit), e.kind.removeprefix("host_"))
        # The reboot budget, replayed: allowed to reboot and not yet finished either way.
        if e.kind == "reboot_allowed" and e.host:
            updating.add(e.host)
            if len(updating) > MAX_UNAVAILABLE:
                found.append(f"{where}: {len(updating)} hosts updating: {sorted(updating)}")
        elif e.kind in FINISHED_UPDATING and e.host:
            updating.discard(e.host)
    found += [
        f"rollout {rollout}: waves opened in the order {opened}"
        for rollout, opened in waves.items()
        if opened != list(range(len(opened)))
    ]
    completed = [e for e in events if e.kind == "rollout_completed" and e.commit == NEW]
    if len(completed) != 1:
        found.append(f"the rollout of NEW completed {len(completed)} times")
    return found


def told_violations(fleet: AgentFleet) -> list[str]:
    """Re-offers and the budget, from what the hosts were told and did."""
    found = [
        f"{told.host} told to {told.action} {told.target[:12]}, which it runs"
        for told in fleet.answers
        if told.action in ("stage", "reboot") and told.target == told.booted
    ]
    for reboot in fleet.reboots:
        found += [
            f"{told.host} told to {told.action} {told.target[:12]} "
            f"{told.at - reboot.started:.2f} s after it rebooted into it"
            for told in fleet.answers
            if told.host == reboot.host
            and told.at > reboot.started
            and told.target == reboot.target
            and told.action in ("stage", "reboot")
        ]
    # Down from acting on `reboot` until the report that shows how it went was sent: the
    # server cannot free the slot before it has that report, so more at once is a breach.
    edges = sorted(
        [(r.started, 1, r.host) for r in fleet.reboots]
        + [(r.outcome_sent or float("inf"), -1, r.host) for r in fleet.reboots]
    )
    down: set[str] = set()
    for _, edge, host in edges:
        if edge < 0:
            down.discard(host)
            continue
        down.add(host)
        if len(down) > MAX_UNAVAILABLE:
            found.append(f"down for a reboot at once: {sorted(down)}")
    last = fleet.last_answers()
    for host in HOSTS:
        told, settled_as = last[host], SETTLED_AS[BUILDS.get(host, Build.GOOD)]
        if (told.action, told.state, told.target) != ("none", settled_as, NEW):
            found.append(f"{host} was last told {told.action}, {told.state}, {told.target}")
    return found


def daemon_violations(run: Run) -> list[str]:
    """What the daemon left besides rollout state: its state directory, notes and log."""
    found = [f"a lock file is left in the state directory: {lock}" for lock in run.stale_locks]
    if run.notes_behind:
        found.append(f"the rollout notes lack the last {run.notes_behind} noted events")
    lives: dict[str, list[str]] = defaultdict(list)
    for life, what in run.errors_logged:
        lives[what].append(life)
    found += [
        f"logged {len(where)} times, first by {where[0]}: {what[:500]}"
        for what, where in lives.items()
    ]
    return found


def outcome(run: Run) -> dict[str, object]:
    """How a run ends, to compare a run with kills to one without."""
    numbers = {e.rollout for e in run.events if e.kind == "rollout_started" and e.commit == NEW}
    rollout = [e for e in run.events if e.rollout in numbers]
    return {
        "rollouts started": [e.commit for e in run.events if e.kind == "rollout_started"],
        "steps of the rollout of NEW": [(e.kind, e.wave) for e in rollout if e.host is None],
        "steps of each host": {h: [e.kind for e in rollout if e.host == h] for h in HOSTS},
        "hosts (on NEW, staged, greenboot, boots)": {
            name: (h.booted == NEW, h.staged, h.greenboot, h.boots)
            for name, h in run.fleet.hosts.items()
        },
        "last told": {
            h: (t.action, t.state, t.target) for h, t in run.fleet.last_answers().items()
        },
    }


def differences(calm: Run, killed: Run) -> list[str]:
    before, after = outcome(calm), outcome(killed)
    return [
        f"{what}: without kills {before[what]}, with kills {after[what]}"
        for what in before
        if before[what] != after[what]
    ]


def test_serve_killed_30_times_during_a_rollout_does_no_harm(tmp_path: Path) -> None:
    calm = Scenario(tmp_path / "calm", SEED).run(kills_wanted=0)
    unkilled = event_violations(calm.events) + told_violations(calm.fleet) + daemon_violations(calm)
    assert not unkilled, f"seed {SEED}, without kills:\n" + "\n".join(unkilled)

    killed = Scenario(tmp_path / "killed", SEED).run(kills_wanted=KILLS)
    violations = (
        event_violations(killed.events)
        + told_violations(killed.fleet)
        + differences(calm, killed)
        + daemon_violations(killed)
    )
    moments = ", ".join(f"{n} {m}" for m, n in Counter(k.moment for k in killed.kills).items())
    figures = (
        f"seed {SEED}: {len(killed.kills)} kills ({moments}; "
        f"{sum(k.mid_rollout for k in killed.kills)} before the rollout of NEW was done), "
        f"{killed.lives} lives, {killed.seconds:.1f} s (without kills {calm.seconds:.1f} s); "
        f"checked {len(killed.events)} events, {len(killed.fleet.answers)} answers to hosts "
        f"({killed.fleet.unanswered} reports unanswered), {len(killed.fleet.reboots)} reboots; "
        f"violations found: {len(violations)}"
    )
    print("\n" + figures)
    assert len(killed.kills) >= KILLS, figures
    assert killed.exit_code == 0, f"{figures}; the last life did not stop cleanly"
    assert not violations, figures + "\n" + "\n".join(violations[:30])
