"""Invariants of the rollout engine over random fleets, policies and event sequences."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.observed import HostObservation
from reconciler.rollout.planner import Action, GroupPlan, plan_group
from reconciler.rollout.reasons import HOST_SIDE_FAILURE_CODES as HOST_SIDE
from reconciler.rollout.state import Lifecycle
from reconciler.rollout.windows import reboot_window
from tests.engine_harness import BusyHost, Harness
from tests.fleets import NEW, commit

ZONES = ["Europe/Dublin", "America/New_York", "Asia/Singapore", "UTC"]


@dataclass
class Scenario:
    hosts: dict[str, dict[str, str]]
    groups: dict[str, dict[str, Any]]
    events: list[tuple[str, Any]] = field(default_factory=list)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    percents = sorted(set(draw(st.lists(st.integers(1, 100), min_size=1, max_size=3))))
    waves: list[object] = [f"{p}%" for p in percents]
    if draw(st.booleans()):
        waves = [1, *[w for w in waves if w != "1%"]]
    budget: dict[str, Any] = {"maxUnavailable": draw(st.sampled_from([1, 2, 3, "50%"]))}
    if draw(st.booleans()):
        budget["groupBy"] = ["site"]
    return {
        "waves": waves,
        "soakTime": f"{draw(st.integers(0, 120))}m",
        "healthTimeout": f"{draw(st.integers(15, 60))}m",
        "rebootBudget": budget,
        "failureThreshold": draw(st.sampled_from([1, 2, "50%"])),
        "staleAfter": "15m",
        "skipStaleAfter": "2h",
        "drainTimeout": f"{draw(st.integers(10, 90))}m",
    }


@st.composite
def windows(draw: st.DrawFn) -> list[dict[str, str]] | None:
    if draw(st.booleans()):
        return None
    return [
        {
            "schedule": f"{draw(st.integers(0, 59))} {draw(st.integers(0, 23))} * * *",
            "duration": f"{draw(st.integers(1, 4))}h",
            "timeZone": draw(st.sampled_from(ZONES)),
        }
    ]


EVENT = st.one_of(
    st.tuples(st.just("step"), st.integers(1, 45)),
    st.tuples(st.just("offline"), st.integers(0, 20)),
    st.tuples(st.just("online"), st.integers(0, 20)),
    st.tuples(st.just("bad"), st.just(None)),
    st.tuples(st.just("new_commit"), st.integers(3, 6)),
    st.tuples(st.just("pause"), st.booleans()),
    st.tuples(st.just("resume"), st.integers(0, 9)),
    st.tuples(st.just("restart"), st.just(None)),
    # A host's pre-reboot command fails (it has calls to drain), or passes again.
    st.tuples(st.just("busy"), st.integers(0, 20)),
    st.tuples(st.just("calm"), st.integers(0, 20)),
)


@st.composite
def scenarios(draw: st.DrawFn, events: bool = True) -> Scenario:
    hosts: dict[str, dict[str, str]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for g in range(draw(st.integers(1, 2))):
        names = [f"g{g}h{i}" for i in range(draw(st.integers(1, 8)))]
        for name in names:
            hosts[name] = {"site": draw(st.sampled_from(["a", "b"]))}
        spec: dict[str, Any] = {"hosts": names, "rollout": draw(policies())}
        window = draw(windows())
        if window is not None:
            spec["maintenanceWindows"] = window
        if g == 1 and draw(st.booleans()):
            spec["dependsOn"] = ["grp0"]
        groups[f"grp{g}"] = spec
    scenario = Scenario(hosts, groups)
    if events:
        scenario.events = draw(st.lists(EVENT, min_size=5, max_size=40))
    return scenario


class Checker:
    """Runs a scenario step by step and checks every invariant after each pass."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.halted: set[str] = set()

    def step(self, minutes: int) -> None:
        h = self.h
        start = len(h.log)
        now = h.now
        observed = h.sim.observations()  # what the pass below plans from
        plans = h.step(timedelta(minutes=minutes))
        for name, plan in plans.items():
            spec = plan.spec
            self.check_held(name, plan, observed)
            # No reboot is ever asked for outside a usable window.
            window = reboot_window(spec.windows, now, spec.policy.reboot_margin)
            if any(p.action is Action.REBOOT for p in plan.hosts.values()):
                assert window.allowed, f"{name}: reboot asked at {now} outside its window"
            # Never more than maxUnavailable updating, per budget bucket.
            state = h.engine.state(name)
            busy = Counter(
                spec.budget_key[host]
                for host, p in (state.rollout.hosts.items() if state.rollout else [])
                if p.updating and host in spec.budget_key
            )
            busy.update(
                spec.budget_key[host] for host in state.finishing if host in spec.budget_key
            )
            for key, count in busy.items():
                assert count <= spec.budget_limit[key], f"{name}: {count} updating in {key}"
        self.check_halts(h.log[start:])

    def check_held(
        self, name: str, plan: GroupPlan, observed: Mapping[str, HostObservation]
    ) -> None:
        """While a rollout is halted (or its group paused) no host is told to stage or reboot
        into its target; while halted, a host with the target staged and not booted is told
        to drop it, so no unplanned reboot boots the halted build."""
        rollout = plan.state.rollout
        halted = rollout is not None and rollout.lifecycle is Lifecycle.HALTED
        if not (halted or plan.spec.paused):
            return
        target = plan.spec.target.commit
        for host, told in plan.hosts.items():
            assert told.action not in (Action.STAGE, Action.REBOOT), (
                f"{name}: {host} told {told.action} while {'halted' if halted else 'paused'}"
            )
            obs = observed.get(host)
            if halted and obs is not None and obs.staged_commit == target:
                assert obs.booted_commit == target or told.action is Action.UNSTAGE, (
                    f"{name}: {host} keeps the halted target staged ({told.reason})"
                )

    def check_halts(self, new: list[tuple[str, Any]]) -> None:
        """Halted stays halted: nothing new is offered until Git resumes or changes commit."""
        for group, d in new:
            if d.kind is DecisionKind.ROLLOUT_HALTED:
                self.halted.add(group)
            elif d.kind in (DecisionKind.ROLLOUT_RESUMED, DecisionKind.ROLLOUT_STARTED):
                self.halted.discard(group)
            elif d.kind in (
                DecisionKind.HOST_OFFERED,
                DecisionKind.REBOOT_ALLOWED,
                DecisionKind.WAVE_OPENED,
            ):
                assert group not in self.halted, f"{d.kind} in halted group {group}"

    def check_waves(self) -> None:
        """Wave k+1 opened only after wave k completed and soaked, in every rollout."""
        for name in self.h.groups:
            soak = self.h.engine.specs[name].soak_time
            done: dict[int, datetime] = {}
            updated: set[int] = set()
            failures: list[datetime] = []
            for group, d in self.h.log:
                if group != name:
                    continue
                if d.kind is DecisionKind.ROLLOUT_STARTED:
                    done, updated, failures = {}, set(), []
                elif d.kind is DecisionKind.HOST_OFFERED and d.wave is not None:
                    updated.add(d.wave)
                elif d.kind is DecisionKind.HOST_FAILED and d.reason.code not in HOST_SIDE:
                    failures.append(d.at)  # a drain failure does not restart a soak
                elif d.kind is DecisionKind.WAVE_COMPLETED:
                    done[d.wave] = d.at
                elif d.kind is DecisionKind.WAVE_OPENED and d.wave > 0:
                    previous = d.wave - 1
                    assert previous in done, f"{name}: wave {d.wave} opened before done"
                    if previous in updated:
                        soak_from = max(
                            [done[previous], *[f for f in failures if f >= done[previous]]]
                        )
                        assert d.at >= soak_from + soak, f"{name}: wave {d.wave} unsoaked"


def _apply(checker: Checker, h: Harness, scenario: Scenario, kind: str, value: Any) -> None:
    hosts = sorted(scenario.hosts)
    if kind == "step":
        checker.step(value)
    elif kind in ("offline", "online"):
        h.sim.hosts[hosts[value % len(hosts)]].online = kind == "online"
    elif kind == "bad":
        h.sim.bad.add(h.streams["main"] if h.streams else NEW)
    elif kind == "new_commit":
        h.change_fleet(streams={"main": commit(value)})
    elif kind == "pause":
        h.change_fleet(groups={n: {**g, "paused": value} for n, g in h.groups.items()})
    elif kind == "resume":
        h.change_fleet(groups={n: {**g, "resume": f"r{value}"} for n, g in h.groups.items()})
    elif kind == "restart":
        h.restart()
    elif kind in ("busy", "calm"):
        host = h.sim.hosts[hosts[value % len(hosts)]]
        assert isinstance(host, BusyHost)
        host.calls = 3 if kind == "busy" else 0


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(scenarios())
def test_invariants_hold_over_random_event_sequences(scenario: Scenario) -> None:
    with TemporaryDirectory() as tmp:
        h = Harness(Path(tmp), scenario.groups, scenario.hosts, streams={"main": NEW})
        # Every host runs a pre-reboot command, which "busy" events make fail: draining
        # hosts mix with updating ones, and the budget must hold all the same.
        h.sim.hosts = {n: BusyHost(n, host.booted) for n, host in h.sim.hosts.items()}
        checker = Checker(h)
        for kind, value in scenario.events:
            _apply(checker, h, scenario, kind, value)
        checker.step(1)
        checker.check_waves()
        h.store.close()


@SETTINGS
@given(scenarios(events=False))
def test_without_failures_every_host_converges_in_bounded_time(scenario: Scenario) -> None:
    with TemporaryDirectory() as tmp:
        h = Harness(Path(tmp), scenario.groups, scenario.hosts, streams={"main": NEW})
        checker = Checker(h)
        # Soak <= 2h per wave, <= 4 waves per group, two groups in a chain, daily windows.
        for _ in range(int(timedelta(days=12) / timedelta(minutes=20))):
            checker.step(20)
            if all(host.booted == NEW for host in h.sim.hosts.values()):
                checker.step(1)  # let the engine see the last host healthy
                checker.step(1)
                break
        assert {host.booted for host in h.sim.hosts.values()} == {NEW}
        for name in scenario.groups:
            state = h.engine.state(name)
            assert state.rollout is not None
            assert state.rollout.lifecycle is Lifecycle.COMPLETED
        checker.check_waves()
        h.store.close()


@SETTINGS
@given(scenarios(events=False), st.lists(st.integers(1, 45), min_size=10, max_size=40))
def test_a_halted_rollout_tells_no_host_to_stage_or_reboot_into_its_target(
    scenario: Scenario, steps: list[int]
) -> None:
    """The target fails on every host that boots it, so rollouts halt with other hosts of the
    wave staged or staging (checked on every pass by :meth:`Checker.check_held`)."""
    with TemporaryDirectory() as tmp:
        h = Harness(Path(tmp), scenario.groups, scenario.hosts, streams={"main": NEW}, bad=[NEW])
        checker = Checker(h)
        for minutes in steps:
            checker.step(minutes)
        checker.check_waves()
        h.store.close()


@SETTINGS
@given(scenarios(), st.integers(0, 30))
def test_same_inputs_give_the_same_decisions(scenario: Scenario, steps: int) -> None:
    with TemporaryDirectory() as tmp:
        h = Harness(Path(tmp), scenario.groups, scenario.hosts, streams={"main": NEW})
        for _ in range(steps):
            h.step(timedelta(minutes=7))
        for name, spec in h.engine.specs.items():
            state = h.engine.state(name)
            observed = h.sim.observations()
            completed = h.engine.completed_commits(spec.depends_on)
            first = plan_group(spec, state, observed, completed, h.now)
            second = plan_group(spec, state, observed, completed, h.now)
            assert first == second
            assert h.engine.state(name) == state  # the planner did not touch its input
        h.store.close()
