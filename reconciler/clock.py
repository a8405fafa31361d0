"""Time as an injected dependency: the system clock in production, a manual one in tests.

A clock answers two questions, as trio's ``Clock`` does: what time it is, and how to wait until
a given time. Every timer and deadline of the daemon (a group's look-again, a promotion's soak,
a long-poll) waits through the clock, so a test jumps a 30-minute soak by advancing a
:class:`ManualClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

#: The longest real sleep between two looks at the system clock: a wall clock stepped by NTP
#: or a suspended machine is noticed within this long.
_LONGEST_NAP = 60.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""

    async def sleep_until(self, when: datetime) -> None:
        """Return once :meth:`now` has reached ``when`` (at once if it already has)."""


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while (remaining := (when - self.now()).total_seconds()) > 0:
            await asyncio.sleep(min(remaining, _LONGEST_NAP))


class ManualClock:
    """A clock that moves only when told to, for soak times and windows tested in microseconds.

    Safe to advance from one thread while another's event loop sleeps on it.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start
        self._lock = threading.Lock()
        self._sleepers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        """Jump forward by ``by`` (like Trio's MockClock.jump), wake every sleeper whose time
        has come, and return the new time."""
        if by < timedelta(0):
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += by
            sleepers, self._sleepers = self._sleepers, []
        for loop, woken in sleepers:
            # Each sleeper looks at the time again and sleeps on if it is still early.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_wake, woken)
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._now >= when:
                    return
                woken: asyncio.Future[None] = loop.create_future()
                self._sleepers.append((loop, woken))
            await woken


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


async def wait_for_event(clock: Clock, event: asyncio.Event, deadline: datetime) -> bool:
    """Wait until ``event`` is set or the clock reaches ``deadline``; True if the event came."""
    if event.is_set():
        return True
    waiting = asyncio.ensure_future(event.wait())
    sleeping = asyncio.ensure_future(clock.sleep_until(deadline))
    try:
        await asyncio.wait((waiting, sleeping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        sleeping.cancel()
    return event.is_set()
