"""Revoked builds: withdrawn fleet-wide in fleet.yaml, with a reason.

Validation refuses a stream or pin that names one (file, line and field of the stream or
pin, and the reason given); the planner treats hosts that run one as drift with reason
`revoked`, and halts a rollout whose target is revoked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.planner import Action, GroupPhase
from reconciler.rollout.reasons import ReasonCode
from reconciler.rollout.spec import group_spec
from tests.planner_builders import (
    OFFERED,
    PREVIOUS,
    TARGET,
    Pass,
    reports,
    rollout,
    running,
    spec,
)

PRODUCTION = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"
ELSEWHERE = "e" * 64


def revoke(fleet_dir: Path, commit: str, reason: str = "kernel panics on R650 (INC-4711)") -> None:
    fleet = fleet_dir / "fleet.yaml"
    fleet.write_text(
        fleet.read_text()
        + f"revoked:\n  - commit: {commit}\n    version: '9.1'\n    reason: {reason}\n"
    )


def test_a_revoked_build_that_nothing_names_is_valid_and_reaches_every_spec(
    fleet_dir: Path,
) -> None:
    revoke(fleet_dir, ELSEWHERE)
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is not None, result.problems
    assert result.fleet.revoked == {ELSEWHERE: "kernel panics on R650 (INC-4711)"}
    spec = group_spec(result.fleet, "callservers-dub")
    assert spec.revoked == {ELSEWHERE: "kernel panics on R650 (INC-4711)"}


def test_a_stream_that_names_a_revoked_build_is_refused_where_it_names_it(
    fleet_dir: Path,
) -> None:
    revoke(fleet_dir, PRODUCTION)
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is None
    [problem] = [p for p in result.problems if p.code == "ref.revoked-commit"]
    assert (problem.file, problem.line, problem.field) == ("streams/production.yaml", 9, "commit")
    assert "stream `production` names commit 3f9a0c2e6b1d" in problem.message
    assert "kernel panics on R650 (INC-4711)" in problem.message


def test_a_pin_that_names_a_revoked_build_is_refused(fleet_dir: Path) -> None:
    pinned = fleet_dir / "groups" / "callservers-fra-dsp.yaml"
    text = pinned.read_text()
    commit = text.split("commit: ", 1)[1].split()[0]
    revoke(fleet_dir, commit)
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is None
    [problem] = [p for p in result.problems if p.code == "ref.revoked-commit"]
    assert (problem.file, problem.field) == ("groups/callservers-fra-dsp.yaml", "pin.commit")


def test_a_build_revoked_twice_is_refused(fleet_dir: Path) -> None:
    revoke(fleet_dir, ELSEWHERE)
    fleet = fleet_dir / "fleet.yaml"
    fleet.write_text(fleet.read_text() + f"  - commit: {ELSEWHERE}\n    reason: again\n")
    result = load_fleet(DirectorySource(fleet_dir))
    assert [p.code for p in result.problems if p.is_error] == ["revoked.duplicate"]


# -- the planner -------------------------------------------------------------------------------

WHY = "kernel panics on R650 (INC-4711)"


def test_a_rollout_whose_target_is_revoked_halts_and_is_never_resumed() -> None:
    group = dataclasses.replace(spec(2, resume="OPS-1"), revoked={TARGET: WHY})
    state = rollout(group, {"h1": OFFERED})
    plan = Pass(group, state, reports(group, h1=running(staged=TARGET))).plan()
    [halted] = [d for d in plan.decisions if d.kind is DecisionKind.ROLLOUT_HALTED]
    assert halted.reason.code is ReasonCode.REVOKED
    assert WHY in halted.reason.message
    assert plan.hosts["h1"].action is Action.UNSTAGE  # halt means halt: the staged build goes
    assert plan.status.phase is GroupPhase.HALTED
    # A new `resume` value does not bring a revoked build back.
    again = Pass(dataclasses.replace(group, resume_token="OPS-2"), plan.state, reports(group))
    after = again.plan()
    assert not [d for d in after.decisions if d.kind is DecisionKind.ROLLOUT_RESUMED]
    assert all(p.action is not Action.STAGE for p in after.hosts.values())


def test_a_host_on_a_revoked_build_is_drift_with_reason_revoked_and_brought_back() -> None:
    group = dataclasses.replace(spec(2), revoked={PREVIOUS: WHY})
    plan = Pass(group, rollout(group), reports(group)).plan()  # both still run PREVIOUS
    for host in ("h1", "h2"):
        assert plan.hosts[host].reason.code is ReasonCode.REVOKED
        assert f"revoked in fleet.yaml ({WHY})" in plan.hosts[host].reason.message
    assert plan.hosts["h1"].action is Action.STAGE  # through the normal waves and budget
    assert plan.hosts["h2"].action is Action.STAGE
