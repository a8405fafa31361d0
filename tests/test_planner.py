"""The rollout rules, one test (or table) per numbered rule of docs/rollouts.md.

Each drives the real engine, a real SQLite store and simulated hosts on a manual clock, and
asserts decisions *and* their reason codes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPhase, HostState
from reconciler.rollout.reasons import ReasonCode
from tests.engine_harness import START, Harness
from tests.fleets import NEW, NEWER, OLD

MIN = timedelta(minutes=1)
HOSTS_6 = {f"h{i}": {"site": "a" if i <= 3 else "b"} for i in range(1, 7)}
FAST = {
    "waves": [1, "50%"],
    "soakTime": "30m",
    "healthTimeout": "20m",
    "rebootBudget": {"maxUnavailable": 1},
}


def harness(tmp_path: Path, rollout: dict[str, object] | None = None, **kwargs: object) -> Harness:
    group = {"hosts": list(HOSTS_6), "rollout": rollout or FAST, **kwargs.pop("group", {})}
    return Harness(tmp_path, {"g": group}, HOSTS_6, **kwargs)  # type: ignore[arg-type]


def test_rule1_rollout_starts_on_new_commit_and_records_why(tmp_path: Path) -> None:
    h = harness(tmp_path)
    plan = h.plan("g")
    started = h.kinds(DecisionKind.ROLLOUT_STARTED)[0]
    assert started.reason.code is ReasonCode.DESIRED_COMMIT_CHANGED
    assert (started.commit, started.previous, started.revision) == (NEW, None, "rev-1")
    assert plan.state.rollout is not None
    assert plan.state.rollout.started_at == START
    h.run(timedelta(hours=3))
    h.change_fleet(streams={"main": NEWER})
    h.plan("g")
    second = h.kinds(DecisionKind.ROLLOUT_STARTED)[1]
    assert (second.commit, second.previous, second.revision) == (NEWER, NEW, "rev-2")


def test_rule2_canaries_first_and_only_open_waves_are_offered(tmp_path: Path) -> None:
    h = harness(tmp_path, group={"canaries": ["h5"]})
    plan = h.plan("g")
    assert [d.host for d in h.kinds(DecisionKind.HOST_OFFERED)] == ["h5"]
    assert plan.hosts["h5"].action is Action.STAGE
    waiting = plan.hosts["h1"]
    assert (waiting.state, waiting.action, waiting.reason.code) == (
        HostState.PENDING,
        Action.NONE,
        ReasonCode.WAVE_NOT_OPEN,
    )
    assert plan.spec.wave_ends == (1, 3, 6)


def test_rule3_reboot_budget_counts_updating_and_silent_hosts(tmp_path: Path) -> None:
    h = harness(tmp_path, {"waves": ["100%"], "rebootBudget": {"maxUnavailable": 2}})
    h.sim.hosts["h6"].online = False  # never reports: stale once silent for staleAfter
    h.step()  # starts the rollout and offers all; the others stage
    h.clock.advance(timedelta(minutes=10))
    plan = h.plan("g")
    allowed = [d.host for d in h.kinds(DecisionKind.REBOOT_ALLOWED)]
    assert len(allowed) == 1
    staged_waiting = [
        p for p in plan.hosts.values() if p.reason.code is ReasonCode.WAITING_FOR_BUDGET
    ]
    assert len(staged_waiting) == 4


def test_rule3_budget_split_by_label(tmp_path: Path) -> None:
    h = harness(
        tmp_path, {"waves": ["100%"], "rebootBudget": {"maxUnavailable": 1, "groupBy": ["site"]}}
    )
    h.step()
    h.plan("g")
    allowed = {d.host for d in h.kinds(DecisionKind.REBOOT_ALLOWED)}
    assert len(allowed) == 2
    assert {HOSTS_6[host]["site"] for host in allowed} == {"a", "b"}


def test_rule4_success_needs_green_and_next_wave_waits_for_soak(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.run(5 * MIN)
    [first] = h.kinds(DecisionKind.HOST_SUCCEEDED)
    assert first.reason.code is ReasonCode.IN_SYNC
    [done] = h.kinds(DecisionKind.WAVE_COMPLETED)
    plan = h.plan("g")
    assert plan.status.phase is GroupPhase.SOAKING
    assert plan.status.reason.code is ReasonCode.SOAKING
    soak_end = done.at + timedelta(minutes=30)
    assert f"soaking until {soak_end:%Y-%m-%d %H:%M}Z" in plan.status.reason.message
    assert plan.requeue_at is not None
    assert plan.requeue_at <= soak_end
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 1
    h.clock.advance(soak_end - h.now - timedelta(seconds=1))
    h.plan("g")
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 1
    h.clock.advance(timedelta(seconds=1))
    h.plan("g")
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 2


def test_rule4_unknown_greenboot_is_not_success(tmp_path: Path) -> None:
    h = harness(tmp_path)
    canary = h.plan("g").spec.order[0]
    h.sim.hosts[canary].greenboot_after_boot = Greenboot.UNKNOWN  # e.g. greenboot not running
    h.run(5 * MIN)
    assert h.sim.hosts[canary].booted == NEW
    plan = h.plan("g")
    assert plan.hosts[canary].reason.code is ReasonCode.WAITING_FOR_HEALTH
    assert h.kinds(DecisionKind.HOST_SUCCEEDED) == []


@pytest.mark.parametrize(
    ("failure", "code", "state"),
    [
        ("greenboot_red", ReasonCode.GREENBOOT_RED, HostState.FAILED),
        ("fallback", ReasonCode.FELL_BACK, HostState.ROLLED_BACK),
        ("deploy_error", ReasonCode.DEPLOY_ERROR, HostState.FAILED),
        ("no_reboot", ReasonCode.HEALTH_TIMEOUT, HostState.FAILED),
    ],
)
def test_rule5_each_failure_halts_and_the_host_is_never_offered_again(
    tmp_path: Path, failure: str, code: ReasonCode, state: HostState
) -> None:
    h = harness(
        tmp_path,
        bad=[NEW] if failure == "fallback" else [],
        unstageable=[NEW] if failure == "deploy_error" else [],
    )
    canary = h.plan("g").spec.order[0]
    if failure == "greenboot_red":
        h.step()
        h.step()
        h.sim.hosts[canary].greenboot = Greenboot.RED
        h.sim.hosts[canary].booted = NEW  # booted the target, health checks fail
    if failure == "no_reboot":
        h.sim.hosts[canary].obey = lambda *args: _stage_only(h, canary)  # type: ignore[method-assign]
    h.run(timedelta(hours=2))
    [failed] = h.kinds(DecisionKind.HOST_FAILED)
    assert (failed.host, failed.reason.code) == (canary, code)
    [halted] = h.kinds(DecisionKind.ROLLOUT_HALTED)
    assert halted.reason.code is ReasonCode.FAILURE_THRESHOLD
    assert canary in halted.reason.message
    plan = h.plan("g")
    assert plan.status.phase is GroupPhase.HALTED
    assert plan.hosts[canary].state is state
    assert plan.hosts[canary].action is Action.NONE
    assert len(h.kinds(DecisionKind.HOST_OFFERED)) == 1  # nobody else was offered
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 1


def _stage_only(h: Harness, name: str) -> None:
    h.sim.hosts[name].staged = NEW  # stages, but never reboots when told to


def test_rule5_fallback_reason_names_what_it_booted(tmp_path: Path) -> None:
    h = harness(tmp_path, bad=[NEW])
    h.run(timedelta(minutes=10))
    [failed] = h.kinds(DecisionKind.HOST_FAILED)
    assert "rebooted but booted" in failed.reason.message
    assert OLD[:12] in failed.reason.message


def test_rule5_halt_holds_until_resume_in_git(tmp_path: Path) -> None:
    h = harness(tmp_path, bad=[NEW])
    h.run(timedelta(hours=3))
    assert len(h.kinds(DecisionKind.ROLLOUT_HALTED)) == 1
    h.run(timedelta(hours=3))
    assert len(h.kinds(DecisionKind.HOST_OFFERED)) == 1
    h.sim.bad.clear()
    h.change_fleet(
        groups={
            "g": {"hosts": list(HOSTS_6), "rollout": FAST, "resume": "OPS-1234 fixed the check"}
        }
    )
    h.run(timedelta(hours=4))
    [resumed] = h.kinds(DecisionKind.ROLLOUT_RESUMED)
    assert resumed.reason.code is ReasonCode.RESUMED
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1
    failed_host = h.kinds(DecisionKind.HOST_FAILED)[0].host
    assert failed_host not in {d.host for d in h.kinds(DecisionKind.HOST_OFFERED)[1:]}
    assert h.sim.hosts[failed_host or ""].booted == OLD


def test_rule6_reboots_only_inside_the_window_with_margin(tmp_path: Path) -> None:
    window = [{"schedule": "0 2 * * *", "duration": "1h", "timeZone": "Europe/Dublin"}]
    h = harness(
        tmp_path,
        {**FAST, "waves": ["100%"], "rebootMargin": "15m", "rebootBudget": {"maxUnavailable": 6}},
        group={"maintenanceWindows": window},
    )
    h.step()
    plan = h.plan("g")
    assert all(p.action is Action.STAGE for p in plan.hosts.values())
    assert {p.reason.code for p in plan.hosts.values()} == {ReasonCode.WAITING_FOR_WINDOW}
    assert plan.status.phase is GroupPhase.WAITING_WINDOW
    assert (
        "waiting for maintenance window 02:00–03:00 Europe/Dublin, opens in"
        in plan.hosts["h1"].reason.message
    )
    assert plan.requeue_at is not None
    h.run(timedelta(hours=16))
    reboots = [t for host in h.sim.hosts.values() for t in host.reboots_at]
    assert reboots
    assert all(t.hour == 2 and t.minute < 45 for t in reboots)


def test_rule7_pause_stops_new_offers_and_resume_continues(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.run(timedelta(minutes=40))
    offered = len(h.kinds(DecisionKind.HOST_OFFERED))
    h.change_fleet(groups={"g": {"hosts": list(HOSTS_6), "rollout": FAST, "paused": True}})
    h.run(timedelta(hours=3))
    assert len(h.kinds(DecisionKind.HOST_OFFERED)) == offered
    plan = h.plan("g")
    assert (plan.status.phase, plan.status.reason.code) == (GroupPhase.PAUSED, ReasonCode.PAUSED)
    h.change_fleet(groups={"g": {"hosts": list(HOSTS_6), "rollout": FAST}})
    h.run(timedelta(hours=3))
    assert len(h.kinds(DecisionKind.ROLLOUT_STARTED)) == 1  # the same rollout went on
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1


def test_rule8_depends_on_waits_for_completion_of_the_same_commit(tmp_path: Path) -> None:
    hosts = {"a1": {}, "a2": {}, "b1": {}, "b2": {}}
    groups = {
        "first": {"hosts": ["a1", "a2"], "rollout": FAST},
        "second": {"hosts": ["b1", "b2"], "rollout": FAST, "dependsOn": ["first"]},
    }
    h = Harness(tmp_path, groups, hosts)
    plans = h.step()
    assert plans["second"].status.reason.code is ReasonCode.WAITING_FOR_DEPENDENCY
    h.run(timedelta(hours=2))
    first_done = [d for d in h.kinds(DecisionKind.ROLLOUT_COMPLETED)]
    second_offers = [d for d in h.kinds(DecisionKind.HOST_OFFERED) if d.host in ("b1", "b2")]
    assert first_done
    assert second_offers
    assert min(d.at for d in second_offers) >= first_done[0].at


def test_rule9_new_commit_supersedes_after_updating_hosts_finish(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "waves": ["100%"], "rebootBudget": {"maxUnavailable": 1}})
    h.step()
    h.step()  # one host allowed to reboot, it reboots at the end of this step
    [updating] = h.kinds(DecisionKind.REBOOT_ALLOWED)
    rebooting = h.sim.hosts[updating.host or ""]
    rebooting.online = False  # silent while it reboots
    h.change_fleet(streams={"main": NEWER})
    plan = h.plan("g")
    assert [d.kind for d in plan.decisions[:2]] == [
        DecisionKind.ROLLOUT_SUPERSEDED,
        DecisionKind.ROLLOUT_STARTED,
    ]
    assert plan.decisions[0].commit == NEW  # stamped with the rollout it ends
    assert plan.status.reason.code is ReasonCode.WAITING_FOR_SUPERSEDED_HOSTS
    assert h.kinds(DecisionKind.REBOOT_ALLOWED, rebooting.name)[-1].commit == NEW
    h.run(timedelta(minutes=5))
    assert len(h.kinds(DecisionKind.HOST_OFFERED)) == 6  # nothing new while it is away
    rebooting.online = True
    h.run(timedelta(hours=3))
    [finished] = h.kinds(DecisionKind.SUPERSEDED_HOST_FINISHED)
    assert "rebooted (now on" in finished.reason.message
    assert {host.booted for host in h.sim.hosts.values()} == {NEWER}


def test_rule9_revert_is_a_rollout_back_through_the_waves(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.run(timedelta(hours=3))
    assert {host.booted for host in h.sim.hosts.values()} == {NEW}
    h.change_fleet(streams={"main": OLD})
    h.step()
    started = h.kinds(DecisionKind.ROLLOUT_STARTED)[-1]
    assert (started.commit, started.previous) == (OLD, NEW)
    assert len([d for d in h.kinds(DecisionKind.HOST_OFFERED) if d.commit == OLD]) == 1
    h.run(timedelta(hours=3))
    assert {host.booted for host in h.sim.hosts.values()} == {OLD}


def test_rule10_stale_hosts_are_reported_then_skipped(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "staleAfter": "10m", "skipStaleAfter": "1h"})
    order = h.plan("g").spec.order
    h.sim.hosts[order[1]].online = False  # in wave 2
    h.run(timedelta(minutes=50))
    plan = h.plan("g")
    assert plan.hosts[order[1]].state is HostState.STALE
    assert plan.hosts[order[1]].reason.code is ReasonCode.STALE
    h.run(timedelta(hours=4))
    plan = h.plan("g")
    assert plan.hosts[order[1]].reason.code is ReasonCode.SKIPPED_STALE
    assert "never reported" in plan.hosts[order[1]].reason.message
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1
    h.sim.hosts[order[1]].online = True  # comes back: updated through the normal path
    h.run(timedelta(hours=1))
    assert h.sim.hosts[order[1]].booted == NEW


def test_rule11_manual_rebase_is_unexpected_drift_and_brought_back(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.run(timedelta(hours=3))
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1
    h.sim.hosts["h2"].booted = OLD
    h.sim.hosts["h2"].boots += 1
    plan = h.plan("g")
    [drift] = h.kinds(DecisionKind.HOST_DRIFTED)
    assert (drift.host, drift.reason.code) == ("h2", ReasonCode.UNEXPECTED_DRIFT)
    assert plan.hosts["h2"].state is HostState.UNEXPECTED
    h.run(timedelta(minutes=10))
    assert h.sim.hosts["h2"].booted == NEW


def test_same_inputs_give_the_same_decisions_after_a_restart(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.run(timedelta(minutes=20))
    before = h.engine.state("g")
    h.restart()
    assert h.engine.state("g") == before
    a = h.engine.reconcile_group("g", h.sim.observations())
    h.restart()
    b = h.engine.reconcile_group("g", h.sim.observations())
    assert b.decisions == ()  # the first pass's decisions were persisted
    assert {k: v for k, v in a.hosts.items()} == {k: v for k, v in b.hosts.items()}


def test_fewer_waves_in_git_mid_rollout_does_not_break_planning(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "soakTime": "0s"})
    h.run(timedelta(minutes=30))
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 3
    h.change_fleet(groups={"g": {"hosts": list(HOSTS_6), "rollout": {**FAST, "waves": ["100%"]}}})
    plan = h.plan("g")
    assert plan.status.waves_total == 1
    h.run(timedelta(hours=1))
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1


def test_host_that_boots_the_target_on_its_own_must_turn_green_in_time(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "waves": ["100%"]})
    h.sim.hosts["h2"].booted = NEW  # rebooted into a staged target by a power cut, say
    h.sim.hosts["h2"].greenboot = Greenboot.UNKNOWN
    plan = h.plan("g")
    assert plan.hosts["h2"].state is HostState.UPDATING
    [on_target] = h.kinds(DecisionKind.HOST_ON_TARGET)
    assert on_target.reason.code is ReasonCode.WAITING_FOR_HEALTH
    h.run(timedelta(minutes=25))
    [failed] = h.kinds(DecisionKind.HOST_FAILED)
    assert (failed.host, failed.reason.code) == ("h2", ReasonCode.HEALTH_TIMEOUT)


def test_host_brought_back_after_drift_finishes_before_a_new_commit(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "waves": ["100%"]})
    h.run(timedelta(hours=2))
    h.sim.hosts["h2"].booted, h.sim.hosts["h2"].boots = OLD, 9
    h.step()  # drift seen, offered
    h.step()  # staged, allowed to reboot
    assert h.kinds(DecisionKind.REBOOT_ALLOWED, "h2")
    h.sim.hosts["h2"].online = False  # rebooting
    h.change_fleet(streams={"main": NEWER})
    plan = h.plan("g")
    assert plan.decisions[0].kind is DecisionKind.ROLLOUT_SUPERSEDED
    assert "h2" in plan.state.finishing
    assert plan.status.reason.code is ReasonCode.WAITING_FOR_SUPERSEDED_HOSTS


def test_reverted_commit_left_staged_is_removed(tmp_path: Path) -> None:
    window = [{"schedule": "0 2 * * *", "duration": "1h", "timeZone": "UTC"}]
    h = harness(tmp_path, {**FAST, "waves": ["100%"]}, group={"maintenanceWindows": window})
    h.run(timedelta(minutes=5))
    assert {host.staged for host in h.sim.hosts.values()} == {NEW}
    h.change_fleet(streams={"main": OLD})  # revert before any reboot
    plan = h.plan("g")
    assert {p.action for p in plan.hosts.values()} == {Action.UNSTAGE}
    assert plan.hosts["h1"].reason.code is ReasonCode.UNSTAGE
    h.run(timedelta(minutes=5))
    assert {host.staged for host in h.sim.hosts.values()} == {None}
    assert {p.action for p in h.plan("g").hosts.values()} == {Action.NONE}


def test_a_host_going_silent_schedules_the_next_look(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "staleAfter": "10m", "skipStaleAfter": "1h"})
    h.run(timedelta(hours=3))
    h.sim.hosts["h3"].online = False
    h.clock.advance(timedelta(minutes=70))  # h3 is past skipping; the others just reported
    h.sim.hosts["h3"].online = True
    observed = dict(h.sim.observations())
    observed["h3"] = HostObservation("h3", h.now - timedelta(minutes=70), NEW, "x", Greenboot.GREEN)
    plan = h.engine.reconcile_group("g", observed)
    assert plan.requeue_at == h.now + timedelta(minutes=10)
