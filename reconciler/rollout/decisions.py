"""Decisions: the state changes the planner makes, each with its reason, and how they apply.

A decision is both an instruction to the store (persist this before acting on it) and an
audit event. :func:`apply_decision` is the only code that changes a :class:`GroupState`, so
replaying a pass's decisions over the state it started from gives the state it ended with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reconciler.rollout.reasons import HOST_SIDE_FAILURE_CODES, Reason
from reconciler.rollout.state import (
    FailureRecord,
    FinishingHost,
    GroupState,
    Halt,
    HostProgress,
    Lifecycle,
    RebootLock,
    Rollout,
)


class DecisionKind(StrEnum):
    ROLLOUT_STARTED = "rollout_started"
    ROLLOUT_SUPERSEDED = "rollout_superseded"
    ROLLOUT_HALTED = "rollout_halted"
    ROLLOUT_RESUMED = "rollout_resumed"
    ROLLOUT_COMPLETED = "rollout_completed"
    WAVE_OPENED = "wave_opened"
    WAVE_COMPLETED = "wave_completed"
    HOST_OFFERED = "host_offered"
    REBOOT_ALLOWED = "reboot_allowed"
    REBOOT_REVOKED = "reboot_revoked"
    HOST_SUCCEEDED = "host_succeeded"
    HOST_FAILED = "host_failed"
    HOST_DRIFTED = "host_drifted"
    HOST_ON_TARGET = "host_on_target"
    HOST_DRAINING = "host_draining"  # its agent holds an allowed reboot back to drain it
    HOST_DRAINED = "host_drained"  # ... and no longer does: it reboots
    SUPERSEDED_HOST_FINISHED = "superseded_host_finished"
    LOCK_GRANTED = "lock_granted"  # a FleetLock client may reboot its host
    LOCK_RELEASED = "lock_released"  # ... and its host is back, or said so


class RolloutResult(StrEnum):
    """How a rollout ended, once and for good."""

    COMPLETED = "completed"  # every host done
    SUPERSEDED = "superseded"  # a new desired commit replaced it while it was in progress
    HALTED = "halted"  # it was halted, and replaced by a new desired commit while halted


#: The decisions that tell how a rollout ends.
LIFECYCLE_KINDS = frozenset(
    {
        DecisionKind.ROLLOUT_HALTED,
        DecisionKind.ROLLOUT_RESUMED,
        DecisionKind.ROLLOUT_COMPLETED,
        DecisionKind.ROLLOUT_SUPERSEDED,
    }
)


def rollout_results(
    lifecycle: Iterable[tuple[str, int, DecisionKind]],
) -> dict[tuple[str, int], RolloutResult]:
    """How each rollout ended, from its lifecycle decisions (group, rollout number, kind) in
    the order they were taken. A rollout counts once, by its first ending: one that completed
    and was later superseded (a host brought back after drifting was still updating) stays
    completed; one superseded while halted ended halted. Halted alone is not an ending: it
    may still be resumed."""
    halted: set[tuple[str, int]] = set()
    results: dict[tuple[str, int], RolloutResult] = {}
    for group, number, kind in lifecycle:
        key = (group, number)
        if key in results:
            continue
        if kind is DecisionKind.ROLLOUT_HALTED:
            halted.add(key)
        elif kind is DecisionKind.ROLLOUT_RESUMED:
            halted.discard(key)
        elif kind is DecisionKind.ROLLOUT_COMPLETED:
            results[key] = RolloutResult.COMPLETED
        elif kind is DecisionKind.ROLLOUT_SUPERSEDED:
            ended_halted = key in halted
            results[key] = RolloutResult.HALTED if ended_halted else RolloutResult.SUPERSEDED
    return results


@dataclass(frozen=True, slots=True)
class Decision:
    """One state change. Only the fields its kind needs are set."""

    kind: DecisionKind
    at: datetime
    reason: Reason
    host: str | None = None
    rollout: int | None = None  # number of the rollout this decision belongs to
    commit: str | None = None  # that rollout's target
    previous: str | None = None
    revision: str | None = None
    wave: int | None = None
    boot_id: str | None = None
    resume_token: str | None = None
    since: datetime | None = None  # host_draining: when the drain began


def _rollout(state: GroupState) -> Rollout:
    if state.rollout is None:
        raise ValueError("decision needs a current rollout")
    return state.rollout


def _set_host(rollout: Rollout, host: str, **changes: object) -> None:
    rollout.hosts[host] = dataclasses.replace(rollout.hosts.get(host, HostProgress()), **changes)  # type: ignore[arg-type]


def apply_decision(state: GroupState, d: Decision) -> None:
    """Change ``state`` (a working copy) as decision ``d`` says."""
    kind = d.kind
    if kind is DecisionKind.ROLLOUT_STARTED:
        assert d.commit is not None
        number = state.rollouts_started + 1
        assert d.rollout in (None, number)
        state.rollout = Rollout(
            number,
            d.commit,
            d.previous,
            d.revision,
            d.at,
            failures_counted_since=d.at,
            resume_token=d.resume_token,
        )
        return
    if kind in (DecisionKind.LOCK_GRANTED, DecisionKind.LOCK_RELEASED):
        _apply_lock_decision(state, d)
        return
    rollout = _rollout(state)
    if kind is DecisionKind.ROLLOUT_SUPERSEDED:
        for host, progress in rollout.hosts.items():
            if progress.updating and progress.reboot_allowed_at is not None:
                state.finishing[host] = FinishingHost(
                    rollout.target, progress.reboot_allowed_at, progress.boot_id_at_reboot
                )
        rollout.lifecycle = Lifecycle.SUPERSEDED
    elif kind is DecisionKind.ROLLOUT_HALTED:
        rollout.lifecycle = Lifecycle.HALTED
        rollout.halt = Halt(d.at, d.reason, d.resume_token)
    elif kind is DecisionKind.ROLLOUT_RESUMED:
        rollout.lifecycle = (
            Lifecycle.ACTIVE if rollout.completed_at is None else Lifecycle.COMPLETED
        )
        rollout.halt = None
        rollout.resume_token = d.resume_token
        rollout.failures_counted_since = d.at
    elif kind is DecisionKind.ROLLOUT_COMPLETED:
        rollout.lifecycle = Lifecycle.COMPLETED
        rollout.completed_at = d.at
        state.completed_commits[rollout.target] = d.at
    elif kind is DecisionKind.WAVE_OPENED:
        assert d.wave is not None
        rollout.waves_opened = max(rollout.waves_opened, d.wave + 1)
    elif kind is DecisionKind.WAVE_COMPLETED:
        assert d.wave is not None
        rollout.wave_done_at[d.wave] = d.at
    elif kind is DecisionKind.SUPERSEDED_HOST_FINISHED:
        assert d.host is not None
        state.finishing.pop(d.host, None)
    else:
        _apply_host_decision(state, rollout, d)


def _apply_lock_decision(state: GroupState, d: Decision) -> None:
    """FleetLock locks live beside the rollout: a new rollout does not free them."""
    assert d.host is not None
    if d.kind is DecisionKind.LOCK_GRANTED:
        state.locks[d.host] = RebootLock(d.at, d.boot_id)
    else:
        state.locks.pop(d.host, None)


def _apply_host_decision(state: GroupState, rollout: Rollout, d: Decision) -> None:
    host, kind = d.host, d.kind
    assert host is not None
    if kind is DecisionKind.HOST_OFFERED:
        _set_host(rollout, host, offered_at=d.at)
        if d.wave is not None:
            rollout.waves_updated.add(d.wave)
    elif kind is DecisionKind.REBOOT_ALLOWED:
        _set_host(rollout, host, reboot_allowed_at=d.at, boot_id_at_reboot=d.boot_id)
    elif kind is DecisionKind.REBOOT_REVOKED:
        _set_host(
            rollout,
            host,
            reboot_allowed_at=None,
            boot_id_at_reboot=None,
            draining_since=None,
            drained_at=None,
        )
    elif kind is DecisionKind.HOST_DRAINING:
        _set_host(rollout, host, draining_since=d.since or d.at, drained_at=None)
    elif kind is DecisionKind.HOST_DRAINED:
        _set_host(rollout, host, draining_since=None, drained_at=d.at)
    elif kind is DecisionKind.HOST_SUCCEEDED:
        _set_host(rollout, host, succeeded_at=d.at, drifted=False)
    elif kind is DecisionKind.HOST_FAILED:
        _set_host(rollout, host, failed_at=d.at, failure=d.reason)
        if d.reason.code in HOST_SIDE_FAILURE_CODES:
            return  # the host's failure in this rollout, not the build's (rule 16)
        state.failed.setdefault(host, {})[rollout.target] = FailureRecord(
            d.at, d.reason, rollout.number
        )
        rollout.last_failure_at = d.at
    elif kind is DecisionKind.HOST_ON_TARGET:
        _set_host(rollout, host, on_target_since=d.at)
    elif kind is DecisionKind.HOST_DRIFTED:
        rollout.hosts[host] = HostProgress(drifted=True)
    else:  # pragma: no cover - every kind is handled above
        raise ValueError(f"unknown decision kind {kind}")
