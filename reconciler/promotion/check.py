"""When a stream is due to be promoted from another: a pure function of the fleet, the rollout
state, what hosts report and the time.

A stream that declares ``promotion: {from: staging, soakTime: 48h, minHealthyHosts: 3}`` is
due when the source stream's commit has run healthily for the soak time on at least that many
hosts and has failed nowhere. The soak is counted from the moment the N-th host that is
healthy now succeeded on that commit, so N hosts have run it for the whole period. Which
commit is due is all this module says; writing the promotion commit is
:mod:`reconciler.promotion.commit`'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reconciler.durations import format_minutes
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Promotion, Stream
from reconciler.rollout.gates import GateSample, GateVerdict, blocking, stream_gate_verdict
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.state import GroupState, Lifecycle


class PromotionStatus(StrEnum):
    DUE = "due"
    SOAKING = "soaking"  # enough healthy hosts; the soak time has not passed
    WAITING_FOR_HOSTS = "waiting_for_hosts"  # fewer healthy hosts on the commit than required
    BLOCKED_BY_FAILURE = "blocked_by_failure"  # the commit failed somewhere: never promoted
    # soaked, but a health check of the promotion policy has not passed (or failed since)
    WAITING_FOR_HEALTH_CHECKS = "waiting_for_health_checks"
    UP_TO_DATE = "up_to_date"  # the stream already runs the source commit
    ALREADY_PROMOTED = "already_promoted"  # a promotion of this commit was made before


@dataclass(frozen=True)
class PromotionCheck:
    """Whether ``stream`` should now take ``commit`` from ``source``, and why."""

    stream: str
    source: str
    commit: str
    version: str | None
    status: PromotionStatus
    message: str
    healthy_hosts: tuple[str, ...] = ()
    soaked_for: timedelta = timedelta(0)
    due_at: datetime | None = None  # when a soaking promotion becomes due, if nothing changes
    source_revision: str | None = None  # fleet-repo commit that put the commit on the source
    # What the check was made against, so the promotion is written against the same thing
    # even when a newer revision is taken in meanwhile.
    stream_commit: str = ""
    policy: Promotion | None = None
    # The fleet revision in force when the check was made: the only revision a promotion may
    # be built on (never on a newer tip that the gate has refused or not yet judged).
    revision_in_force: str | None = None
    #: The policy's health checks on the source build, once enough hosts run it healthily.
    gates: tuple[GateVerdict, ...] = ()

    @property
    def due(self) -> bool:
        return self.status is PromotionStatus.DUE


def review_branch(prefix: str, commit: str) -> str:
    """The branch a promotion is pushed to for review: one per promoted commit, so an open
    review never blocks the next one and nothing ever needs a force push."""
    return f"{prefix}-{commit[:12]}"


def check_promotion(
    fleet: Fleet,
    stream: Stream,
    states: Mapping[str, GroupState],
    observed: Mapping[str, HostObservation],
    promoted_before: Set[str],
    now: datetime,
    gate_samples: Sequence[GateSample] = (),
) -> PromotionCheck:
    """Check one stream that declares ``promotion``; ``promoted_before`` holds the source
    commits a promotion of this stream was already made for (never promote one twice);
    ``gate_samples``, the evaluations of the policy's health checks on the source commit,
    oldest first: it is due only while each passes (a later failure revokes that)."""
    policy = stream.promotion
    assert policy is not None, "only streams that declare promotion are checked"
    source = fleet.streams[policy.from_stream]
    commit = source.commit

    template = PromotionCheck(
        stream.name,
        source.name,
        commit,
        source.version,
        PromotionStatus.DUE,
        "",
        stream_commit=stream.commit,
        policy=policy,
        revision_in_force=fleet.revision,
    )

    def result(status: PromotionStatus, message: str, **fields: Any) -> PromotionCheck:
        return dataclasses.replace(template, status=status, message=message, **fields)

    if stream.commit == commit:
        return result(PromotionStatus.UP_TO_DATE, f"{stream.name} already runs {commit[:12]}")
    if commit in promoted_before:
        return result(
            PromotionStatus.ALREADY_PROMOTED,
            f"{commit[:12]} was already promoted to {stream.name}; not promoting it again",
        )
    failure = _failure_on(commit, states)
    if failure is not None:
        return result(
            PromotionStatus.BLOCKED_BY_FAILURE,
            f"{commit[:12]} failed on {failure}; it will not be promoted to {stream.name}",
        )
    source_groups = [g for g, spec in fleet.groups.items() if spec.stream == source.name]
    healthy_since = _healthy_since(commit, source_groups, fleet, states, observed, now)
    healthy = tuple(sorted(healthy_since))
    revision = _source_revision(commit, source_groups, states)
    if len(healthy_since) < policy.min_healthy_hosts:
        return result(
            PromotionStatus.WAITING_FOR_HOSTS,
            f"{len(healthy_since)} of {policy.min_healthy_hosts} required hosts run "
            f"{commit[:12]} and are healthy",
            healthy_hosts=healthy,
            source_revision=revision,
        )
    soak_start = sorted(healthy_since.values())[policy.min_healthy_hosts - 1]
    soaked_for = now - soak_start
    due_at = soak_start + policy.soak_time
    gates = tuple(stream_gate_verdict(check, gate_samples) for check in policy.health_checks)
    fields: dict[str, Any] = {
        "healthy_hosts": healthy,
        "soaked_for": soaked_for,
        "due_at": due_at,
        "source_revision": revision,
        "gates": gates,
    }
    if now < due_at:
        return result(
            PromotionStatus.SOAKING,
            f"{commit[:12]} has soaked {format_minutes(soaked_for)} of "
            f"{format_minutes(policy.soak_time)} on {len(healthy)} healthy hosts",
            **fields,
        )
    held_back = blocking(gates)
    if held_back:
        return result(
            PromotionStatus.WAITING_FOR_HEALTH_CHECKS,
            f"{commit[:12]} has soaked on {len(healthy)} healthy hosts; waiting for health "
            f"checks: {'; '.join(verdict.reason for verdict in held_back)}",
            **fields,
        )
    return result(
        PromotionStatus.DUE, _due_message(stream, policy, commit, soaked_for, healthy), **fields
    )


def _due_message(
    stream: Stream, policy: Promotion, commit: str, soaked_for: timedelta, healthy: tuple[str, ...]
) -> str:
    return (
        f"{commit[:12]} ran for {format_minutes(soaked_for)} on {len(healthy)} healthy hosts "
        f"with no failure (policy: {format_minutes(policy.soak_time)} on at least "
        f"{policy.min_healthy_hosts}); promoting it to {stream.name}"
    )


def _failure_on(commit: str, states: Mapping[str, GroupState]) -> str | None:
    """Where ``commit`` failed, in any group: a host that failed on it, or a halted rollout."""
    for group, state in sorted(states.items()):
        for host, records in sorted(state.failed.items()):
            if commit in records:
                return f"{host} ({group}): {records[commit].reason.message}"
        rollout = state.rollout
        if (
            rollout is not None
            and rollout.target == commit
            and rollout.lifecycle is Lifecycle.HALTED
        ):
            return f"group {group}, whose rollout halted"
    return None


def _healthy_since(
    commit: str,
    groups: list[str],
    fleet: Fleet,
    states: Mapping[str, GroupState],
    observed: Mapping[str, HostObservation],
    now: datetime,
) -> dict[str, datetime]:
    """Hosts of the source stream's groups that run ``commit`` and are healthy now, with when
    they succeeded on it. A host silent for longer than its group's ``staleAfter`` is not
    known to be healthy now, so it does not count."""
    since: dict[str, datetime] = {}
    for group in groups:
        state = states.get(group)
        rollout = state.rollout if state else None
        if rollout is None or rollout.target != commit:
            continue
        stale_after = fleet.rollout_policy(group).stale_after
        for host in fleet.members.get(group, ()):
            progress = rollout.hosts.get(host)
            seen = observed.get(host)
            if (
                progress is not None
                and progress.succeeded_at is not None
                and seen is not None
                and now - seen.received_at <= stale_after
                and seen.booted_commit == commit
                and seen.greenboot is Greenboot.GREEN
            ):
                since[host] = progress.succeeded_at
    return since


def _source_revision(
    commit: str, groups: list[str], states: Mapping[str, GroupState]
) -> str | None:
    """The fleet-repo commit that first asked a source group for ``commit``."""
    started = [
        (state.rollout.started_at, state.rollout.revision)
        for group in groups
        if (state := states.get(group)) is not None
        and state.rollout is not None
        and state.rollout.target == commit
        and state.rollout.revision is not None
    ]
    return min(started)[1] if started else None
