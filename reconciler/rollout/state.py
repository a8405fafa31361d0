"""The durable part of a group's rollout: what was decided, so a restart decides the same.

Everything else (who runs what, who is healthy) is observed afresh on every pass. This state
is only what cannot be observed: which rollout is current and why, which waves opened and
when they finished, which hosts were offered the target or allowed to reboot (and with which
boot id), which host failed on which commit, and which host holds a FleetLock reboot lock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, Field, TypeAdapter

from reconciler.rollout.reasons import Reason


class Lifecycle(StrEnum):
    """Where a rollout is in its life, as recorded. Not to be confused with what the group is
    doing now (:class:`reconciler.rollout.explanation.GroupPhase`: soaking, waiting for a
    window...), which is explained afresh on every pass and never stored."""

    ACTIVE = "active"
    HALTED = "halted"
    COMPLETED = "completed"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class HostProgress:
    """One host's path through one rollout."""

    offered_at: datetime | None = None  # told to stage the target
    reboot_allowed_at: datetime | None = None
    boot_id_at_reboot: str | None = None  # to see that it rebooted, and into what
    succeeded_at: datetime | None = None
    failed_at: datetime | None = None
    failure: Reason | None = None
    drifted: bool = False  # brought back after it left the target on its own
    on_target_since: datetime | None = None  # booted the target without being told to
    # Allowed to reboot, its agent holds the reboot back until its pre-reboot command (a
    # drain) passes: since then (the agent's first deferral); the drain timeout counts
    # from here, and the health timeout does not run meanwhile.
    draining_since: datetime | None = None
    drained_at: datetime | None = None  # seen done draining: the health timeout counts from here

    @property
    def updating(self) -> bool:
        """Allowed to reboot (or on the target) and not yet healthy nor failed: counts against
        the reboot budget."""
        return (
            (self.reboot_allowed_at is not None or self.on_target_since is not None)
            and self.succeeded_at is None
            and self.failed_at is None
        )


@dataclass(frozen=True, slots=True)
class Halt:
    at: datetime
    reason: Reason
    resume_token: str | None  # the group's `resume` value at the time; a new value lifts it


@dataclass(slots=True)
class Rollout:
    """One attempt to bring a group to one commit."""

    number: int
    target: str
    previous: str | None
    revision: str | None  # fleet-repo commit that asked for this target
    started_at: datetime
    # stored as "phase" before it was named apart from the group's phase: both are read
    lifecycle: Annotated[Lifecycle, Field(validation_alias=AliasChoices("lifecycle", "phase"))] = (
        Lifecycle.ACTIVE
    )
    waves_opened: int = 0
    wave_done_at: dict[int, datetime] = field(default_factory=dict)
    waves_updated: set[int] = field(default_factory=set)  # waves in which a host was offered
    last_failure_at: datetime | None = None
    failures_counted_since: datetime | None = None
    resume_token: str | None = None
    halt: Halt | None = None
    completed_at: datetime | None = None
    hosts: dict[str, HostProgress] = field(default_factory=dict)

    def copy(self) -> Rollout:
        return dataclasses.replace(
            self,
            wave_done_at=dict(self.wave_done_at),
            waves_updated=set(self.waves_updated),
            hosts=dict(self.hosts),
        )


@dataclass(frozen=True, slots=True)
class FinishingHost:
    """A host that was mid-update when its rollout was superseded; it must finish first."""

    target: str
    reboot_allowed_at: datetime
    boot_id_at_reboot: str | None
    rollout: int | None = None


@dataclass(frozen=True, slots=True)
class FailureRecord:
    at: datetime
    reason: Reason
    rollout: int


@dataclass(frozen=True, slots=True)
class RebootLock:
    """A FleetLock reboot lock a host holds: a reboot permission its own client acts on.

    It lives beside the rollout, not in it: such a client reboots for its own update, so the
    lock outlives a new rollout and counts against the budget until it is released."""

    granted_at: datetime
    boot_id: str | None = None  # the boot our agent last reported then, if it reports


@dataclass(slots=True)
class GroupState:
    """Everything durable about one group."""

    group: str
    rollout: Rollout | None = None
    finishing: dict[str, FinishingHost] = field(default_factory=dict)
    # host -> commit -> why it failed there; such a host is never offered that commit again
    failed: dict[str, dict[str, FailureRecord]] = field(default_factory=dict)
    completed_commits: dict[str, datetime] = field(default_factory=dict)
    # host -> the FleetLock reboot lock it holds (durable: a restart must not free a slot
    # whose host may be rebooting)
    locks: dict[str, RebootLock] = field(default_factory=dict)

    def copy(self) -> GroupState:
        """A working copy the planner may change without touching this one."""
        return GroupState(
            self.group,
            self.rollout.copy() if self.rollout else None,
            dict(self.finishing),
            {h: dict(c) for h, c in self.failed.items()},
            dict(self.completed_commits),
            dict(self.locks),
        )

    @property
    def rollouts_started(self) -> int:
        """How many rollouts the group has had: rollouts are numbered from 1 and only the
        current one is kept, so its number says (derived, never stored)."""
        return self.rollout.number if self.rollout is not None else 0

    def failed_on(self, host: str, commit: str) -> FailureRecord | None:
        return self.failed.get(host, {}).get(commit)


_ADAPTER = TypeAdapter(GroupState)


def dump_state(state: GroupState) -> bytes:
    """JSON of ``state``, for the store."""
    return _ADAPTER.dump_json(state)


def load_state(data: bytes | str) -> GroupState:
    """Inverse of :func:`dump_state`."""
    return _ADAPTER.validate_json(data)
