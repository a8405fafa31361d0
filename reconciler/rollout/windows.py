"""Maintenance windows: may a host reboot now, and when does that answer next change?

A window opens at each cron match in its own time zone and stays open for its duration,
measured in elapsed time, so a 3-hour window that spans a DST change is still 3 hours.
Standard cron semantics (cronsim) decide what happens to a 02:30 schedule on the night the
clocks skip 02:00-03:00: it runs at 03:00, like cron does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from reconciler.durations import format_minutes
from reconciler.fleetrepo.models import MaintenanceWindow

_JUST_AFTER = timedelta(seconds=1)  # cronsim's reverse search excludes its start time


@dataclass(frozen=True, slots=True)
class RebootWindow:
    """Whether a reboot may start at one instant, and the window occurrence behind the answer.

    ``window`` is None when the group has no windows (reboots at any time). Otherwise it is
    the occurrence that allows the reboot now, or the next one that will.
    """

    allowed: bool
    window: MaintenanceWindow | None = None
    starts_at: datetime | None = None
    reboot_deadline: datetime | None = None  # window end minus the reboot margin

    @property
    def changes_at(self) -> datetime | None:
        """When the answer flips: the deadline if allowed now, else the next opening."""
        return self.reboot_deadline if self.allowed else self.starts_at

    def describe(self, now: datetime) -> str:
        """A sentence for status output."""
        if self.window is None:
            return "reboots allowed at any time (no maintenance window)"
        if self.starts_at is None:
            return "no maintenance window is longer than the reboot margin; reboots never start"
        zone = ZoneInfo(self.window.time_zone)
        start = self.starts_at.astimezone(zone)
        end = (self.starts_at + self.window.duration).astimezone(zone)
        span = f"{start:%H:%M}–{end:%H:%M} {self.window.time_zone}"
        if self.allowed and self.reboot_deadline is not None:
            return (
                f"inside maintenance window {span}; reboots may start for another "
                f"{format_minutes(self.reboot_deadline - now)}"
            )
        opens_in = format_minutes(self.starts_at - now)
        return f"waiting for maintenance window {span}, opens in {opens_in}"


# In the hour that repeats when clocks go back, cronsim may answer with the other of the two
# local times that look alike; comparing in UTC and stepping on puts such answers right.


def _last_start(window: MaintenanceWindow, now: datetime) -> datetime:
    """The latest start of ``window`` at or before ``now``, in UTC."""
    probe = (now + _JUST_AFTER).astimezone(ZoneInfo(window.time_zone))
    for start in CronSim(window.schedule, probe, reverse=True):
        if start.astimezone(UTC) <= now:
            return start.astimezone(UTC)
    raise AssertionError("unreachable: cron schedules repeat")  # pragma: no cover


def _next_start(window: MaintenanceWindow, now: datetime) -> datetime:
    """The first start of ``window`` after ``now``, in UTC."""
    for start in CronSim(window.schedule, now.astimezone(ZoneInfo(window.time_zone))):
        if start.astimezone(UTC) > now:
            return start.astimezone(UTC)
    raise AssertionError("unreachable: cron schedules repeat")  # pragma: no cover


def reboot_window(
    windows: Sequence[MaintenanceWindow], now: datetime, margin: timedelta
) -> RebootWindow:
    """May a host start a reboot at ``now``? A window counts only while ``margin`` is left."""
    if not windows:
        return RebootWindow(allowed=True)
    open_now: RebootWindow | None = None
    next_opening: RebootWindow | None = None
    for window in windows:
        usable = window.duration - margin
        if usable <= timedelta(0):
            continue  # too short to fit a reboot before it closes
        last_start = _last_start(window, now)
        deadline = last_start + usable
        if last_start <= now < deadline and (
            open_now is None or deadline > (open_now.reboot_deadline or now)
        ):
            open_now = RebootWindow(True, window, last_start, deadline)
        next_start = _next_start(window, now)
        if next_opening is None or next_start < (next_opening.starts_at or next_start):
            next_opening = RebootWindow(False, window, next_start, next_start + usable)
    return open_now or next_opening or RebootWindow(False, windows[0])
