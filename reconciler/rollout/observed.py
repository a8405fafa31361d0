"""What a host last told the reconciler about itself (its report, as the planner sees it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum


class Greenboot(StrEnum):
    """greenboot's verdict on the current boot."""

    GREEN = "green"
    RED = "red"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ApplyError:
    """The agent failed to pull or deploy ``commit``; ``message`` is its error text."""

    commit: str
    message: str


@dataclass(frozen=True, slots=True)
class RebootDeferral:
    """The agent holds back a reboot it was allowed: its pre-reboot command (a drain) failed.

    ``since`` is when it first deferred this reboot, by the host's clock; ``message`` the
    command's last output line (or why it did not finish); ``exit_code`` None when it timed
    out or could not start.
    """

    since: datetime
    message: str
    exit_code: int | None = None
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class HostObservation:
    """The latest report of one host.

    ``booted_commit`` is the *base* commit of the booted deployment (``base-checksum`` when
    packages are layered), which is what the fleet repo declares.
    """

    host: str
    received_at: datetime
    booted_commit: str | None
    boot_id: str | None
    greenboot: Greenboot = Greenboot.UNKNOWN
    staged_commit: str | None = None
    booted_version: str | None = None
    apply_error: ApplyError | None = None
    reboot_deferred: RebootDeferral | None = None

    def __post_init__(self) -> None:
        # One is kept per host (100,000 in a large fleet), and most hosts run one of a few
        # commits and versions: one string each, not one per host. Boot ids are unique. The
        # host's name is the fleet's own (interned by the Fleet), not a copy per restore.
        for name in ("host", "booted_commit", "staged_commit", "booted_version"):
            value = getattr(self, name)
            if value is not None and type(value) is str:
                object.__setattr__(self, name, sys.intern(value))

    def says_the_same_as(self, other: HostObservation) -> bool:
        """Whether ``other`` reports what this one does, whenever it was received: a
        heartbeat. Compared field by field, on the hot path of every report, rather than
        through a copy with the time replaced."""
        return all(getattr(self, name) == getattr(other, name) for name in _REPORTED)


#: What a report says, as opposed to when it was received.
_REPORTED = tuple(f.name for f in fields(HostObservation) if f.name != "received_at")


@dataclass(frozen=True, slots=True)
class LockRequests:
    """What FleetLock clients ask of a pass: hosts that want to reboot now (`pre-reboot`)
    and hosts that are back and give their lock up (`steady-state`). Like a report, a
    request is an observation: the planner decides whether it is granted."""

    acquire: frozenset[str] = frozenset()
    release: frozenset[str] = frozenset()
