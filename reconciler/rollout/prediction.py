"""When a revision's rollouts will finish: the real planner, run in virtual time.

Nothing here guesses how the engine behaves: every group is planned by :func:`plan_group`
through an :class:`~reconciler.rollout.engine.Engine` on an in-memory store, on a manual
clock, with simulated hosts that do what they are told and take the time the
:class:`Assumptions` say (staging, then rebooting and passing greenboot). Time jumps from one
event to the next: a host finishing its stage or its reboot, or a plan's own look-again time
(a soak ending, a window opening, a freeze ending). So windows in each site's time zone,
freezes, reboot budgets, waves, soaks and `dependsOn` shape the prediction exactly as they
shape the real rollout, DST included.

Two things the daemon learns from outside a pass are assumed: every health check passes at each
of its evaluations (the first as the soak begins, then every `interval`), and the fleet's own
promotions (``FleetChanges``, given by the caller: promotion sits above this package) happen
the moment they are due.

A prediction stops when every group is done, when nothing more can happen (a group waits for
something that never comes: a pause, a halt, a window that never opens within the horizon),
or at the horizon; it says which groups did not finish and why, in the planner's own words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from reconciler.clock import ManualClock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.rollout.assumedgates import evaluations_due, next_evaluation, passing_evaluations
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.engine import Engine
from reconciler.rollout.gates import GateSample
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPhase, GroupPlan
from reconciler.rollout.spec import GroupSpec
from reconciler.rollout.state import GroupState


@dataclass(frozen=True, slots=True)
class Assumptions:
    """How long hosts take, and how far to look."""

    #: From the offer to the new build staged (download and deploy).
    stage: timedelta = timedelta(minutes=10)
    #: From the permission to reboot to the host back on the new build, greenboot green.
    reboot: timedelta = timedelta(minutes=10)
    #: Stop predicting this long after the start.
    horizon: timedelta = timedelta(days=30)
    #: What-if: hosts whose new build fails greenboot (they fall back to the old one).
    failing: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class WaveTimeline:
    number: int  # 1-based
    hosts: int
    opened: datetime | None
    done: datetime | None


#: The phases in which a group waits rather than updates hosts.
WAITING_PHASES = frozenset(
    {
        GroupPhase.SOAKING,
        GroupPhase.WAITING,
        GroupPhase.WAITING_WINDOW,
        GroupPhase.FROZEN,
        GroupPhase.PAUSED,
        GroupPhase.HALTED,
    }
)


@dataclass(frozen=True, slots=True)
class Stretch:
    """A stretch of time in which a group waited, in the planner's own words."""

    start: datetime
    end: datetime
    phase: str  # a waiting GroupPhase: soaking, waiting, waiting_window, frozen, …
    why: str  # the planner's reason as the wait began

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class GroupTimeline:
    """One group's predicted rollout; ``rolls_out`` False: its hosts run the target already."""

    group: str
    time_zone: str | None
    rolls_out: bool
    started: datetime | None  # its first wave opened (None: never, within the horizon)
    finished: datetime | None
    waves: tuple[WaveTimeline, ...]
    #: Why the group did not finish (None when it did or had nothing to do).
    unfinished: str | None = None
    depends_on: tuple[str, ...] = ()
    #: When a promotion gave the group its target (None: the revision predicted gave it).
    promoted: datetime | None = None
    #: Since when it waited for that promotion with nothing to do (None: it was rolling out
    #: another commit, which the promotion superseded).
    idle_since: datetime | None = None
    #: Where it waited, from the merge (or the promotion) to the end, in time order.
    stretches: tuple[Stretch, ...] = ()
    #: The groups whose end its start waits for: what it depends on and, when a promotion
    #: gave it its target, the groups of the stream promoted from.
    after: tuple[str, ...] = ()

    def waits(self) -> list[tuple[timedelta, str]]:
        """How long the group waited, and why in the planner's words: for its stream's
        promotion, for what it depends on, for a soak, a window, a freeze."""
        found = []
        idle, promoted = self.idle_since, self.promoted
        if idle is not None and promoted is not None and promoted > idle:
            found.append((promoted - idle, "waiting for its stream's promotion"))
        found += [(s.length, f"{s.phase}: {s.why}") for s in self.stretches]
        return found

    def longest_wait(self) -> tuple[timedelta, str] | None:
        """The longest of :meth:`waits`."""
        return max(self.waits(), key=lambda wait: wait[0], default=None)


@dataclass(frozen=True, slots=True)
class Milestone:
    """Something that happens to the fleet itself during the rollouts: a promotion."""

    at: datetime
    what: str  # "production takes 2.0 from staging"
    stream: str  # the stream that changed
    source: str  # the stream whose build it took


@dataclass(frozen=True, slots=True)
class FleetChange:
    """What :class:`FleetChanges` says at one moment."""

    #: The revision to take in now (as the daemon would after a promotion commit), if any.
    fleet: Fleet | None = None
    milestones: tuple[Milestone, ...] = ()
    #: When something may change next without a pass planning anything (a promotion's soak
    #: ending), so the prediction looks again then.
    look_again: datetime | None = None
    #: What has not happened yet, and why ("production is not promoted: …"): the last
    #: answer's is what the prediction ends with.
    waiting: tuple[str, ...] = ()


#: What a host reports now (None: nothing yet), asked one host at a time: a prediction of
#: 10,000 hosts cannot afford every host's report at every step.
Reports = Callable[[str], HostObservation | None]


class FleetChanges(Protocol):
    """Changes to the fleet that the reconciler makes itself while rollouts run."""

    def __call__(
        self, fleet: Fleet, now: datetime, states: Mapping[str, GroupState], reports: Reports
    ) -> FleetChange: ...


def no_fleet_changes(
    fleet: Fleet, now: datetime, states: Mapping[str, GroupState], reports: Reports
) -> FleetChange:
    return FleetChange()


@dataclass(frozen=True, slots=True)
class Prediction:
    start: datetime
    assumptions: Assumptions
    groups: tuple[GroupTimeline, ...]
    passes: int  # planning passes run, for the benchmark
    milestones: tuple[Milestone, ...] = ()
    #: Changes to the fleet that did not happen by the end, and why (a promotion blocked by
    #: a failure, or still soaking at the horizon).
    pending: tuple[str, ...] = ()

    @property
    def end(self) -> datetime | None:
        """When the last group finishes; None when one does not."""
        ends = [g.finished for g in self.groups if g.rolls_out]
        if any(end is None for end in ends):
            return None
        return max((e for e in ends if e is not None), default=None)

    def critical_group(self) -> GroupTimeline | None:
        """The group that finishes last (or does not finish): what the end waits for."""
        rolling = [g for g in self.groups if g.rolls_out]
        if not rolling:
            return None
        unfinished = [g for g in rolling if g.finished is None]
        if unfinished:
            return unfinished[0]
        return max(rolling, key=lambda g: (g.finished, g.group))

    def critical_path(self) -> list[GroupTimeline]:
        """The chain of groups that sets the end, first to last: the group that finishes
        last, the group among those it starts after that finished last, and so on."""
        rolling = {g.group: g for g in self.groups if g.rolls_out}
        path: list[GroupTimeline] = []
        step = self.critical_group()
        while step is not None and step not in path:
            path.append(step)
            before = [rolling[n] for n in step.after if n in rolling and rolling[n].finished]
            step = max(before, key=lambda g: (g.finished, g.group), default=None)
        return path[::-1]


class _MemoryStore:
    """The engine's store, in memory: a prediction decides nothing anyone acts on."""

    def __init__(self, completed: Mapping[str, Iterable[str]], before: datetime) -> None:
        # Commits the groups completed before the prediction starts: what a group that
        # depends on them finds done, as the daemon's store would say.
        self._states: dict[str, GroupState] = {
            group: GroupState(group, completed_commits=dict.fromkeys(commits, before))
            for group, commits in completed.items()
        }

    def load_all(self) -> dict[str, GroupState]:
        return dict(self._states)

    def load(self, group: str) -> GroupState:
        return self._states.get(group) or GroupState(group)

    def save(
        self,
        state: GroupState,
        decisions: Sequence[Decision],
        basis: Mapping[str, HostObservation] | None = None,
        *,
        fence: object = None,
    ) -> None:
        self._states[state.group] = state


@dataclass
class _Host:
    name: str
    booted: str | None
    staged: str | None = None
    boots: int = 1
    busy_until: datetime | None = None  # staging or rebooting until then
    rebooting: bool = False
    staging: str | None = None  # the build being staged until busy_until (not yet reported)
    seen: HostObservation | None = None

    def finish(self, assumed: Assumptions) -> None:
        """The stage or the reboot under way took its time: a rebooted host is back on the
        staged build (or fell back from a failing one, as greenboot does)."""
        self.busy_until = None
        if self.staging is not None:  # staged now: the next report says so
            self.staged, self.staging = self.staging, None
        elif self.rebooting:
            self.rebooting, self.boots = False, self.boots + 1
            if self.name not in assumed.failing and self.staged is not None:
                self.booted = self.staged
            self.staged = None

    def obey(self, action: Action, target: str, now: datetime, assumed: Assumptions) -> None:
        if self.busy_until is not None:
            return
        if action is Action.STAGE and target not in (self.staged, self.booted):
            self.staging, self.busy_until = target, now + assumed.stage
        elif action is Action.REBOOT and self.staged == target:
            self.rebooting, self.busy_until = True, now + assumed.reboot
        elif action is Action.UNSTAGE:
            self.staged = None

    def observe(self, now: datetime) -> HostObservation | None:
        if not self.rebooting and self.booted is not None:
            self.seen = HostObservation(
                self.name,
                now,
                self.booted,
                f"{self.name}-boot-{self.boots}",
                Greenboot.GREEN,
                self.staged,
            )
        return self.seen


@dataclass
class _Record:
    retargeted: datetime | None = None  # the group's target moved (a promotion) then
    idle_since: datetime | None = None  # …after waiting for it since then (None: it was busy)
    finished: datetime | None = None
    opened: dict[int, datetime] = field(default_factory=dict)
    done: dict[int, datetime] = field(default_factory=dict)
    stretches: list[Stretch] = field(default_factory=list)
    #: The wait under way: since when, in which phase, and why.
    waiting: tuple[datetime, str, str] | None = None

    def phase_at(self, now: datetime, phase: GroupPhase, why: str) -> None:
        """The group's phase after a pass at ``now``: a wait begins, goes on or ends."""
        if self.waiting is not None and self.waiting[1] == phase.value:
            return
        self.close(now)
        if phase in WAITING_PHASES:
            self.waiting = (now, phase.value, why)

    def close(self, now: datetime) -> None:
        if self.waiting is not None:
            since, phase, why = self.waiting
            if now > since:
                self.stretches.append(Stretch(since, now, phase, why))
            self.waiting = None


def predict(
    fleet: Fleet,
    start: datetime,
    booted: Mapping[str, str | None],
    assumptions: Assumptions = Assumptions(),
    fleet_changes: FleetChanges = no_fleet_changes,
    *,
    completed: Mapping[str, Iterable[str]] | None = None,
    stopped: Mapping[str, str] | None = None,
) -> Prediction:
    """Predict ``fleet``'s rollouts from ``start``, each host starting on ``booted[host]``
    (a host missing or None there never reports: the planner waits for it as it would).
    ``completed``: the commits each group completed before ``start`` (its dependents need
    not wait for them again); ``stopped``: groups that will not move, and why (a rollout
    halted on the running reconciler, which only a `resume` in the fleet repo goes on)."""
    simulation = _Simulation(fleet, start, booted, assumptions, completed or {}, stopped or {})
    end = start + assumptions.horizon
    milestones: list[Milestone] = []
    pending: tuple[str, ...] = ()
    while True:
        now = simulation.clock.now()
        simulation.plan_due_groups(now)
        # Asked after the passes, which may have just finished what a promotion waits for.
        change = fleet_changes(
            simulation.fleet, now, simulation.engine.states(), simulation.reports_at(now)
        )
        milestones += change.milestones
        pending = change.waiting
        if change.fleet is not None:
            simulation.take_in(change.fleet)
            simulation.plan_due_groups(now)
        wake = simulation.next_event(now, change.look_again)
        done = simulation.all_done() and change.look_again is None and change.fleet is None
        if wake is not None and wake > end and change.look_again is not None:
            # Stopped by the horizon while a change waits: say how it stands then.
            simulation.clock.advance(end - now)
            states, reports = simulation.engine.states(), simulation.reports_at(end)
            pending = fleet_changes(simulation.fleet, end, states, reports).waiting
        if wake is None or wake > end or done:
            break
        simulation.clock.advance(wake - now)
    for record in simulation.records.values():  # a wait under way lasts to the horizon
        record.close(end)
    return Prediction(
        start,
        assumptions,
        tuple(
            sorted(
                [
                    _timeline(
                        simulation.fleet, group, simulation.records[group], plan, booted, milestones
                    )
                    for group, plan in simulation.plans.items()
                ]
                + [
                    _stopped_timeline(simulation.fleet, group, why)
                    for group, why in simulation.stopped.items()
                    if group in simulation.fleet.groups
                ],
                key=lambda timeline: timeline.group,
            )
        ),
        simulation.passes,
        tuple(milestones),
        pending,
    )


class _Simulation:
    """The engine, its simulated hosts and what a prediction records, at one moment."""

    def __init__(
        self,
        fleet: Fleet,
        start: datetime,
        booted: Mapping[str, str | None],
        assumptions: Assumptions,
        completed: Mapping[str, Iterable[str]],
        stopped: Mapping[str, str],
    ) -> None:
        self.start = start
        self.clock = ManualClock(start)
        store = _MemoryStore(completed, start - timedelta(seconds=1))
        self.engine: Engine[_MemoryStore] = Engine(store, self.clock)
        self.stopped = stopped
        self.assumptions = assumptions
        self.hosts = {name: _Host(name, booted.get(name)) for name in fleet.hosts}
        self.records = {group: _Record() for group in fleet.groups}
        self.plans: dict[str, GroupPlan] = {}
        self.observed: dict[str, HostObservation] = {}
        self.samples: dict[str, list[GateSample]] = {}
        #: Hosts staging or rebooting, until when: the only ones whose state time changes
        #: (a prediction of 100,000 hosts must not look at every host at every step).
        self.busy: dict[str, datetime] = {}
        self.passes = 0
        self.fleet = fleet
        self._use(fleet)
        self.dirty = set(fleet.groups)  # groups to plan at this instant

    def _use(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.engine.use_fleet(fleet)
        _never_stale(self.engine, self.assumptions.horizon + timedelta(days=1))
        self.dependents: dict[str, set[str]] = {group: set() for group in fleet.groups}
        for name, model in fleet.groups.items():
            for dependency in model.depends_on:
                self.dependents.setdefault(dependency, set()).add(name)

    def take_in(self, fleet: Fleet) -> None:
        """A new revision (a promotion): groups whose target moved start a new timeline."""
        before = {group: plan.spec.target.commit for group, plan in self.plans.items()}
        self._use(fleet)
        for group in fleet.groups:
            if before.get(group) != fleet.target(group).commit:
                self.records[group] = _Record(
                    retargeted=self.clock.now(), idle_since=self._idle_since(group)
                )
                self.samples.pop(group, None)
        self.dirty |= set(fleet.groups)

    def _idle_since(self, group: str) -> datetime | None:
        """Since when ``group`` has had nothing to do (its rollout done, or in sync from the
        start); None while a rollout of another commit is under way."""
        plan = self.plans.get(group)
        if plan is None or plan.status.phase in (GroupPhase.IN_SYNC, GroupPhase.EMPTY):
            return self.records[group].finished or self.start
        return None

    def reports_at(self, now: datetime) -> Reports:
        """What each host would report now (simulated agents always do)."""
        return lambda name: self.hosts[name].observe(now) if name in self.hosts else None

    def plan_due_groups(self, now: datetime) -> None:
        """Plan every group something happened to: a host done with a step, a plan's own
        look-again, a health-check evaluation, a dependency completed."""
        for name in [name for name, until in self.busy.items() if until <= now]:
            del self.busy[name]
            self.hosts[name].finish(self.assumptions)
            if group := self.fleet.group_of(name):
                self.dirty.add(group)
        self.dirty |= {
            g for g, plan in self.plans.items() if plan.requeue_at and plan.requeue_at <= now
        }
        self.dirty |= {g for g, plan in self.plans.items() if evaluations_due(plan, now)}
        for group in self.engine.groups_in_order():  # dependencies first: a completion unblocks
            if group in self.dirty and group not in self.stopped:
                self._plan(group, now)
        self.dirty.clear()

    def _plan(self, group: str, now: datetime) -> None:
        for name in self.fleet.members.get(group, ()):  # agents report every minute or so
            if (seen := self.hosts[name].observe(now)) is not None:
                self.observed[name] = seen
        before = self.plans.get(group)
        samples = self.samples.setdefault(group, [])
        if before is not None:
            samples += passing_evaluations(before, samples, now)
        plan = self._pass(group, samples)
        if plan.gate is not None and (before is None or before.gate is None):
            # A soak began in this pass: its first evaluation is now, and the evaluations
            # of earlier soaks no longer count.
            samples[:] = [s for s in samples if s.at >= plan.gate.since]
            samples += passing_evaluations(plan, samples, now)
            plan = self._pass(group, samples)
        self.records[group].phase_at(now, plan.status.phase, plan.status.reason.message)
        if before is None or plan.state.completed_commits != before.state.completed_commits:
            self.dirty |= self.dependents.get(group, set())
        target = plan.spec.target.commit
        for name, host_plan in plan.hosts.items():
            host = self.hosts[name]
            host.obey(host_plan.action, target, now, self.assumptions)
            if host.busy_until is not None:
                self.busy[name] = host.busy_until

    def _pass(self, group: str, samples: Sequence[GateSample]) -> GroupPlan:
        """One planning pass of ``group``, its decisions recorded."""
        plan = self.plans[group] = self.engine.reconcile_group(
            group, self.observed, gate_samples=samples
        )
        self.passes += 1
        _record(self.records[group], plan.decisions)
        return plan

    def next_event(self, now: datetime, look_again: datetime | None) -> datetime | None:
        """The next moment anything happens: a host done staging or rebooting, a plan's own
        look-again, a health check's next evaluation, or the caller's look-again (one
        already due means at once: one second on)."""
        times = [min(self.busy.values())] if self.busy else []
        times += [p.requeue_at for p in self.plans.values() if p.requeue_at is not None]
        times += [e for p in self.plans.values() if (e := next_evaluation(p, now)) is not None]
        if look_again is not None:
            times.append(look_again)
        if not times:
            return None
        return max(min(times), now + timedelta(seconds=1))

    def all_done(self) -> bool:
        return all(
            plan.status.phase in (GroupPhase.IN_SYNC, GroupPhase.EMPTY)
            for plan in self.plans.values()
        )


def _never_stale(engine: Engine[_MemoryStore], never: timedelta) -> None:
    """Simulated hosts report at every pass, so none is ever stale; without this, every
    group would be planned again every `staleAfter` only to find that out (most of the
    passes of a prediction over nights of waiting for windows)."""
    for name, spec in engine.specs.items():
        policy = spec.policy.model_copy(update={"stale_after": never, "skip_stale_after": never})
        engine.specs[name] = dataclasses.replace(spec, policy=policy)


def _record(record: _Record, decisions: Sequence[Decision]) -> None:
    for decision in decisions:
        if decision.kind is DecisionKind.WAVE_OPENED and decision.wave is not None:
            record.opened.setdefault(decision.wave, decision.at)
        elif decision.kind is DecisionKind.WAVE_COMPLETED and decision.wave is not None:
            record.done.setdefault(decision.wave, decision.at)
        elif decision.kind is DecisionKind.ROLLOUT_COMPLETED:
            record.finished = decision.at


def _timeline(
    fleet: Fleet,
    group: str,
    record: _Record,
    plan: GroupPlan,
    booted: Mapping[str, str | None],
    milestones: Sequence[Milestone],
) -> GroupTimeline:
    spec = plan.spec
    previous = 0
    waves = []
    for index, end in enumerate(spec.wave_ends):
        waves.append(
            WaveTimeline(
                index + 1, end - previous, record.opened.get(index), record.done.get(index)
            )
        )
        previous = end
    in_sync = plan.status.phase in (GroupPhase.IN_SYNC, GroupPhase.EMPTY)
    # A group whose hosts all run the target already has nothing to roll out; the others
    # start when their first wave opens (after what they depend on).
    changing = any(booted.get(host) != spec.target.commit for host in spec.order)
    started = min(record.opened.values()) if changing and record.opened else None
    unfinished = None
    if changing and record.finished is None and not in_sync:
        unfinished = f"{plan.status.phase}: {plan.status.reason.message}"
    zone = _time_zone(spec)
    depends_on = tuple(fleet.groups[group].depends_on)
    after = depends_on
    promotion = [m for m in milestones if m.stream == spec.target.stream]
    if record.retargeted is not None and promotion:
        source = promotion[-1].source
        after += tuple(sorted(g for g, model in fleet.groups.items() if model.stream == source))
    if not changing:
        return GroupTimeline(group, zone, False, None, None, (), None, depends_on)
    return GroupTimeline(
        group,
        zone,
        True,
        started,
        record.finished,
        tuple(waves),
        unfinished,
        depends_on,
        promoted=record.retargeted,
        idle_since=record.idle_since,
        stretches=tuple(record.stretches),
        after=after,
    )


def _stopped_timeline(fleet: Fleet, group: str, why: str) -> GroupTimeline:
    """A group that does not move: it never starts, and says why."""
    windows = fleet.maintenance_windows(group)
    zone = windows[0].time_zone if windows else None
    return GroupTimeline(
        group, zone, True, None, None, (), why, tuple(fleet.groups[group].depends_on)
    )


def _time_zone(spec: GroupSpec) -> str | None:
    """The zone a group's times are shown in: its windows', else the one zone all of its
    hosts' own windows share (a site's inventory file); None when there is no single one."""
    zones: set[str] = set()
    if any(host not in spec.window_set_of for host in spec.order):
        zones |= {w.time_zone for w in spec.windows}
    for used in set(spec.window_set_of.values()):
        zones |= {w.time_zone for w in spec.window_sets[used]}
    return zones.pop() if len(zones) == 1 else None
