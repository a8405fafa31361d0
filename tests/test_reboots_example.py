"""The worked example of docs/reboots.md, as a contract: five sites, each rebooting only in
its own night, a year-end freeze, a held server and a host that has never reported."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.planner import Action, GroupPlan, plan_group
from reconciler.rollout.reasons import ReasonCode
from reconciler.rollout.spec import group_spec
from reconciler.rollout.state import GroupState
from tests.conftest import ROOT

EXAMPLE = ROOT / "fleet-repo-schema" / "examples" / "five-sites"
OLD = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"


def plan_at(when: datetime) -> GroupPlan:
    """Every agent-run host on the old build with the new one staged, planned at ``when``
    (syd-call-02 is managed by Zincati and has no agent: it never reports here)."""
    fleet = load_fleet_or_raise(DirectorySource(EXAMPLE))
    spec = group_spec(fleet, "callservers")
    new = spec.target.commit
    observed = {
        host: HostObservation(host, when, OLD, f"{host}-boot-1", Greenboot.GREEN, new)
        for host in spec.order
        if host != "syd-call-02"
    }
    plan = plan_group(spec, GroupState("callservers"), observed, {}, when)
    return plan_group(spec, plan.state, observed, {}, when)  # offered, then: who may reboot


def rebooting(plan: GroupPlan) -> set[str]:
    return {h for h, p in plan.hosts.items() if p.action is Action.REBOOT}


def test_in_europes_night_one_server_per_european_site_reboots() -> None:
    plan = plan_at(datetime(2026, 12, 1, 2, 30, tzinfo=UTC))  # Dublin 02:30, Berlin 03:30
    assert {h[:3] for h in rebooting(plan)} == {"dub", "fra"}
    assert len(rebooting(plan)) == 2  # one per site: the budget is per site
    assert plan.hosts["fra-call-02"].reason.code is ReasonCode.HELD
    for host in ("nyc-call-01", "sin-call-01", "syd-call-01"):  # 21:30, 10:30, 13:30 there
        assert plan.hosts[host].reason.code is ReasonCode.WAITING_FOR_WINDOW
    assert plan.hosts["syd-call-02"].reason.code is ReasonCode.NO_REPORT


@pytest.mark.parametrize(
    ("hour", "site"),
    [(7, "nyc"), (18, "sin"), (16, "syd")],  # 02:30 in New York, Singapore and Sydney
)
def test_each_other_site_reboots_in_its_own_night(hour: int, site: str) -> None:
    plan = plan_at(datetime(2026, 12, 1, hour, 30, tzinfo=UTC))
    assert {h[:3] for h in rebooting(plan)} == {site}


def test_nothing_reboots_during_the_year_end_freeze_but_staging_goes_on() -> None:
    plan = plan_at(datetime(2026, 12, 24, 2, 30, tzinfo=UTC))
    assert rebooting(plan) == set()
    assert plan.hosts["dub-call-01"].reason.code is ReasonCode.FROZEN
    assert "year-end change freeze" in plan.hosts["dub-call-01"].reason.message
