"""Maintenance windows in their own time zone, across DST changes, with the reboot margin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.fleetrepo.models import MaintenanceWindow
from reconciler.rollout.windows import reboot_window

MARGIN = timedelta(minutes=15)


def window(schedule: str, duration: str, zone: str) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate(
        {"schedule": schedule, "duration": duration, "timeZone": zone}
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "allowed", "changes_at"),
    [
        (utc(2026, 1, 10, 1, 59), False, utc(2026, 1, 10, 2, 0)),  # winter: Dublin = UTC
        (utc(2026, 1, 10, 2, 0), True, utc(2026, 1, 10, 4, 45)),
        (utc(2026, 1, 10, 4, 44), True, utc(2026, 1, 10, 4, 45)),
        (utc(2026, 1, 10, 4, 45), False, utc(2026, 1, 11, 2, 0)),  # margin: too late to start
        (utc(2026, 7, 10, 1, 30), True, utc(2026, 7, 10, 3, 45)),  # summer: Dublin = UTC+1
        (utc(2026, 7, 10, 3, 50), False, utc(2026, 7, 11, 1, 0)),
    ],
)
def test_daily_window_in_local_time(now: datetime, allowed: bool, changes_at: datetime) -> None:
    result = reboot_window([window("0 2 * * *", "3h", "Europe/Dublin")], now, MARGIN)
    assert (result.allowed, result.changes_at) == (allowed, changes_at)


def test_window_on_the_night_clocks_spring_forward() -> None:
    # 2026-03-08: New York skips 02:00-03:00. A 02:30 window starts at 03:00 EDT, like cron.
    ny = window("30 2 * * *", "2h", "America/New_York")
    before = reboot_window([ny], utc(2026, 3, 8, 6, 0), MARGIN)
    assert before.starts_at == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    inside = reboot_window([ny], utc(2026, 3, 8, 8, 0), MARGIN)
    assert inside.allowed
    assert inside.reboot_deadline == utc(2026, 3, 8, 8, 45)  # 2h of real time minus margin


def test_window_on_the_night_clocks_fall_back_lasts_its_real_duration() -> None:
    # 2026-10-25: Dublin goes from 02:00 IST back to 01:00 GMT. A 00:30 window of 3h.
    dublin = window("30 0 * * *", "3h", "Europe/Dublin")
    inside = reboot_window([dublin], utc(2026, 10, 25, 1, 0), MARGIN)
    assert inside.starts_at == utc(2026, 10, 24, 23, 30)
    assert inside.reboot_deadline == utc(2026, 10, 25, 2, 15)


def test_day_of_week_zero_is_sunday() -> None:
    sunday_only = window("0 2 * * 0", "1h", "UTC")
    assert reboot_window([sunday_only], utc(2026, 11, 29, 2, 10), MARGIN).allowed  # Sunday
    assert not reboot_window([sunday_only], utc(2026, 11, 30, 2, 10), MARGIN).allowed


def test_window_shorter_than_the_margin_is_never_used() -> None:
    short = window("0 2 * * *", "10m", "UTC")
    result = reboot_window([short], utc(2026, 1, 1, 2, 1), MARGIN)
    assert not result.allowed
    assert "never start" in result.describe(utc(2026, 1, 1, 2, 1))


def test_earliest_of_several_windows_and_the_message() -> None:
    windows = [
        window("0 2 * * 1-5", "3h", "America/New_York"),
        window("0 0 * * 6", "6h", "America/New_York"),
    ]
    now = utc(2026, 11, 27, 12, 0)  # Friday 07:00 EST
    result = reboot_window(windows, now, MARGIN)
    assert result.starts_at == utc(2026, 11, 28, 5, 0)  # Saturday 00:00 EST
    assert result.describe(now) == (
        "waiting for maintenance window 00:00–06:00 America/New_York, opens in 17h"
    )


def test_no_windows_means_any_time() -> None:
    result = reboot_window([], utc(2026, 1, 1), MARGIN)
    assert result.allowed
    assert result.changes_at is None


def test_not_allowed_a_moment_before_the_window_opens() -> None:
    just_before = datetime(2026, 1, 1, 1, 59, 59, 500_000, tzinfo=UTC)
    result = reboot_window([window("0 2 * * *", "1h", "UTC")], just_before, MARGIN)
    assert not result.allowed
    assert result.starts_at == utc(2026, 1, 1, 2, 0)


def test_next_opening_after_the_repeated_hour_is_in_the_future() -> None:
    # 2026-11-01 New York: 01:00-02:00 happens twice. Whatever cronsim answers inside it,
    # the next opening must lie ahead and no reboot is allowed outside the window.
    ny = window("30 1 * * *", "1h", "America/New_York")
    for minute in range(0, 120, 5):
        now = utc(2026, 11, 1, 5, 0) + timedelta(minutes=minute)
        result = reboot_window([ny], now, MARGIN)
        if result.allowed:
            assert result.starts_at is not None
            assert result.starts_at <= now < (result.reboot_deadline or now)
        else:
            assert result.starts_at is not None
            assert result.starts_at > now
