"""One-shot timers on the injected clock, one per key: a group's look-again, a promotion's soak.

Arming a key again replaces its timer (the newest plan knows best when to look again), and
arming it for the time it is already armed for costs nothing. A timer waits through
:meth:`reconciler.clock.Clock.sleep_until`, so tests fire it by advancing a manual clock.
What a timer runs must contain its own failures: one that raises is logged and not re-armed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from reconciler.clock import Clock

logger = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]


class Timers:
    """Keyed one-shot timers on one event loop; use only from that loop's thread."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._armed: dict[str, tuple[datetime, asyncio.Task[None]]] = {}

    def arm(self, key: str, when: datetime, callback: Callback) -> None:
        """Run ``callback`` once the clock reaches ``when``, instead of whatever ``key`` was
        armed for."""
        armed = self._armed.get(key)
        if armed is not None:
            if armed[0] == when and not armed[1].done():
                return
            armed[1].cancel()
        task = asyncio.get_running_loop().create_task(self._fire(key, when, callback))
        self._armed[key] = (when, task)

    def disarm(self, key: str) -> None:
        armed = self._armed.pop(key, None)
        if armed is not None:
            armed[1].cancel()

    def due_at(self, key: str) -> datetime | None:
        """When ``key`` fires, if it is armed."""
        armed = self._armed.get(key)
        return armed[0] if armed is not None and not armed[1].done() else None

    def cancel_all(self) -> None:
        for _, task in self._armed.values():
            task.cancel()
        self._armed.clear()

    async def _fire(self, key: str, when: datetime, callback: Callback) -> None:
        await self.clock.sleep_until(when)
        current = self._armed.get(key)
        if current is not None and current[0] == when:
            del self._armed[key]  # a callback that re-arms the same key must not be skipped
        try:
            await callback()
        except Exception:  # the callback's own failure handling failed: say so, go on
            logger.exception("timer %s failed", key)
