"""Small builders for single-pass planner tests: a group's spec, its durable state, and what
its hosts report. Everything is in memory; one pass of :func:`plan_group` takes microseconds.

Hosts are named ``h1``, ``h2``, ... and are in that rollout order (unless ``canaries`` say
otherwise). Times are relative to :data:`NOW`. Hosts run :data:`PREVIOUS` until they update to
:data:`TARGET`; the three commits differ in the 12 characters that sentences show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.rollout.observed import ApplyError, Greenboot, HostObservation, RebootDeferral
from reconciler.rollout.planner import GroupPlan, plan_group
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.spec import GroupSpec, group_spec
from reconciler.rollout.state import (
    FailureRecord,
    FinishingHost,
    GroupState,
    Halt,
    HostProgress,
    Lifecycle,
    Rollout,
)
from tests.fleets import build_fleet

PREVIOUS, TARGET, OTHER = "1" * 64, "2" * 64, "3" * 64
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
STARTED = NOW - 60 * MIN  # when the rollout under test began
EARLIER = NOW - 5 * MIN  # when something recent happened: an offer, a permission, a report

# One wave, one reboot at a time, no soak: each row overrides what it is about.
POLICY: dict[str, Any] = {
    "waves": ["100%"],
    "soakTime": "30m",
    "healthTimeout": "20m",
    "rebootBudget": {"maxUnavailable": 1},
}
NIGHTLY = [{"schedule": "0 2 * * *", "duration": "1h", "timeZone": "UTC"}]  # closed at NOW


def spec(
    hosts: int = 3,
    *,
    rollout: Mapping[str, Any] | None = None,
    sites: Mapping[str, str] | None = None,
    target: str = TARGET,
    version: str | None = None,
    held: Mapping[str, str] | None = None,
    fleet_freezes: list[Mapping[str, Any]] | None = None,
    host_windows: Mapping[str, list[Mapping[str, Any]]] | None = None,
    **group: Any,
) -> GroupSpec:
    """Group ``g`` of ``hosts`` hosts; ``rollout`` overrides :data:`POLICY`, ``group`` sets
    other fields of the group file (``paused``, ``maintenanceWindows``, ``canaries`` ...);
    ``held`` holds hosts out of rollouts in the inventory (host -> why); ``fleet_freezes``
    are freezes in fleet.yaml (a group's own go in ``freezes``); ``host_windows`` gives hosts
    windows of their own, as their inventory file or entry would."""
    names = [f"h{i}" for i in range(1, hosts + 1)]
    labels = {name: {"site": (sites or {}).get(name, "a")} for name in names}
    fields = {"canaries": names, **group, "rollout": {**POLICY, **(rollout or {})}}
    fields = fields if "selector" in fields else {"hosts": names, **fields}
    fleet = build_fleet(
        {"g": fields},
        labels,
        {"main": target},
        held=held,
        freezes=fleet_freezes,
        host_windows=host_windows,
    )
    built = group_spec(fleet, "g")
    if version is None:
        return built
    return dataclasses.replace(built, target=dataclasses.replace(built.target, version=version))


# -- durable state ----------------------------------------------------------------------------

OFFERED = HostProgress(offered_at=EARLIER)
ALLOWED = HostProgress(offered_at=EARLIER, reboot_allowed_at=EARLIER, boot_id_at_reboot="boot-1")
SUCCEEDED = dataclasses.replace(ALLOWED, succeeded_at=EARLIER)
DRAINING = dataclasses.replace(ALLOWED, draining_since=NOW - 4 * MIN)  # since the deferral below
DRIFTED = HostProgress(drifted=True)


def fresh() -> GroupState:
    """A group the reconciler has never planned."""
    return GroupState("g")


def rollout(
    of: GroupSpec,
    hosts: Mapping[str, HostProgress] | None = None,
    *,
    target: str = TARGET,
    lifecycle: Lifecycle = Lifecycle.ACTIVE,
    started: datetime = STARTED,
    waves_opened: int = 1,
    done: Mapping[int, datetime] | None = None,
    halted: str | None = None,
    failed_before: Mapping[str, ReasonCode] | None = None,
    finishing: Mapping[str, FinishingHost] | None = None,
    last_failure_at: datetime | None = None,
) -> GroupState:
    """A group in rollout number 1 to ``target``, begun at ``started``.

    ``hosts`` is each host's progress; ``done`` when each finished wave was done; ``halted``
    the message of the halt; ``failed_before`` the hosts that failed on ``target`` in an
    earlier rollout, and why; ``finishing`` the hosts still updating to a superseded commit.
    """
    hosts = dict(hosts or {})
    current = Rollout(
        1,
        target,
        PREVIOUS,
        "rev-1",
        started,
        lifecycle=Lifecycle.HALTED if halted else lifecycle,
        waves_opened=waves_opened,
        wave_done_at=dict(done or {}),
        waves_updated={of.wave_of[h] for h, p in hosts.items() if p.offered_at},
        last_failure_at=last_failure_at,
        failures_counted_since=started,
        halt=Halt(EARLIER, Reason(ReasonCode.FAILURE_THRESHOLD, halted), None) if halted else None,
        completed_at=EARLIER if lifecycle is Lifecycle.COMPLETED else None,
        hosts=hosts,
    )
    failed = {
        host: {target: FailureRecord(STARTED - 60 * MIN, Reason(code, f"{host} failed"), 0)}
        for host, code in (failed_before or {}).items()
    }
    return GroupState("g", current, dict(finishing or {}), failed)


def finishing(boot_id: str = "boot-1", allowed_at: datetime = EARLIER) -> FinishingHost:
    """A host allowed to reboot into the superseded commit ``OTHER`` at ``allowed_at``."""
    return FinishingHost(OTHER, allowed_at, boot_id)


# -- what hosts report ------------------------------------------------------------------------


def running(
    booted: str = PREVIOUS,
    *,
    staged: str | None = None,
    greenboot: Greenboot = Greenboot.GREEN,
    boot_id: str = "boot-1",
    age: timedelta = MIN,
    error: str | None = None,
    deferred: RebootDeferral | None = None,
) -> HostObservation:
    """A report received ``age`` ago from a host that booted ``booted``; ``error`` is a
    failure to stage ``TARGET``; ``deferred``, a reboot its agent holds back to drain it."""
    return HostObservation(
        "",
        NOW - age,
        booted,
        boot_id,
        greenboot,
        staged_commit=staged,
        apply_error=ApplyError(TARGET, error) if error else None,
        reboot_deferred=deferred,
    )


def deferral(since: datetime = NOW - 4 * MIN, message: str = "3 active calls") -> RebootDeferral:
    """The agent's pre-reboot command exited 1 with ``message``, first at ``since``."""
    return RebootDeferral(since, message, exit_code=1)


def draining(age: timedelta = MIN, **deferred: Any) -> HostObservation:
    """A host allowed to reboot (as :data:`ALLOWED`) that holds the reboot back to drain."""
    return running(staged=TARGET, age=age, deferred=deferral(**deferred))


def reports(
    of: GroupSpec, default: HostObservation | None = None, **hosts: HostObservation | None
) -> dict[str, HostObservation]:
    """Every host of ``of`` reports ``default`` (:func:`running` on ``PREVIOUS``), except those
    named, which report what they are given, or nothing for None."""
    base = running() if default is None else default
    observed = {}
    for host in of.order:
        obs = hosts.get(host, base)
        if obs is not None:
            observed[host] = dataclasses.replace(obs, host=host)
    return observed


@dataclass(frozen=True)
class Pass:
    """The inputs of one planning pass."""

    spec: GroupSpec
    state: GroupState
    observed: Mapping[str, HostObservation]
    completed_elsewhere: Mapping[str, Mapping[str, datetime]] = field(default_factory=dict)
    now: datetime = NOW

    def plan(self) -> GroupPlan:
        return plan_group(self.spec, self.state, self.observed, self.completed_elsewhere, self.now)
