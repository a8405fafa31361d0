"""FleetLock reboot locks in the planner (reconciler/rollout/locks.py): one pass at a time,
each row with the answer and its reason."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.observed import LockRequests
from reconciler.rollout.planner import plan_group
from reconciler.rollout.reasons import ReasonCode
from reconciler.rollout.spec import GroupSpec
from reconciler.rollout.state import GroupState, RebootLock
from tests.planner_builders import ALLOWED, EARLIER, NOW, TARGET, reports, rollout, running, spec


def lock_spec(**fields: Any) -> GroupSpec:
    """Group `g` of h1..h3 (sites a, b, a), every host a FleetLock client."""
    built = spec(sites={"h1": "a", "h2": "b", "h3": "a"}, **fields)
    return dataclasses.replace(built, lock_clients=frozenset(built.order))


BY_SITE = lock_spec(rollout={"rebootBudget": {"maxUnavailable": 1, "groupBy": ["site"]}})
ONE = lock_spec()


def with_locks(state: GroupState, *hosts: str) -> GroupState:
    state.locks.update({h: RebootLock(EARLIER, "boot-1") for h in hosts})
    return state


@pytest.mark.parametrize(
    ("of", "state", "asking", "expected"),
    [
        # groupBy: a lock in site a leaves site b's slot free, not site a's
        (BY_SITE, with_locks(rollout(BY_SITE), "h1"), "h2", ReasonCode.LOCK_GRANTED),
        (BY_SITE, with_locks(rollout(BY_SITE), "h1"), "h3", ReasonCode.WAITING_FOR_BUDGET),
        # an agent's reboot permission and a lock share the one budget
        (ONE, rollout(ONE, {"h1": ALLOWED}), "h2", ReasonCode.WAITING_FOR_BUDGET),
        # a host with both a permission and a lock counts once
        (ONE, with_locks(rollout(ONE, {"h1": ALLOWED}), "h1"), "h1", ReasonCode.LOCK_GRANTED),
        (ONE, rollout(ONE, halted="halted after 1 failure(s)"), "h1", ReasonCode.HALTED),
        (lock_spec(paused=True), rollout(ONE), "h1", ReasonCode.PAUSED),
        (lock_spec(held={"h1": "RMA-7"}), rollout(ONE), "h1", ReasonCode.HELD),
    ],
)
def test_a_lock_is_granted_by_the_rules_of_any_reboot(
    of: GroupSpec, state: GroupState, asking: str, expected: ReasonCode
) -> None:
    plan = plan_group(of, state, reports(of), {}, NOW, locks=LockRequests(frozenset({asking})))
    assert plan.locks[asking].code is expected
    assert (asking in plan.state.locks) is (expected is ReasonCode.LOCK_GRANTED)


def test_two_asking_for_one_slot_in_one_pass_get_it_in_rollout_order() -> None:
    asking = LockRequests(frozenset({"h2", "h3"}))
    plan = plan_group(ONE, rollout(ONE), reports(ONE), {}, NOW, locks=asking)
    assert [d.host for d in plan.decisions if d.kind is DecisionKind.LOCK_GRANTED] == ["h2"]
    assert plan.locks["h3"].code is ReasonCode.WAITING_FOR_BUDGET


def test_a_lock_holds_an_agents_reboot_back_until_released() -> None:
    staged = reports(ONE, h2=running(staged=TARGET))
    held = with_locks(rollout(ONE, {"h2": dataclasses.replace(ALLOWED, reboot_allowed_at=None)}))
    plan = plan_group(ONE, with_locks(held, "h1"), staged, {}, NOW)
    assert "h2" not in {d.host for d in plan.decisions if d.kind is DecisionKind.REBOOT_ALLOWED}
    released = plan_group(
        ONE, plan.state, staged, {}, NOW, locks=LockRequests(release=frozenset({"h1"}))
    )
    kinds = [(d.kind, d.host) for d in released.decisions]
    assert kinds == [(DecisionKind.LOCK_RELEASED, "h1"), (DecisionKind.REBOOT_ALLOWED, "h2")]


def test_a_lock_is_released_when_its_host_loses_its_fleetlock_id() -> None:
    without = dataclasses.replace(ONE, lock_clients=frozenset({"h2", "h3"}))
    plan = plan_group(without, with_locks(rollout(ONE), "h1"), reports(ONE), {}, NOW)
    assert plan.state.locks == {}
    [decision] = [d for d in plan.decisions if d.kind is DecisionKind.LOCK_RELEASED]
    assert decision.reason.message == "h1 has no fleetLockId in the inventory any more"
