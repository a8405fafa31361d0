"""The rollout rules of docs/rollouts.md, one table row or test per rule and branch.

The tables run one planning pass over inputs built in memory (``tests/planner_builders.py``):
no disk, no store, no simulation, microseconds a row. Each row asserts what the pass says
*and why*: a host's state, action and reason; the decisions and their reason codes; the
group's phase and reason; when to look again. The rules that take several passes (soaks,
timeouts, halts that hold, supersedes, restarts) drive the real engine, a real SQLite store
and simulated hosts on a manual clock (``tests/engine_harness.py``), further down.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.observed import Greenboot, HostObservation, LockRequests
from reconciler.rollout.planner import Action, GroupPhase, HostState, plan_group
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import GroupState, HostProgress, Lifecycle
from tests.engine_harness import START, Harness
from tests.fleets import NEW, NEWER, OLD
from tests.planner_builders import (
    ALLOWED,
    DRAINING,
    DRIFTED,
    EARLIER,
    MIN,
    NIGHTLY,
    NOW,
    OFFERED,
    OTHER,
    PREVIOUS,
    SUCCEEDED,
    TARGET,
    Pass,
    deferral,
    draining,
    finishing,
    fresh,
    reports,
    rollout,
    running,
    spec,
)
from tests.state_backends import harness_on_both_stores

K, R = DecisionKind, ReasonCode
SHOWN, SHOWN_BEFORE, SHOWN_OTHER = TARGET[:12], PREVIOUS[:12], OTHER[:12]  # as sentences show

G = spec()  # h1, h2, h3 in one wave; one reboot at a time; no window
TWO_WAVES = spec(rollout={"waves": [1, "100%"]})  # h1, then h2 and h3
PAUSED = spec(paused=True)
WINDOWED = spec(maintenanceWindows=NIGHTLY)
BY_SITE = spec(rollout={"rebootBudget": {"maxUnavailable": 1, "groupBy": ["site"]}})
DEPENDENT = spec(dependsOn=["base"])
RESUMING = spec(resume="OPS-1")
VERSIONED = spec(version="9.1")
QUIET = {"staleAfter": "1d", "skipStaleAfter": "2d"}  # no host turns stale for a day
HELD = spec(held={"h1": "RMA-7: failing DIMM"})  # h1 held out of rollouts
# In force at NOW: 00:00-09:00 New York is 05:00-14:00 UTC.
XMAS = {
    "name": "xmas",
    "start": "2026-11-25",
    "end": "2026-11-25 09:00",
    "timeZone": "America/New_York",
    "reason": "holiday change freeze",
}
LATER = {**XMAS, "name": "later", "start": "2026-11-25 10:00", "end": "2026-11-26"}  # 15:00Z
OVER = {**XMAS, "name": "over", "start": "2026-11-24", "end": "2026-11-25 06:00"}  # 11:00Z
FROZEN = spec(freezes=[XMAS])
FLEET_FROZEN = spec(fleet_freezes=[XMAS])
FROZEN_SAYS = "reboots frozen by `xmas` until 2026-11-25 09:00 America/New_York: holiday"
HELD_TWO_WAVES = spec(rollout={"waves": [1, "100%"]}, held={"h1": "RMA-7: failing DIMM"})

DONE = rollout(
    G, dict.fromkeys(G.order, SUCCEEDED), lifecycle=Lifecycle.COMPLETED, done={0: EARLIER}
)
ON_TARGET = reports(G, running(TARGET))
HALT = "halted after 1 failure(s) (threshold 1): h9 booted 9.1 and greenboot reports red"


# -- what each host is told, and why -------------------------------------------------------

HOST_PLANS = [
    pytest.param(
        Pass(G, rollout(G, failed_before={"h1": R.GREENBOOT_RED}), reports(G)),
        "h1",
        (HostState.FAILED, Action.NONE, R.FAILED_BEFORE),
        "failed on this commit and is not offered it again: h1 failed",
        id="rule5: failed on the target before",
    ),
    pytest.param(
        Pass(G, rollout(G, failed_before={"h1": R.FELL_BACK}), reports(G)),
        "h1",
        (HostState.ROLLED_BACK, Action.NONE, R.FAILED_BEFORE),
        "failed on this commit",
        id="rule5: fell back on the target before",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": SUCCEEDED}), reports(G, h1=running(TARGET))),
        "h1",
        (HostState.IN_SYNC, Action.NONE, R.IN_SYNC),
        "runs the desired commit, greenboot green",
        id="rule4: on the target and green",
    ),
    pytest.param(
        Pass(G, rollout(G), reports(G, h1=running(age=15 * MIN))),
        "h1",
        (HostState.STALE, Action.NONE, R.STALE),
        "h1 last report 15m ago",
        id="rule10: silent for staleAfter",
    ),
    pytest.param(
        Pass(G, rollout(G, started=NOW - 3 * 60 * MIN), reports(G, h1=None)),
        "h1",
        (HostState.STALE, Action.NONE, R.SKIPPED_STALE),
        "h1 never reported; skipped after 2h",
        id="rule10: never reported, for skipStaleAfter",
    ),
    pytest.param(
        Pass(G, rollout(G, started=NOW - 15 * MIN), reports(G, h1=None)),
        "h1",
        (HostState.STALE, Action.NONE, R.NO_REPORT),
        "never reported since the rollout began 15m ago; not counted against the reboot "
        "budget; skipped if still silent at 2026-11-25 13:45Z",
        id="rule10: never reported, for staleAfter: shown, not counted against the budget",
    ),
    pytest.param(
        Pass(G, rollout(G, started=EARLIER), reports(G, h1=None)),
        "h1",
        (HostState.PENDING, Action.NONE, R.NO_REPORT),
        "has not reported yet; skipped if still silent at 2026-11-25 13:55Z",
        id="rule10: no report since the rollout began",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        (HostState.UPDATING, Action.REBOOT, R.REBOOT_ALLOWED),
        "reboot into the target now; reboots allowed at any time (no maintenance window)",
        id="rule3: allowed to reboot, not rebooted yet",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        (HostState.UPDATING, Action.REBOOT, R.REBOOT_ALLOWED),
        "reboot into the target now",
        id="rule3: staged, allowed to reboot by this pass",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        "h1",
        (HostState.UPDATING, Action.NONE, R.WAITING_FOR_HEALTH),
        "rebooted; waiting for greenboot to report the target healthy",
        id="rule4: rebooted into the target, greenboot unknown",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": SUCCEEDED}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        "h1",
        (HostState.UPDATING, Action.NONE, R.WAITING_FOR_HEALTH),
        "runs the target; waiting for greenboot green",
        id="rule4: succeeded, then booted again without a verdict yet",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES, {"h1": OFFERED}), reports(TWO_WAVES)),
        "h2",
        (HostState.PENDING, Action.NONE, R.WAVE_NOT_OPEN),
        "in wave 2/2, not open yet",
        id="rule2: its wave is not open",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED), reports(PAUSED)),
        "h1",
        (HostState.PENDING, Action.NONE, R.PAUSED),
        "paused in the fleet repo",
        id="rule7: paused before it was offered",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED, {"h1": DRIFTED}), reports(PAUSED)),
        "h1",
        (HostState.UNEXPECTED, Action.NONE, R.PAUSED),
        "paused in the fleet repo",
        id="rule11: drifted, paused before it was offered again",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED, {"h1": OFFERED}), reports(PAUSED)),
        "h1",
        (HostState.PENDING, Action.NONE, R.PAUSED),
        "paused in the fleet repo",
        id="rule7: offered, not staged yet when paused: not told to stage",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED, {"h1": OFFERED}), reports(PAUSED, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.NONE, R.PAUSED),
        "paused in the fleet repo; keeps the staged target until the rollout goes on",
        id="rule7: staged when paused: keeps it, is not told to stage",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED, {"h1": ALLOWED}), reports(PAUSED, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.NONE, R.PAUSED),
        "keeps the staged target",
        id="rule7: allowed to reboot, not rebooted when paused: keeps the staged target",
    ),
    pytest.param(
        Pass(DEPENDENT, fresh(), reports(DEPENDENT)),
        "h1",
        (HostState.PENDING, Action.NONE, R.WAITING_FOR_DEPENDENCY),
        f"waiting for base to complete {SHOWN}",
        id="rule8: waiting for the group it depends on",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G)),
        "h1",
        (HostState.STAGING, Action.STAGE, R.WAITING_FOR_STAGE),
        "download and stage the target; do not reboot",
        id="rule2: offered, not staged yet",
    ),
    pytest.param(
        Pass(G, rollout(G), reports(G)),
        "h1",
        (HostState.STAGING, Action.STAGE, R.WAITING_FOR_STAGE),
        "download and stage the target",
        id="rule2: offered by this pass",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": dataclasses.replace(DRIFTED, offered_at=EARLIER)}), reports(G)),
        "h1",
        (HostState.UNEXPECTED, Action.STAGE, R.WAITING_FOR_STAGE),
        "download and stage the target",
        id="rule11: drifted, offered the target again",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}, halted=HALT), reports(G, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.UNSTAGE, R.HALTED),
        f"{HALT}; remove the staged target so that no reboot boots it",
        id="rule5: staged when the rollout halted: told to drop it",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}, halted=HALT), reports(G)),
        "h1",
        (HostState.PENDING, Action.NONE, R.HALTED),
        HALT,
        id="rule5: offered, not staged yet when the rollout halted: not told to stage",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}, halted=HALT), reports(G, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.UNSTAGE, R.HALTED),
        HALT,
        id="rule5: allowed to reboot, not rebooted when the rollout halted: told to drop it",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED, "h2": OFFERED}),
            reports(
                G,
                h1=running(TARGET, greenboot=Greenboot.RED, boot_id="boot-2"),
                h2=running(staged=TARGET),
            ),
        ),
        "h2",
        (HostState.STAGED, Action.UNSTAGE, R.HALTED),
        f"halted after 1 failure(s) (threshold 1): h1 booted {SHOWN}",
        id="rule5: staged when another host of its wave fails: told to drop it",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": SUCCEEDED}, halted=HALT),
            reports(G, h1=running(TARGET)),
        ),
        "h1",
        (HostState.IN_SYNC, Action.NONE, R.IN_SYNC),
        "runs the desired commit",
        id="rule5: a host already updated stays as it is when the rollout halts",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, failed_before={"h1": R.HEALTH_TIMEOUT}),
            reports(G, h1=running(staged=TARGET)),
        ),
        "h1",
        (HostState.FAILED, Action.UNSTAGE, R.FAILED_BEFORE),
        "h1 failed; remove the staged deployment so that no reboot boots it",
        id="rule5: failed on the target and still has it staged: told to drop it",
    ),
    pytest.param(
        Pass(RESUMING, rollout(RESUMING, {"h1": OFFERED}, halted=HALT), reports(RESUMING)),
        "h1",
        (HostState.STAGING, Action.STAGE, R.WAITING_FOR_STAGE),
        "download and stage the target",
        id="rule5: offered before the halt, told to stage again once resumed",
    ),
    pytest.param(
        Pass(WINDOWED, rollout(WINDOWED, {"h1": OFFERED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.STAGE, R.WAITING_FOR_WINDOW),
        "waiting for maintenance window 02:00–03:00 UTC, opens in 14h",
        id="rule6: staged outside the maintenance window",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": OFFERED, "h2": ALLOWED}),
            reports(G, running(staged=TARGET)),
        ),
        "h1",
        (HostState.STAGED, Action.STAGE, R.WAITING_FOR_BUDGET),
        "staged; waiting for the reboot budget (at most 1 updating at once)",
        id="rule3: staged, the budget taken by another",
    ),
    pytest.param(
        Pass(
            BY_SITE,
            rollout(BY_SITE, {"h1": OFFERED, "h2": ALLOWED}),
            reports(BY_SITE, running(staged=TARGET)),
        ),
        "h1",
        (HostState.STAGED, Action.STAGE, R.WAITING_FOR_BUDGET),
        "(at most 1 updating at once in site=a)",
        id="rule3: staged, the budget of its site taken",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES, {"h1": OFFERED}), reports(G, h2=running(staged=OTHER))),
        "h2",
        (HostState.PENDING, Action.UNSTAGE, R.UNSTAGE),
        f"{SHOWN_OTHER} is staged but is not the desired commit; remove the staged deployment",
        id="another commit staged while nothing else to do",
    ),
    pytest.param(
        Pass(
            TWO_WAVES,
            rollout(TWO_WAVES, {"h2": ALLOWED}, target=OTHER, waves_opened=2),
            reports(TWO_WAVES, h2=running(staged=OTHER)),
        ),
        "h2",
        (HostState.PENDING, Action.UNSTAGE, R.UNSTAGE),
        f"{SHOWN_OTHER} is staged but is not the desired commit",
        id="rule9: allowed to reboot into a superseded target, not rebooted: told to drop it",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED, "h2": OFFERED}, target=OTHER),
            reports(G, h1=None, h2=running(staged=OTHER)),
        ),
        "h2",
        (HostState.PENDING, Action.UNSTAGE, R.UNSTAGE),
        f"{SHOWN_OTHER} is staged but is not the desired commit",
        id="rule9: staged a superseded target while another host finishes: told to drop it",
    ),
    pytest.param(
        Pass(HELD, rollout(HELD), reports(HELD)),
        "h1",
        (HostState.HELD, Action.NONE, R.HELD),
        "held in the inventory: RMA-7: failing DIMM; not offered any target",
        id="rule13: a held host is told nothing",
    ),
    pytest.param(
        Pass(HELD, rollout(HELD, {"h1": OFFERED}), reports(HELD, h1=running(staged=TARGET))),
        "h1",
        (HostState.HELD, Action.UNSTAGE, R.HELD),
        "held in the inventory: RMA-7: failing DIMM; remove the staged deployment",
        id="rule13: a held host with the target staged is told to drop it",
    ),
    pytest.param(
        Pass(HELD, rollout(HELD, {"h1": SUCCEEDED}), reports(HELD, h1=running(TARGET))),
        "h1",
        (HostState.HELD, Action.NONE, R.HELD),
        "held in the inventory",
        id="rule13: a held host on the target is still shown as held",
    ),
    pytest.param(
        Pass(FROZEN, rollout(FROZEN, {"h1": OFFERED}), reports(FROZEN, h1=running(staged=TARGET))),
        "h1",
        (HostState.STAGED, Action.STAGE, R.FROZEN),
        f"staged; {FROZEN_SAYS} change freeze; staging is still allowed",
        id="rule14: staged during a freeze: told why it does not reboot",
    ),
    pytest.param(
        Pass(FROZEN, rollout(FROZEN, {"h1": OFFERED}), reports(FROZEN)),
        "h1",
        (HostState.STAGING, Action.STAGE, R.WAITING_FOR_STAGE),
        f"download and stage the target; do not reboot ({FROZEN_SAYS}",
        id="rule14: staging goes on during a freeze, and says so",
    ),
]


# Rule 16: a host whose agent holds its allowed reboot back to drain it.
DRAIN_FAILED = dataclasses.replace(
    DRAINING,
    failed_at=EARLIER,
    failure=Reason(R.DRAIN_TIMEOUT, "h1 did not drain within 1h: 3 active calls"),
)
HOST_PLANS += [
    pytest.param(
        Pass(G, rollout(G, {"h1": DRAINING}), reports(G, h1=draining())),
        "h1",
        (HostState.DRAINING, Action.REBOOT, R.DRAINING),
        "allowed to reboot; draining since 2026-11-25 11:56Z (pre-reboot command: 3 active "
        "calls); fails to drain at 2026-11-25 12:56Z",
        id="rule16: draining, still told to reboot so that its agent tries again",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": DRAIN_FAILED}), reports(G, h1=draining())),
        "h1",
        (HostState.FAILED, Action.NONE, R.DRAIN_TIMEOUT),
        "h1 did not drain within 1h: 3 active calls; not allowed to reboot again in this rollout",
        id="rule16: failed to drain; keeps the target staged",
    ),
]


@pytest.mark.parametrize(("given", "host", "expected", "says"), HOST_PLANS)
def test_what_a_host_is_told_and_why(
    given: Pass, host: str, expected: tuple[HostState, Action, ReasonCode], says: str
) -> None:
    told = given.plan().hosts[host]
    assert (told.state, told.action, told.reason.code) == expected
    assert says in told.reason.message


def test_the_host_table_covers_every_state_and_action() -> None:
    told = [cast(tuple[HostState, Action, ReasonCode], row.values[2]) for row in HOST_PLANS]
    assert {state for state, _, _ in told} == set(HostState)
    assert {action for _, action, _ in told} == set(Action)


# -- the decisions of a pass, and their reasons ----------------------------------------------

DECISIONS = [
    pytest.param(
        Pass(G, fresh(), ON_TARGET),
        None,
        [
            (K.ROLLOUT_STARTED, R.DESIRED_COMMIT_CHANGED),
            (K.WAVE_OPENED, R.WAVE_OPENED),
            (K.WAVE_COMPLETED, R.WAVE_DONE),
            (K.ROLLOUT_COMPLETED, R.ALL_HOSTS_DONE),
        ],
        f"desired commit is now {SHOWN}",
        id="rule1: first sight, hosts already on the target",
    ),
    pytest.param(
        Pass(G, fresh(), ON_TARGET),
        "h1",
        [(K.HOST_SUCCEEDED, R.IN_SYNC)],
        f"h1 runs {SHOWN}, greenboot green",
        id="rule1: first sight, a host already on the target simply succeeds",
    ),
    pytest.param(
        Pass(VERSIONED, fresh(), reports(VERSIONED)),
        None,
        [(K.ROLLOUT_STARTED, R.DESIRED_COMMIT_CHANGED), (K.WAVE_OPENED, R.WAVE_OPENED)],
        f"desired commit is now {SHOWN} (9.1)",
        id="rule1: a new commit with a version starts a rollout",
    ),
    pytest.param(
        Pass(G, fresh(), reports(G)),
        "h1",
        [(K.HOST_OFFERED, R.STAGE_TARGET)],
        "h1 may stage the target",
        id="rule2: an open wave is offered the target",
    ),
    pytest.param(
        Pass(G, fresh(), reports(G, h1=None)),
        "h1",
        [],
        "",
        id="rule2: a host that never reported is not offered the target (until it reports)",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}, target=OTHER), reports(G, h1=None)),
        None,
        [(K.ROLLOUT_SUPERSEDED, R.SUPERSEDED), (K.ROLLOUT_STARTED, R.DESIRED_COMMIT_CHANGED)],
        f"superseded by {SHOWN} before it was done",
        id="rule9: a new commit supersedes a rollout in progress",
    ),
    pytest.param(
        Pass(
            G,
            rollout(
                G,
                dict.fromkeys(G.order, SUCCEEDED),
                target=OTHER,
                lifecycle=Lifecycle.COMPLETED,
                done={0: EARLIER},
            ),
            reports(G, running(OTHER)),
        ),
        None,
        [(K.ROLLOUT_STARTED, R.DESIRED_COMMIT_CHANGED), (K.WAVE_OPENED, R.WAVE_OPENED)],
        f"desired commit is now {SHOWN}",
        id="rule1: a new commit after a completed rollout supersedes nothing",
    ),
    pytest.param(
        Pass(RESUMING, rollout(RESUMING, halted=HALT), reports(RESUMING)),
        None,
        [(K.ROLLOUT_RESUMED, R.RESUMED)],
        "resumed from the fleet repo (`OPS-1`)",
        id="rule5: a new resume value in Git lifts the halt",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=running(TARGET, boot_id="boot-2"))),
        "h1",
        [(K.HOST_SUCCEEDED, R.IN_SYNC)],
        f"h1 runs {SHOWN}, greenboot green",
        id="rule4: rebooted into the target, green",
    ),
    pytest.param(
        Pass(
            VERSIONED,
            rollout(VERSIONED, {"h1": ALLOWED}),
            reports(VERSIONED, h1=running(TARGET, boot_id="boot-2")),
        ),
        "h1",
        [(K.HOST_SUCCEEDED, R.IN_SYNC)],
        "h1 runs 9.1, greenboot green",
        id="rule4: success names the version",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        "h1",
        [],
        "",
        id="rule4: greenboot unknown is not success",
    ),
    pytest.param(
        Pass(G, rollout(G), reports(G, h1=running(TARGET, greenboot=Greenboot.UNKNOWN))),
        "h1",
        [(K.HOST_ON_TARGET, R.WAITING_FOR_HEALTH)],
        "h1 runs the target; waiting for greenboot green",
        id="rule4: on the target without being told",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.RED, boot_id="boot-2")),
        ),
        "h1",
        [(K.HOST_FAILED, R.GREENBOOT_RED)],
        f"h1 booted {SHOWN} and greenboot reports red",
        id="rule5: greenboot red on the target",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.RED, boot_id="boot-2")),
        ),
        None,
        [(K.ROLLOUT_HALTED, R.FAILURE_THRESHOLD)],
        f"halted after 1 failure(s) (threshold 1): h1 booted {SHOWN}",
        id="rule5: failures reach the threshold",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=running(PREVIOUS, boot_id="boot-2"))),
        "h1",
        [(K.HOST_FAILED, R.FELL_BACK)],
        f"h1 rebooted but booted {SHOWN_BEFORE} instead of the target: greenboot fell back",
        id="rule5: rebooted and came back on another commit",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G, h1=running(error="no space left"))),
        "h1",
        [(K.HOST_FAILED, R.DEPLOY_ERROR)],
        "h1 could not stage the target: no space left",
        id="rule5: could not stage the target",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": dataclasses.replace(ALLOWED, reboot_allowed_at=NOW - 25 * MIN)}),
            reports(G, h1=running(staged=TARGET)),
        ),
        "h1",
        [(K.HOST_FAILED, R.HEALTH_TIMEOUT)],
        "h1 was not healthy on the target within 20m",
        id="rule5: not healthy within healthTimeout",
    ),
    pytest.param(
        Pass(G, rollout(G, failed_before={"h1": R.GREENBOOT_RED}), reports(G)),
        "h1",
        [],
        "",
        id="rule5: a host that failed on the commit is never offered it again",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h1 may reboot into the target; reboots allowed at any time (no maintenance window)",
        id="rule3: staged, within the budget",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G, h1=running(staged=TARGET, age=15 * MIN))),
        "h1",
        [],
        "",
        id="rule3: a stale host is not allowed to reboot",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h2": OFFERED}, started=NOW - 30 * MIN),
            reports(G, h1=None, h2=running(staged=TARGET)),
        ),
        "h2",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h2 may reboot into the target",
        id="rule3: a host that never reported does not take the budget",
    ),
    pytest.param(
        Pass(
            BY_SITE,
            rollout(BY_SITE, {"h2": OFFERED}, started=NOW - 30 * MIN),
            reports(BY_SITE, h1=None, h2=running(staged=TARGET)),
        ),
        "h2",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h2 may reboot into the target",
        id="rule3: a host that never reported does not take its site's budget",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": OFFERED, "h2": OFFERED}),
            reports(G, h1=running(staged=TARGET, age=15 * MIN), h2=running(staged=TARGET)),
        ),
        "h2",
        [],
        "",
        id="rule3: a host that reported and went silent takes the budget",
    ),
    pytest.param(
        Pass(WINDOWED, rollout(WINDOWED, {"h1": ALLOWED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_REVOKED, R.REBOOT_REVOKED)],
        "h1 did not reboot in time; waiting for maintenance window 02:00–03:00 UTC",
        id="rule6: an unused permission lapses when the window closes",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED, {"h1": ALLOWED}), reports(G, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_REVOKED, R.REBOOT_REVOKED)],
        "h1 did not reboot in time; paused in the fleet repo",
        id="rule7: pause withdraws an unused permission",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}, halted=HALT), reports(G, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_REVOKED, R.REBOOT_REVOKED)],
        f"h1 did not reboot in time; {HALT}",
        id="rule5: a halt withdraws an unused permission",
    ),
    pytest.param(
        Pass(
            spec(rollout={"waves": [1, "100%"], "soakTime": "0s"}),
            rollout(TWO_WAVES, {"h1": SUCCEEDED}),
            reports(G, h1=running(TARGET)),
        ),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE), (K.WAVE_OPENED, R.WAVE_OPENED)],
        "wave 1/2 done",
        id="rule4: a done wave opens the next after its soak",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES, {"h1": SUCCEEDED}), reports(G, h1=running(TARGET))),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE)],
        "wave 1/2 done",
        id="rule4: a done wave soaks before the next opens",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES), reports(G, h1=running(TARGET))),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE), (K.WAVE_OPENED, R.WAVE_OPENED)],
        "wave 1/2 done",
        id="rule4: a wave in which no host needed an update needs no soak",
    ),
    pytest.param(
        Pass(
            TWO_WAVES,
            rollout(TWO_WAVES, {"h1": OFFERED}, started=NOW - 3 * 60 * MIN),
            reports(G, h1=None),
        ),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE)],
        "wave 1/2 done",
        id="rule10: a skipped host does not hold its wave back",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES, started=NOW - 30 * MIN), reports(G, h1=None)),
        None,
        [],
        "",
        id="rule10: a host that never reported holds its wave back until skipStaleAfter",
    ),
    pytest.param(
        Pass(TWO_WAVES, rollout(TWO_WAVES, started=NOW - 3 * 60 * MIN), reports(G, h1=None)),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE), (K.WAVE_OPENED, R.WAVE_OPENED)],
        "wave 1/2 done",
        id="rule10: a host that never reported is skipped; its wave needed no update, no soak",
    ),
    pytest.param(
        Pass(G, DONE, reports(G, running(TARGET), h2=running(PREVIOUS, boot_id="boot-2"))),
        "h2",
        [(K.HOST_DRIFTED, R.UNEXPECTED_DRIFT), (K.HOST_OFFERED, R.STAGE_TARGET)],
        f"h2 left the target on its own: it runs {SHOWN_BEFORE}",
        id="rule11: a host that left the target is offered it again",
    ),
    pytest.param(
        Pass(G, rollout(G, dict.fromkeys(G.order, SUCCEEDED)), ON_TARGET),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE), (K.ROLLOUT_COMPLETED, R.ALL_HOSTS_DONE)],
        "wave 1/1 done",
        id="rule1: the rollout completes with its last wave",
    ),
    pytest.param(
        Pass(DEPENDENT, fresh(), reports(DEPENDENT), {"base": {TARGET: EARLIER}}),
        None,
        [(K.ROLLOUT_STARTED, R.DESIRED_COMMIT_CHANGED), (K.WAVE_OPENED, R.WAVE_OPENED)],
        "desired commit is now",
        id="rule8: the group it depends on completed the same commit",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED, "h2": OFFERED, "h3": OFFERED}), reports(G)),
        None,
        [],
        "",
        id="nothing new: no decision",
    ),
    pytest.param(
        Pass(HELD, fresh(), reports(HELD)),
        "h1",
        [],
        "",
        id="rule13: a held host is never offered the target",
    ),
    pytest.param(
        Pass(HELD, rollout(HELD, {"h1": OFFERED}), reports(HELD, h1=running(staged=TARGET))),
        "h1",
        [],
        "",
        id="rule13: a held host with the target staged is not allowed to reboot",
    ),
    pytest.param(
        Pass(HELD, rollout(HELD, {"h1": ALLOWED}), reports(HELD, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_REVOKED, R.HELD)],
        "h1 is held in the inventory: RMA-7: failing DIMM",
        id="rule13: holding a host withdraws its unused reboot permission",
    ),
    pytest.param(
        Pass(
            HELD,
            rollout(HELD, {"h1": dataclasses.replace(ALLOWED, reboot_allowed_at=NOW - 25 * MIN)}),
            reports(HELD, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        "h1",
        [],
        "",
        id="rule13: a held host is not judged (no health timeout)",
    ),
    pytest.param(
        Pass(
            HELD,
            rollout(HELD, {"h1": ALLOWED, "h2": OFFERED}),
            reports(
                HELD,
                h1=running(TARGET, boot_id="boot-2", greenboot=Greenboot.UNKNOWN),
                h2=running(staged=TARGET),
            ),
        ),
        "h2",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h2 may reboot into the target",
        id="rule13: a held host does not take the reboot budget",
    ),
    pytest.param(
        Pass(HELD_TWO_WAVES, rollout(HELD_TWO_WAVES), reports(HELD_TWO_WAVES)),
        None,
        [(K.WAVE_COMPLETED, R.WAVE_DONE), (K.WAVE_OPENED, R.WAVE_OPENED)],
        "wave 1/2 done",
        id="rule13: a held host does not hold its wave back",
    ),
    pytest.param(
        Pass(
            G,
            rollout(
                HELD,
                {"h2": SUCCEEDED, "h3": SUCCEEDED},
                lifecycle=Lifecycle.COMPLETED,
                done={0: EARLIER},
            ),
            reports(G, running(TARGET), h1=running()),
        ),
        "h1",
        [(K.HOST_OFFERED, R.STAGE_TARGET)],
        "h1 may stage the target",
        id="rule13: a host whose hold is removed is offered the target",
    ),
    pytest.param(
        Pass(FROZEN, rollout(FROZEN, {"h1": OFFERED}), reports(FROZEN, h1=running(staged=TARGET))),
        "h1",
        [],
        "",
        id="rule14: no reboot is granted during a group's freeze",
    ),
    pytest.param(
        Pass(
            FLEET_FROZEN,
            rollout(FLEET_FROZEN, {"h1": OFFERED}),
            reports(FLEET_FROZEN, h1=running(staged=TARGET)),
        ),
        "h1",
        [],
        "",
        id="rule14: no reboot is granted during a fleet-wide freeze",
    ),
    pytest.param(
        Pass(FROZEN, fresh(), reports(FROZEN)),
        "h1",
        [(K.HOST_OFFERED, R.STAGE_TARGET)],
        "h1 may stage the target",
        id="rule14: a freeze does not stop offers (staging goes on)",
    ),
    pytest.param(
        Pass(FROZEN, rollout(FROZEN, {"h1": ALLOWED}), reports(FROZEN, h1=running(staged=TARGET))),
        "h1",
        [(K.REBOOT_REVOKED, R.REBOOT_REVOKED)],
        f"h1 did not reboot in time; {FROZEN_SAYS}",
        id="rule14: a freeze withdraws an unused permission",
    ),
    pytest.param(
        Pass(
            spec(freezes=[OVER, LATER]),
            rollout(G, {"h1": OFFERED}),
            reports(G, h1=running(staged=TARGET)),
        ),
        "h1",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h1 may reboot into the target",
        id="rule14: between freezes, reboots are granted",
    ),
]


def finishing_in(state: GroupState, host: str, allowed_at: datetime = EARLIER) -> GroupState:
    """``state`` with ``host`` still updating to the superseded commit ``OTHER``."""
    return dataclasses.replace(state, finishing={host: finishing(allowed_at=allowed_at)})


# Hosts still updating to a superseded commit, in a group that is otherwise done.
DECISIONS += [
    pytest.param(
        Pass(G, finishing_in(DONE, "h9"), ON_TARGET),
        "h9",
        [(K.SUPERSEDED_HOST_FINISHED, R.SUPERSEDED_HOST_FINISHED)],
        f"h9, updating to superseded {SHOWN_OTHER}, left the group",
        id="rule9: a superseded host left the group",
    ),
    pytest.param(
        Pass(
            G,
            finishing_in(DONE, "h1"),
            reports(G, running(TARGET), h1=running(TARGET, boot_id="boot-2")),
        ),
        "h1",
        [(K.SUPERSEDED_HOST_FINISHED, R.SUPERSEDED_HOST_FINISHED)],
        f"h1, updating to superseded {SHOWN_OTHER}, rebooted (now on {SHOWN})",
        id="rule9: a superseded host rebooted",
    ),
    pytest.param(
        Pass(G, finishing_in(DONE, "h1"), ON_TARGET),
        "h1",
        [(K.SUPERSEDED_HOST_FINISHED, R.SUPERSEDED_HOST_FINISHED)],
        "had not rebooted yet; its permission was withdrawn",
        id="rule9: a superseded host reports it has not rebooted",
    ),
    pytest.param(
        Pass(
            G,
            finishing_in(DONE, "h1", allowed_at=NOW - 25 * MIN),
            reports(G, running(TARGET), h1=running(TARGET, age=15 * MIN)),
        ),
        "h1",
        [(K.SUPERSEDED_HOST_FINISHED, R.SUPERSEDED_HOST_FINISHED)],
        "did not report back within the health timeout",
        id="rule9: a superseded host silent past its health timeout",
    ),
    pytest.param(
        Pass(
            G,
            finishing_in(DONE, "h1"),
            reports(G, running(TARGET), h1=running(TARGET, age=15 * MIN)),
        ),
        "h1",
        [],
        "",
        id="rule9: a silent superseded host keeps its slot until its health timeout",
    ),
]


# Rule 16: drains. h1 was allowed to reboot at EARLIER (11:55), from boot-1.
LONG_DRAIN = dataclasses.replace(
    ALLOWED, reboot_allowed_at=NOW - 65 * MIN, draining_since=NOW - 60 * MIN
)
DECISIONS += [
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=draining())),
        "h1",
        [(K.HOST_DRAINING, R.DRAINING)],
        "h1 holds its reboot back to drain since 2026-11-25 11:56Z: 3 active calls",
        id="rule16: the first deferral of an allowed reboot starts the drain at its `since`",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=draining(since=NOW - 90 * MIN))),
        "h1",
        [(K.HOST_DRAINING, R.DRAINING)],
        "since 2026-11-25 11:55Z",
        id="rule16: a `since` before the permission (a lagging clock) counts from the permission",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=draining(since=NOW + 90 * MIN))),
        "h1",
        [(K.HOST_DRAINING, R.DRAINING)],
        "since 2026-11-25 11:59Z",
        id="rule16: a `since` after the report (a leading clock) counts from the report",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}), reports(G, h1=draining(age=7 * MIN))),
        "h1",
        [],
        "",
        id="rule16: a deferral reported before this permission was granted is ignored",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": ALLOWED}),
            reports(G, h1=running(staged=OTHER, deferred=deferral())),
        ),
        "h1",
        [],
        "",
        id="rule16: a deferral with another commit staged is ignored",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": OFFERED}), reports(G, h1=draining())),
        "h1",
        [(K.REBOOT_ALLOWED, R.REBOOT_ALLOWED)],
        "h1 may reboot into the target",
        id="rule16: a deferral from a host not allowed to reboot is not a drain",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": DRAINING}), reports(G, h1=draining())),
        "h1",
        [],
        "",
        id="rule16: draining within the drain timeout: nothing to decide, not a health timeout",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": LONG_DRAIN}),
            reports(G, h1=draining(since=NOW - 60 * MIN, age=30 * MIN)),
        ),
        "h1",
        [(K.HOST_FAILED, R.DRAIN_TIMEOUT)],
        "h1 did not drain within 1h: 3 active calls",
        id="rule16: at the drain timeout the host fails, even without a new report",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": LONG_DRAIN}), reports(G, h1=draining())),
        None,
        [],
        "",
        id="rule16: a drain timeout does not count toward failureThreshold: no halt",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": DRAINING}), reports(G, h1=running(staged=TARGET))),
        "h1",
        [(K.HOST_DRAINED, R.DRAINED)],
        "h1 drained after 4m; it reboots now",
        id="rule16: the deferral goes away: drained",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": DRAINING}),
            reports(G, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        "h1",
        [(K.HOST_DRAINED, R.DRAINED)],
        "h1 drained after 4m",
        id="rule16: back on the target after draining: drained, health timeout from now",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": DRAINING}),
            reports(G, h1=running(TARGET, boot_id="boot-2")),
        ),
        "h1",
        [(K.HOST_SUCCEEDED, R.IN_SYNC)],
        f"h1 runs {SHOWN}, greenboot green",
        id="rule16: back on the target and green after draining: success",
    ),
    pytest.param(
        Pass(
            G,
            rollout(G, {"h1": DRAIN_FAILED}),
            reports(G, h1=running(TARGET, boot_id="boot-2")),
        ),
        "h1",
        [(K.HOST_SUCCEEDED, R.IN_SYNC)],
        f"h1 runs {SHOWN}, greenboot green",
        id="rule16: failed to drain, then drained and rebooted by hand: a success",
    ),
    pytest.param(
        Pass(WINDOWED, rollout(WINDOWED, {"h1": DRAINING}), reports(WINDOWED, h1=draining())),
        "h1",
        [(K.REBOOT_REVOKED, R.REBOOT_REVOKED)],
        "h1 did not reboot in time",
        id="rule16: a drain still going when the window closes loses its permission",
    ),
]


@pytest.mark.parametrize(("given", "host", "expected", "says"), DECISIONS)
def test_what_a_pass_decides_and_why(
    given: Pass,
    host: str | None,
    expected: list[tuple[DecisionKind, ReasonCode]],
    says: str,
) -> None:
    """The decisions about ``host`` (about the rollout for None), in order; ``says`` is in
    the first one's reason."""
    decided = [d for d in given.plan().decisions if d.host == host]
    assert [(d.kind, d.reason.code) for d in decided] == expected
    if decided:
        assert says in decided[0].reason.message


# -- where the group stands ----------------------------------------------------------------

STATUSES = [
    pytest.param(
        Pass(spec(0, selector={"matchLabels": {"role": "none"}}), fresh(), {}),
        (GroupPhase.EMPTY, R.NO_HOSTS),
        "no hosts",
        id="no hosts",
    ),
    pytest.param(
        Pass(G, DONE, ON_TARGET),
        (GroupPhase.IN_SYNC, R.ALL_HOSTS_DONE),
        f"3/3 hosts run {SHOWN}",
        id="rule1: completed and every host on the target",
    ),
    pytest.param(
        Pass(G, DONE, reports(G, running(TARGET), h2=running(PREVIOUS, boot_id="boot-2"))),
        (GroupPhase.PROGRESSING, R.UNEXPECTED_DRIFT),
        f"2/3 hosts run {SHOWN}",
        id="rule11: completed, a host drifted",
    ),
    pytest.param(
        Pass(G, rollout(G, halted=HALT), reports(G)),
        (GroupPhase.HALTED, R.HALTED),
        HALT,
        id="rule5: halted",
    ),
    pytest.param(
        Pass(PAUSED, rollout(PAUSED), reports(G)),
        (GroupPhase.PAUSED, R.PAUSED),
        "paused in the fleet repo",
        id="rule7: paused",
    ),
    pytest.param(
        Pass(DEPENDENT, fresh(), reports(G)),
        (GroupPhase.WAITING, R.WAITING_FOR_DEPENDENCY),
        f"waiting for base to complete {SHOWN}",
        id="rule8: waiting for a dependency",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": ALLOWED}, target=OTHER), reports(G, h1=None)),
        (GroupPhase.WAITING, R.WAITING_FOR_SUPERSEDED_HOSTS),
        "waiting for 1 host(s) still updating to a superseded commit",
        id="rule9: waiting for superseded hosts",
    ),
    pytest.param(
        Pass(
            TWO_WAVES,
            rollout(TWO_WAVES, {"h1": SUCCEEDED}, done={0: EARLIER}),
            reports(G, h1=running(TARGET)),
        ),
        (GroupPhase.SOAKING, R.SOAKING),
        "wave 1/2 soaking until 2026-11-25 12:25Z",
        id="rule4: soaking",
    ),
    pytest.param(
        Pass(
            WINDOWED,
            rollout(WINDOWED, dict.fromkeys(G.order, OFFERED)),
            reports(G, running(staged=TARGET)),
        ),
        (GroupPhase.WAITING_WINDOW, R.WAITING_FOR_WINDOW),
        "waiting for maintenance window 02:00–03:00 UTC, opens in 14h",
        id="rule6: staged, waiting for the window",
    ),
    pytest.param(
        Pass(
            WINDOWED,
            rollout(WINDOWED, {"h1": ALLOWED, "h2": OFFERED, "h3": OFFERED}),
            reports(
                G,
                running(staged=TARGET),
                h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2"),
            ),
        ),
        (GroupPhase.PROGRESSING, R.WAVE_OPENED),
        "wave 1/1 in progress: 0/3 hosts done",
        id="rule6: a host still updating when the window closed",
    ),
    pytest.param(
        Pass(G, rollout(G, {"h1": SUCCEEDED}), reports(G, h1=running(TARGET))),
        (GroupPhase.PROGRESSING, R.WAVE_OPENED),
        "wave 1/1 in progress: 1/3 hosts done",
        id="rule2: a wave in progress",
    ),
    pytest.param(
        Pass(
            HELD,
            rollout(
                HELD,
                {"h2": SUCCEEDED, "h3": SUCCEEDED},
                lifecycle=Lifecycle.COMPLETED,
                done={0: EARLIER},
            ),
            reports(HELD, running(TARGET), h1=running()),
        ),
        (GroupPhase.IN_SYNC, R.ALL_HOSTS_DONE),
        f"2/2 hosts run {SHOWN} (1 held)",
        id="rule13: completed with a held host not on the target is in sync",
    ),
    pytest.param(
        Pass(
            FROZEN,
            rollout(FROZEN, dict.fromkeys(G.order, OFFERED)),
            reports(G, running(staged=TARGET)),
        ),
        (GroupPhase.FROZEN, R.FROZEN),
        FROZEN_SAYS,
        id="rule14: staged, reboots wait for a freeze to end",
    ),
]


@pytest.mark.parametrize(("given", "expected", "says"), STATUSES)
def test_where_the_group_stands(
    given: Pass, expected: tuple[GroupPhase, ReasonCode], says: str
) -> None:
    status = given.plan().status
    assert (status.phase, status.reason.code) == expected
    assert says in status.reason.message


def test_the_status_table_covers_every_phase() -> None:
    phases = [cast(tuple[GroupPhase, ReasonCode], row.values[1])[0] for row in STATUSES]
    assert set(phases) == set(GroupPhase)


# -- when to look again ----------------------------------------------------------------------

Q = spec(rollout=QUIET)
Q_TWO_WAVES = spec(rollout={**QUIET, "waves": [1, "100%"]})
Q_WINDOWED = spec(rollout=QUIET, maintenanceWindows=NIGHTLY)
Q_OPEN_WINDOW = spec(
    rollout=QUIET,
    maintenanceWindows=[{"schedule": "0 11 * * *", "duration": "2h", "timeZone": "UTC"}],
)
SILENCE = spec(rollout={"staleAfter": "10m", "skipStaleAfter": "1h"})

REQUEUES = [
    pytest.param(
        Pass(
            SILENCE,
            DONE,
            reports(SILENCE, running(TARGET, age=timedelta(0)), h3=running(TARGET, age=70 * MIN)),
        ),
        NOW + 10 * MIN,
        id="rule10: when the first host heard from would turn stale",
    ),
    pytest.param(
        Pass(
            SILENCE,
            DONE,
            reports(
                SILENCE,
                h1=running(TARGET, age=20 * MIN),
                h2=running(TARGET, age=30 * MIN),
                h3=running(TARGET, age=40 * MIN),
            ),
        ),
        NOW + 20 * MIN,
        id="rule10: when the first stale host would be skipped",
    ),
    pytest.param(
        Pass(Q, DONE, reports(Q, running(TARGET))),
        NOW - MIN + timedelta(days=1),
        id="in sync: only when a host would turn stale",
    ),
    pytest.param(
        Pass(
            Q_TWO_WAVES,
            rollout(Q_TWO_WAVES, {"h1": SUCCEEDED}, done={0: EARLIER}),
            reports(Q, h1=running(TARGET)),
        ),
        EARLIER + 30 * MIN,
        id="rule4: when the soak ends",
    ),
    pytest.param(
        Pass(
            Q_TWO_WAVES,
            rollout(
                Q_TWO_WAVES, {"h1": SUCCEEDED}, done={0: NOW - 40 * MIN}, last_failure_at=EARLIER
            ),
            reports(Q, h1=running(TARGET)),
        ),
        EARLIER + 30 * MIN,
        id="rule4: a failure after the wave was done restarts its soak",
    ),
    pytest.param(
        Pass(
            Q,
            rollout(Q, {"h1": ALLOWED}),
            reports(Q, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        EARLIER + 20 * MIN,
        id="rule4: at the health deadline",
    ),
    pytest.param(
        Pass(Q, rollout(Q, {"h1": OFFERED}), reports(Q, h1=running(staged=TARGET))),
        NOW + 20 * MIN,
        id="rule3: at the health deadline of a reboot allowed now",
    ),
    pytest.param(
        Pass(
            Q_WINDOWED, rollout(Q_WINDOWED, {"h1": OFFERED}), reports(Q, h1=running(staged=TARGET))
        ),
        datetime(2026, 11, 26, 2, 0, tzinfo=NOW.tzinfo),
        id="rule6: when the window opens",
    ),
    pytest.param(
        Pass(Q_OPEN_WINDOW, rollout(Q_OPEN_WINDOW, {"h1": OFFERED}), reports(Q)),
        NOW + 45 * MIN,
        id="rule6: when the window stops allowing reboots (its end less the margin)",
    ),
    pytest.param(
        Pass(
            Q,
            finishing_in(DONE, "h1"),
            reports(Q, running(TARGET), h1=None),
        ),
        EARLIER + 20 * MIN,
        id="rule9: at the health deadline of a silent superseded host",
    ),
    pytest.param(
        Pass(
            spec(rollout=QUIET, freezes=[XMAS]),
            rollout(Q, {"h1": OFFERED}),
            reports(Q, h1=running(staged=TARGET)),
        ),
        NOW + 2 * 60 * MIN,
        id="rule14: when the freeze ends (in its own time zone)",
    ),
    pytest.param(
        Pass(
            spec(rollout=QUIET, freezes=[LATER]),
            rollout(Q, {"h1": OFFERED}),
            reports(Q),
        ),
        NOW + 3 * 60 * MIN,
        id="rule14: when the next freeze begins (to withdraw unused permissions)",
    ),
]


REQUEUES += [
    pytest.param(
        Pass(Q, rollout(Q, {"h1": DRAINING}), reports(Q, h1=draining())),
        NOW - 4 * MIN + 60 * MIN,
        id="rule16: at the drain deadline, from the drain's start (not the health deadline)",
    ),
    pytest.param(
        Pass(
            Q,
            rollout(Q, {"h1": DRAINING}),
            reports(Q, h1=running(TARGET, greenboot=Greenboot.UNKNOWN, boot_id="boot-2")),
        ),
        NOW + 20 * MIN,
        id="rule16: at the health deadline counted from when the host was seen drained",
    ),
]


@pytest.mark.parametrize(("given", "expected"), REQUEUES)
def test_when_to_look_again(given: Pass, expected: datetime) -> None:
    assert given.plan().requeue_at == expected


# -- single passes with more to check than one row -------------------------------------------


def test_rule2_canaries_first_and_only_open_waves_are_offered() -> None:
    group = spec(6, canaries=["h5"], rollout={"waves": [1, "50%"]})
    plan = Pass(group, fresh(), reports(group)).plan()
    assert [d.host for d in plan.decisions if d.kind is K.HOST_OFFERED] == ["h5"]
    assert plan.hosts["h5"].action is Action.STAGE
    waiting = plan.hosts["h1"]
    assert (waiting.state, waiting.action, waiting.reason.code) == (
        HostState.PENDING,
        Action.NONE,
        R.WAVE_NOT_OPEN,
    )
    assert plan.spec.wave_ends == (1, 3, 6)


def test_rule3_reboot_budget_counts_updating_and_silent_hosts() -> None:
    group = spec(6, rollout={"rebootBudget": {"maxUnavailable": 2}})
    # All offered when the rollout began; h6 has not reported for 11 minutes, so it is stale.
    state = rollout(group, dict.fromkeys(group.order, OFFERED), started=NOW - 11 * MIN)
    silent = running(staged=TARGET, age=11 * MIN)
    plan = Pass(group, state, reports(group, running(staged=TARGET), h6=silent)).plan()
    allowed = [d.host for d in plan.decisions if d.kind is K.REBOOT_ALLOWED]
    assert len(allowed) == 1
    staged_waiting = [p for p in plan.hosts.values() if p.reason.code is R.WAITING_FOR_BUDGET]
    assert len(staged_waiting) == 4


def test_rule3_budget_split_by_label() -> None:
    sites = {f"h{i}": "a" if i <= 3 else "b" for i in range(1, 7)}
    group = spec(
        6, sites=sites, rollout={"rebootBudget": {"maxUnavailable": 1, "groupBy": ["site"]}}
    )
    state = rollout(group, dict.fromkeys(group.order, OFFERED))
    plan = Pass(group, state, reports(group, running(staged=TARGET))).plan()
    allowed = {d.host for d in plan.decisions if d.kind is K.REBOOT_ALLOWED}
    assert len(allowed) == 2
    assert {sites[host] for host in allowed if host} == {"a", "b"}


QUIET_G = spec(rollout=QUIET)  # G, where no host turns stale within the day
DRAIN_END = NOW - 4 * MIN + 60 * MIN  # DRAINING began at 11:56; drainTimeout is 1h


def test_rule16_a_draining_host_holds_its_budget_slot_until_its_drain_timeout() -> None:
    state = rollout(QUIET_G, {"h1": DRAINING, "h2": OFFERED, "h3": OFFERED})
    observed = reports(QUIET_G, running(staged=TARGET), h1=draining())
    before = Pass(QUIET_G, state, observed, now=DRAIN_END - timedelta(seconds=1)).plan()
    assert not [d for d in before.decisions if d.kind is K.REBOOT_ALLOWED]
    assert before.hosts["h1"].state is HostState.DRAINING
    assert before.hosts["h2"].reason.code is R.WAITING_FOR_BUDGET
    assert before.requeue_at == DRAIN_END  # the timeout fires without a report
    at_timeout = Pass(QUIET_G, state, observed, now=DRAIN_END).plan()
    assert [(d.kind, d.host) for d in at_timeout.decisions] == [
        (K.HOST_FAILED, "h1"),
        (K.REBOOT_ALLOWED, "h2"),  # h1's slot, freed in the same pass
    ]
    assert at_timeout.state.failed == {}  # the host's failure, not the build's
    assert at_timeout.status.phase is GroupPhase.PROGRESSING  # not halted
    rollout_now = at_timeout.state.rollout
    assert rollout_now is not None
    assert rollout_now.last_failure_at is None


def test_rule16_a_draining_host_holds_its_slot_against_a_fleetlock_request() -> None:
    with_lock = dataclasses.replace(QUIET_G, lock_clients=frozenset({"h2"}))
    state = rollout(with_lock, {"h1": DRAINING})
    observed = reports(with_lock, h1=draining())
    plan = plan_group(
        with_lock, state, observed, {}, NOW, locks=LockRequests(acquire=frozenset({"h2"}))
    )
    assert plan.state.locks == {}
    assert plan.locks["h2"].code is R.WAITING_FOR_BUDGET


def test_rule16_a_drain_failure_is_not_offered_again_only_in_this_rollout() -> None:
    state = rollout(QUIET_G, {"h1": DRAINING})
    failed = Pass(QUIET_G, state, reports(QUIET_G, h1=draining()), now=DRAIN_END).plan()
    assert failed.hosts["h1"].action is Action.NONE  # keeps the target staged
    # A later rollout of the same commit (here after another one) offers it again: unlike
    # a failure of the build, a drain failure does not follow the host from rollout to
    # rollout.
    newer = spec(rollout=QUIET, target=OTHER)
    observed = reports(newer, h1=running(staged=TARGET))
    moved_on = Pass(newer, failed.state, observed, now=DRAIN_END).plan()
    back = Pass(QUIET_G, moved_on.state, observed, now=DRAIN_END).plan()
    assert [d.kind for d in back.decisions if d.host == "h1"] == [
        K.HOST_OFFERED,
        K.REBOOT_ALLOWED,  # it still has the target staged
    ]


def reported_at(observed: dict[str, HostObservation], when: datetime) -> dict[str, HostObservation]:
    """The same reports, received at ``when``."""
    return {host: dataclasses.replace(obs, received_at=when) for host, obs in observed.items()}


def test_rule5_a_host_staged_when_its_wave_halts_is_never_told_to_stage_it_again() -> None:
    """The reported case: h1 and h2 in one wave, h2 staged, h1 fails: the rollout halts and
    h2 is told to drop the target on every pass until it has, and never to stage it again,
    until Git resumes the rollout."""
    group = spec(2, resume="")
    state = rollout(group, {"h1": ALLOWED, "h2": OFFERED})
    failed = running(TARGET, greenboot=Greenboot.RED, boot_id="boot-2")
    staged = reports(group, h1=failed, h2=running(staged=TARGET))
    plan = Pass(group, state, staged).plan()
    assert [(d.kind, d.host) for d in plan.decisions] == [
        (K.HOST_FAILED, "h1"),
        (K.ROLLOUT_HALTED, None),
    ]
    told = set()
    for minute in range(1, 30):  # h2 keeps reporting the target staged
        later = NOW + minute * MIN
        plan = Pass(group, plan.state, reported_at(staged, later), now=later).plan()
        assert plan.decisions == ()
        told.add((plan.hosts["h2"].action, plan.hosts["h2"].reason.code))
    assert told == {(Action.UNSTAGE, R.HALTED)}
    # Once it dropped it, it is told nothing.
    unstaged = reports(group, h1=failed)
    later = NOW + 30 * MIN
    plan = Pass(group, plan.state, reported_at(unstaged, later), now=later).plan()
    h2 = plan.hosts["h2"]
    assert (h2.state, h2.action, h2.reason.code) == (HostState.PENDING, Action.NONE, R.HALTED)
    # A new `resume` value in Git: it is offered again as before.
    resumed = spec(2, resume="OPS-1")
    plan = Pass(resumed, plan.state, reported_at(unstaged, later), now=later).plan()
    assert [d.kind for d in plan.decisions] == [K.ROLLOUT_RESUMED]
    h2 = plan.hosts["h2"]
    assert (h2.action, h2.reason.code) == (Action.STAGE, R.WAITING_FOR_STAGE)
    assert plan.hosts["h1"].action is Action.NONE  # failed on it: never offered it again


def test_rule4_first_rollout_of_a_new_fleet_does_not_soak_a_wave_already_on_the_target() -> None:
    """The reported case: the reconciler plans the new fleet before any host reported; the
    first wave's only host then reports that it runs the target. Nobody needed an update, so
    the next wave opens at once."""
    group = spec(rollout={"waves": [1, "100%"], "soakTime": "4h"})
    first = Pass(group, fresh(), {}).plan()
    assert [d.kind for d in first.decisions] == [K.ROLLOUT_STARTED, K.WAVE_OPENED]
    assert first.hosts["h1"].reason.code is R.NO_REPORT
    observed = reports(group, running(TARGET))
    second = Pass(group, first.state, observed, now=NOW + MIN).plan()
    assert [(d.kind, d.host) for d in second.decisions] == [
        (K.HOST_SUCCEEDED, "h1"),
        (K.HOST_SUCCEEDED, "h2"),
        (K.HOST_SUCCEEDED, "h3"),
        (K.WAVE_COMPLETED, None),
        (K.WAVE_OPENED, None),
        (K.WAVE_COMPLETED, None),
        (K.ROLLOUT_COMPLETED, None),
    ]
    assert second.status.phase is GroupPhase.IN_SYNC


def test_rule2_a_host_is_offered_the_target_by_the_pass_its_first_report_causes() -> None:
    group = spec(rollout={"waves": [1, "100%"], "soakTime": "4h"})
    first = Pass(group, fresh(), {}).plan()
    second = Pass(group, first.state, reports(group), now=NOW + MIN).plan()
    assert [(d.kind, d.host) for d in second.decisions] == [(K.HOST_OFFERED, "h1")]
    assert second.hosts["h1"].action is Action.STAGE
    assert second.state.rollout is not None
    assert second.state.rollout.waves_updated == {0}  # so its wave soaks once it is done


def test_a_pass_does_not_change_its_input_state() -> None:
    state = rollout(G, {"h1": ALLOWED})
    before = state.copy()
    plan = Pass(G, state, reports(G, h1=running(TARGET, greenboot=Greenboot.RED))).plan()
    assert plan.decisions
    assert state == before


# -- rules over several passes: the engine, a store and simulated hosts ------------------------

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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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
    # The host that never rebooted still has the failed target staged: it is told to drop it.
    staged = failure == "no_reboot"
    assert plan.hosts[canary].action is (Action.UNSTAGE if staged else Action.NONE)
    assert len(h.kinds(DecisionKind.HOST_OFFERED)) == 1  # nobody else was offered
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 1


def _stage_only(h: Harness, name: str) -> None:
    h.sim.hosts[name].staged = NEW  # stages, but never reboots when told to


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


# Rule 6 per host: a Dublin host and a New York host of one group, each with its own night
# (as from hosts/dub.yaml and hosts/nyc.yaml), over the group's own (noon UTC) window.
DUBLIN, NEW_YORK = "Europe/Dublin", "America/New_York"
SITE_ZONES = {"h1": DUBLIN, "h2": NEW_YORK}
OWN_NIGHTS = {
    host: [{"schedule": "0 2 * * *", "duration": "2h", "timeZone": zone}]
    for host, zone in SITE_ZONES.items()
}
NOON_UTC = [{"schedule": "0 12 * * *", "duration": "1h", "timeZone": "UTC"}]
TWO_SITES = spec(
    2,
    rollout={**QUIET, "rebootBudget": {"maxUnavailable": 2}, "rebootMargin": "15m"},
    maintenanceWindows=NOON_UTC,
    host_windows=OWN_NIGHTS,
)


def inside_own_night(now: datetime, zone: str) -> bool:
    """The oracle, without cron: the window opens at 02:00 local (03:00 on the night the
    clocks skip 02:00), lasts 2 hours of elapsed time, and a reboot needs 15 minutes left."""
    tz = ZoneInfo(zone)
    start = datetime.combine(now.astimezone(tz).date(), time(2), tz)
    if start.astimezone(UTC).astimezone(tz).hour != 2:  # 02:00 does not exist that night
        start = start.replace(hour=3)
    opens = start.astimezone(UTC)
    return opens <= now < opens + timedelta(hours=1, minutes=45)


@pytest.mark.parametrize(
    ("first", "days"),
    [
        (datetime(2026, 10, 23, tzinfo=UTC), 11),  # Dublin falls back Oct 25, New York Nov 1
        (datetime(2027, 3, 12, tzinfo=UTC), 4),  # New York springs forward Mar 14
        (datetime(2027, 3, 26, tzinfo=UTC), 4),  # Dublin springs forward Mar 28
    ],
)
def test_rule6_each_host_reboots_only_in_its_own_night_across_dst(
    first: datetime, days: int
) -> None:
    step = timedelta(minutes=15)
    told_to_reboot: dict[str, int] = {host: 0 for host in SITE_ZONES}
    previous: dict[str, bool] | None = None
    look_again: datetime | None = None
    now = first
    while now < first + timedelta(days=days):
        progress = HostProgress(offered_at=now - 5 * MIN)
        state = rollout(TWO_SITES, {"h1": progress, "h2": progress}, started=now - 60 * MIN)
        observed = reported_at(reports(TWO_SITES, running(staged=TARGET)), now - MIN)
        plan = Pass(TWO_SITES, state, observed, now=now).plan()
        answer = {}
        for host, zone in SITE_ZONES.items():
            answer[host] = inside_own_night(now, zone)
            told = plan.hosts[host]
            assert (told.action is Action.REBOOT) is answer[host], (host, now, told.reason)
            if not answer[host]:
                assert told.reason.code is R.WAITING_FOR_WINDOW, (host, now)
                assert zone in told.reason.message
            told_to_reboot[host] += answer[host]
        if previous is not None and previous != answer:
            # The pass before a change asked to be run again no later than the change.
            assert look_again is not None
            assert look_again <= now, (now, look_again)
        previous, look_again = answer, plan.requeue_at
        now += step
    assert all(told_to_reboot[host] == 7 * days for host in SITE_ZONES)  # 1h45m a night


@pytest.mark.parametrize(
    ("at", "keeps", "lapses", "says"),
    [
        (datetime(2026, 11, 26, 2, 30, tzinfo=UTC), "h1", "h2", "02:00–04:00 America/New_York"),
        (datetime(2026, 11, 26, 7, 30, tzinfo=UTC), "h2", "h1", "02:00–04:00 Europe/Dublin"),
    ],
)
def test_rule6_a_permission_lapses_only_where_the_hosts_own_window_is_closed(
    at: datetime, keeps: str, lapses: str, says: str
) -> None:
    allowed = HostProgress(
        offered_at=at - 60 * MIN, reboot_allowed_at=at - 10 * MIN, boot_id_at_reboot="boot-1"
    )
    state = rollout(TWO_SITES, {"h1": allowed, "h2": allowed}, started=at - 90 * MIN)
    observed = reported_at(reports(TWO_SITES, running(staged=TARGET)), at - MIN)
    plan = Pass(TWO_SITES, state, observed, now=at).plan()
    [revoked] = [d for d in plan.decisions if d.kind is K.REBOOT_REVOKED]
    assert revoked.host == lapses
    assert revoked.reason.code is R.REBOOT_REVOKED
    assert says in revoked.reason.message
    assert plan.hosts[keeps].action is Action.REBOOT
    assert plan.hosts[lapses].action is Action.STAGE
    assert plan.hosts[lapses].reason.code is R.WAITING_FOR_WINDOW


@pytest.mark.usefixtures("harness_on_both_stores")
def test_rule6_engine_reboots_each_site_in_its_own_night_across_dst(tmp_path: Path) -> None:
    hosts = {
        "dub-1": {"timezone": DUBLIN},
        "dub-2": {"timezone": DUBLIN},
        "nyc-1": {"timezone": NEW_YORK},
        "nyc-2": {"timezone": NEW_YORK},
    }
    policy = {**FAST, "waves": [1, "100%"], "rebootBudget": {"maxUnavailable": 2}}
    policy["rebootMargin"] = "15m"
    h = Harness(
        tmp_path,
        {"g": {"hosts": list(hosts), "rollout": policy, "maintenanceWindows": NOON_UTC}},
        hosts,
        start=datetime(2027, 3, 26, 18, 0, tzinfo=UTC),  # before Dublin's clocks go forward
        host_windows={h: OWN_NIGHTS["h1" if h.startswith("dub") else "h2"] for h in hosts},
    )
    h.run(timedelta(days=3))
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1
    for name, labels in hosts.items():
        reboots = h.sim.hosts[name].reboots_at
        assert reboots, name
        assert all(inside_own_night(t, labels["timezone"]) for t in reboots), (name, reboots)


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
def test_rule10_stale_hosts_are_reported_then_skipped(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "staleAfter": "10m", "skipStaleAfter": "1h"})
    order = h.engine.specs["g"].order  # without a pass: nobody has reported yet
    h.sim.hosts[order[1]].online = False  # in wave 2; never reports
    h.run(timedelta(minutes=50))
    plan = h.plan("g")
    assert plan.hosts[order[1]].state is HostState.STALE
    assert plan.hosts[order[1]].reason.code is ReasonCode.NO_REPORT
    # It holds its wave back but not the reboot budget (one at a time): its wave moved on.
    assert h.sim.hosts[order[2]].booted == NEW
    h.run(timedelta(hours=4))
    plan = h.plan("g")
    assert plan.hosts[order[1]].reason.code is ReasonCode.SKIPPED_STALE
    assert "never reported" in plan.hosts[order[1]].reason.message
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1
    h.sim.hosts[order[1]].online = True  # comes back: updated through the normal path
    h.run(timedelta(hours=1))
    assert h.sim.hosts[order[1]].booted == NEW


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
def test_fewer_waves_in_git_mid_rollout_does_not_break_planning(tmp_path: Path) -> None:
    h = harness(tmp_path, {**FAST, "soakTime": "0s"})
    h.run(timedelta(minutes=30))
    assert len(h.kinds(DecisionKind.WAVE_OPENED)) == 3
    h.change_fleet(groups={"g": {"hosts": list(HOSTS_6), "rollout": {**FAST, "waves": ["100%"]}}})
    plan = h.plan("g")
    assert plan.status.waves_total == 1
    h.run(timedelta(hours=1))
    assert len(h.kinds(DecisionKind.ROLLOUT_COMPLETED)) == 1


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
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


@pytest.mark.usefixtures("harness_on_both_stores")
def test_each_event_is_credited_to_the_revision_that_caused_it(tmp_path: Path) -> None:
    """Issue 13 point 4: what follows from a rollout traces to the commit that started it; a
    halt to the revision in force when it happened; a resume to the commit that set
    `resume`; a supersession to the commit that changed the desired commit."""
    h = harness(tmp_path, bad=[NEW])
    h.step()  # rev-1 starts the rollout
    h.change_fleet()  # rev-2: an unrelated change (same commit): no new rollout
    h.run(timedelta(minutes=30))
    [started] = h.kinds(DecisionKind.ROLLOUT_STARTED)
    [failed] = h.kinds(DecisionKind.HOST_FAILED)
    [halted] = h.kinds(DecisionKind.ROLLOUT_HALTED)
    assert (started.revision, failed.revision) == ("rev-1", "rev-1")
    assert halted.revision == "rev-2"  # in force when it halted

    h.change_fleet(groups={"g": {**h.groups["g"], "resume": "OPS-1"}})  # rev-3
    h.step()
    [resumed] = h.kinds(DecisionKind.ROLLOUT_RESUMED)
    assert resumed.revision == "rev-3"

    h.change_fleet(streams={"main": NEWER})  # rev-4
    h.step()
    [superseded] = h.kinds(DecisionKind.ROLLOUT_SUPERSEDED)
    assert superseded.revision == "rev-4"
    assert h.kinds(DecisionKind.ROLLOUT_STARTED)[-1].revision == "rev-4"


@pytest.mark.usefixtures("harness_on_both_stores")
def test_a_failure_follows_the_host_into_another_group(tmp_path: Path) -> None:
    """Issue 13 point 6: a host that failed on a commit in one group is not offered it again
    after it moved to another group."""
    hosts = {"h1": {}, "h2": {}, "h3": {}}
    one_by_one = {"waves": [1], "soakTime": "0s", "failureThreshold": 5}
    groups = {
        "a": {"hosts": ["h1"], "rollout": one_by_one},
        "b": {"hosts": ["h2", "h3"], "rollout": one_by_one, "paused": True},  # not yet
    }
    h = Harness(tmp_path, groups, hosts, streams={"main": OLD}, booted=OLD)
    h.change_fleet(streams={"main": NEW})
    h.sim.bad = {NEW}  # h1's update to NEW falls back
    h.run(timedelta(minutes=20))
    assert [d.host for g, d in h.log if g == "a" and d.kind is DecisionKind.HOST_FAILED] == ["h1"]

    h.change_fleet(
        groups={
            "a": {"hosts": ["h2"], "rollout": one_by_one},
            "b": {"hosts": ["h1", "h3"], "rollout": one_by_one},
        }
    )
    h.sim.bad = set()
    h.run(timedelta(minutes=30))
    plan = h.plan("b")
    assert plan.hosts["h1"].reason.code is ReasonCode.FAILED_BEFORE
    assert plan.hosts["h1"].action is Action.NONE
    offered_in_b = [d.host for g, d in h.log if g == "b" and d.kind is DecisionKind.HOST_OFFERED]
    assert "h1" not in offered_in_b
    assert h.sim.hosts["h1"].booted == OLD  # it never took NEW again


__all__ = ["harness_on_both_stores"]  # the fixture, for pytest
