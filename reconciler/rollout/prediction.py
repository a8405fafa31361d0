"""When a revision's rollouts will finish: the real planner, run in virtual time.

Nothing here guesses how the engine behaves: every group is planned by :func:`plan_group`
through an :class:`~reconciler.rollout.engine.Engine` on an in-memory store, on a manual
clock, with simulated hosts that do what they are told and take the time the
:class:`Assumptions` say (staging, then rebooting and passing greenboot). Time jumps from one
event to the next: a host finishing its stage or its reboot, or a plan's own look-again time
(a soak ending, a window opening, a freeze ending). So windows in each site's time zone,
freezes, reboot budgets, waves, soaks and `dependsOn` shape the prediction exactly as they
shape the real rollout, DST included.

A prediction stops when every group is done, when nothing more can happen (a group waits for
something that never comes: a pause, a halt, a window that never opens within the horizon),
or at the horizon; it says which groups did not finish and why, in the planner's own words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconciler.clock import ManualClock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.engine import Engine
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPhase, GroupPlan
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
    soak: timedelta = timedelta(0)

    def waits(self, merged: datetime, assumed: Assumptions) -> list[tuple[timedelta, str]]:
        """The stretches in which the group waited rather than updated hosts, and what for:
        before its first wave (what it depends on); between two waves (the soak, and beyond
        it a window or a freeze); inside a wave, beyond the time its hosts take one after
        the other (reboot windows, a freeze, the budget)."""
        if self.started is None:
            return []
        found = [(self.started - merged, "before its first wave (what it depends on)")]
        for wave in self.waves:
            if wave.opened is None or wave.done is None:
                break
            busy = assumed.stage + assumed.reboot * wave.hosts
            if wave.done - wave.opened > busy:
                found.append(
                    (
                        wave.done - wave.opened - busy,
                        f"in wave {wave.number}: reboot windows, a freeze or the budget",
                    )
                )
        for before, after in zip(self.waves, self.waves[1:], strict=False):
            if before.done is None or after.opened is None:
                break
            why = f"between waves {before.number} and {after.number}: the soak"
            if after.opened - before.done > self.soak:
                why += " and a wait for a reboot window or the end of a freeze"
            found.append((after.opened - before.done, why))
        return [wait for wait in found if wait[0] > timedelta(0)]

    def longest_wait(self, merged: datetime, assumed: Assumptions) -> tuple[timedelta, str] | None:
        """The longest of :meth:`waits`."""
        return max(self.waits(merged, assumed), key=lambda wait: wait[0], default=None)


@dataclass(frozen=True, slots=True)
class Prediction:
    start: datetime
    assumptions: Assumptions
    groups: tuple[GroupTimeline, ...]
    passes: int  # planning passes run, for the benchmark

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


class _MemoryStore:
    """The engine's store, in memory: a prediction decides nothing anyone acts on."""

    def __init__(self) -> None:
        self._states: dict[str, GroupState] = {}

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

    def finish_if_due(self, now: datetime, assumed: Assumptions) -> bool:
        """A stage or a reboot that took its time is over (True): a rebooted host is back on
        the staged build (or fell back from a failing one, as greenboot does)."""
        if self.busy_until is None or now < self.busy_until:
            return False
        self.busy_until = None
        if self.staging is not None:  # staged now: the next report says so
            self.staged, self.staging = self.staging, None
            return True
        if self.rebooting:
            self.rebooting, self.boots = False, self.boots + 1
            if self.name not in assumed.failing and self.staged is not None:
                self.booted = self.staged
            self.staged = None
        return True

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
    finished: datetime | None = None
    opened: dict[int, datetime] = field(default_factory=dict)
    done: dict[int, datetime] = field(default_factory=dict)


def predict(
    fleet: Fleet,
    start: datetime,
    booted: Mapping[str, str | None],
    assumptions: Assumptions = Assumptions(),
) -> Prediction:
    """Predict ``fleet``'s rollouts from ``start``, each host starting on ``booted[host]``
    (a host missing or None there never reports: the planner waits for it as it would)."""
    clock = ManualClock(start)
    engine: Engine[_MemoryStore] = Engine(_MemoryStore(), clock)
    engine.use_fleet(fleet)
    _never_stale(engine, assumptions.horizon + timedelta(days=1))
    hosts = {name: _Host(name, booted.get(name)) for name in fleet.hosts}
    records = {group: _Record() for group in fleet.groups}
    dependents: dict[str, set[str]] = {group: set() for group in fleet.groups}
    for name, model in fleet.groups.items():
        for dependency in model.depends_on:
            dependents.setdefault(dependency, set()).add(name)
    end = start + assumptions.horizon
    passes = 0
    plans: dict[str, GroupPlan] = {}
    observed: dict[str, HostObservation] = {}
    dirty = set(fleet.groups)  # groups to plan at this instant
    while True:
        now = clock.now()
        for host in hosts.values():
            if host.finish_if_due(now, assumptions) and (group := fleet.group_of(host.name)):
                dirty.add(group)
        dirty |= {g for g, plan in plans.items() if plan.requeue_at and plan.requeue_at <= now}
        for group in engine.groups_in_order():  # dependencies first: a completion unblocks
            if group not in dirty:
                continue
            for name in fleet.members.get(group, ()):  # agents report every minute or so
                if (seen := hosts[name].observe(now)) is not None:
                    observed[name] = seen
            before = plans.get(group)
            plan = plans[group] = engine.reconcile_group(group, observed)
            passes += 1
            _record(records[group], plan.decisions)
            if before is None or plan.state.completed_commits != before.state.completed_commits:
                dirty |= dependents.get(group, set())
            target = plan.spec.target.commit
            for name, host_plan in plan.hosts.items():
                hosts[name].obey(host_plan.action, target, now, assumptions)
        dirty.clear()
        wake = _next_event(list(hosts.values()), list(plans.values()), now)
        if wake is None or wake > end or _all_done(plans):
            break
        clock.advance(wake - now)
    return Prediction(
        start,
        assumptions,
        tuple(
            _timeline(fleet, group, records[group], plans[group], booted) for group in sorted(plans)
        ),
        passes,
    )


def _never_stale(engine: Engine[_MemoryStore], never: timedelta) -> None:
    """Simulated hosts report at every pass, so none is ever stale; without this, every
    group would be planned again every `staleAfter` only to find that out (most of the
    passes of a prediction over nights of waiting for windows)."""
    for name, spec in engine.specs.items():
        policy = spec.policy.model_copy(update={"stale_after": never, "skip_stale_after": never})
        engine.specs[name] = dataclasses.replace(spec, policy=policy)


def _next_event(hosts: list[_Host], plans: list[GroupPlan], now: datetime) -> datetime | None:
    """The next moment anything happens: a host done staging or rebooting, or a plan's own
    look-again (a look-again already due means at once: one second on)."""
    times = [h.busy_until for h in hosts if h.busy_until is not None]
    times += [p.requeue_at for p in plans if p.requeue_at is not None]
    if not times:
        return None
    return max(min(times), now + timedelta(seconds=1))


def _all_done(plans: Mapping[str, GroupPlan]) -> bool:
    return all(
        plan.status.phase in (GroupPhase.IN_SYNC, GroupPhase.EMPTY) for plan in plans.values()
    )


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
    windows = spec.windows
    zone = windows[0].time_zone if windows else None
    return GroupTimeline(
        group,
        zone,
        changing,
        started,
        record.finished if changing else None,
        tuple(waves) if changing else (),
        unfinished,
        tuple(fleet.groups[group].depends_on),
        spec.soak_time,
    )
