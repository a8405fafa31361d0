"""Freezes: is every reboot frozen now, until when, and when does the next freeze begin?

A freeze is a fixed period in its own time zone (a holiday, an incident) during which no
reboot is granted; staging goes on, so the reboots after it are short.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.fleetrepo.models import Freeze


@dataclass(frozen=True, slots=True)
class FreezeState:
    """The freeze in force at one instant, if any, else the next one to begin."""

    active: Freeze | None = None  # of those in force, the one that ends last
    upcoming: Freeze | None = None  # the next to begin, when none is in force

    @property
    def frozen(self) -> bool:
        return self.active is not None

    @property
    def changes_at(self) -> datetime | None:
        """When the answer flips: the end of the freeze in force, or the start of the next."""
        if self.active is not None:
            return self.active.ends_at
        return self.upcoming.starts_at if self.upcoming is not None else None

    def describe(self) -> str:
        """A sentence for status output: which freeze, why, and when it ends."""
        if self.active is not None:
            f = self.active
            return (
                f"reboots frozen by `{f.name}` until {f.end:%Y-%m-%d %H:%M} {f.time_zone}: "
                f"{f.reason}"
            )
        if self.upcoming is not None:
            f = self.upcoming
            return (
                f"next freeze `{f.name}` from {f.start:%Y-%m-%d %H:%M} to "
                f"{f.end:%Y-%m-%d %H:%M} {f.time_zone}: {f.reason}"
            )
        return "no freeze"


def freeze_at(freezes: Sequence[Freeze], now: datetime) -> FreezeState:
    """The freeze in force at ``now`` (the one that ends last), else the next to begin."""
    active = [f for f in freezes if f.starts_at <= now < f.ends_at]
    if active:
        return FreezeState(active=max(active, key=lambda f: f.ends_at))
    later = [f for f in freezes if f.starts_at > now]
    return FreezeState(upcoming=min(later, key=lambda f: f.starts_at) if later else None)
