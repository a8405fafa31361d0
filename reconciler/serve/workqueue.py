"""Coalesced passes per group, like controller-runtime's work queue.

A report that changed something asks for a pass of its host's group and waits for one that
*starts after it asked*, so its answer reflects its own report. Requests are keyed by group
and deduplicated: a group is in the queue at most once, and every request that arrives
before its pass starts is answered by that one pass, so a burst of reports into one group
costs one pass (or a few), not one each. Groups are served first come, first served, one
pass at a time, each no sooner than ``delay`` after it was first asked for (so a burst can
gather). Between two passes the worker yields to the event loop, so reports keep being read
and answered while groups are planned; the busier the queue, the longer a group waits for
its turn and the more requests its pass answers.

Passes run on the event loop itself, synchronously: the planner and the SQLite store are
single-threaded by design, and a pass that never awaits cannot interleave with another pass
or with anything else that plans (timers, FleetLock, a new fleet revision).

The delay is real time, not the service's clock: it is a batching window of milliseconds,
like a socket's, and must pass while a test's manual clock stands still.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

#: How long a group asked for waits before its pass, so a burst of reports shares it.
DEFAULT_DELAY_SECONDS = 0.005

PlanT = TypeVar("PlanT")


class PassQueue(Generic[PlanT]):
    """Deduplicated, delayed, first-come-first-served passes of groups on one event loop.

    ``run_pass(group)`` makes the pass and returns what its waiters are answered with (its
    exception, if it raises, is raised to each of them).
    """

    def __init__(
        self, run_pass: Callable[[str], PlanT], delay: float = DEFAULT_DELAY_SECONDS
    ) -> None:
        self.run_pass = run_pass
        self.delay = delay
        self._due: dict[str, float] = {}  # group -> loop time its pass may start; FIFO order
        self._waiting: dict[str, list[asyncio.Future[PlanT]]] = {}
        self._worker: asyncio.Task[None] | None = None

    def pending(self, group: str) -> bool:
        """Whether a pass of ``group`` is asked for and has not started."""
        return group in self._due

    def __len__(self) -> int:
        return len(self._due)

    async def pass_of(self, group: str) -> PlanT:
        """Wait for a pass of ``group`` that starts after this call, and return its result."""
        loop = asyncio.get_running_loop()
        self._start_worker(loop)
        if group not in self._due:
            self._due[group] = loop.time() + self.delay
        waiter: asyncio.Future[PlanT] = loop.create_future()
        self._waiting.setdefault(group, []).append(waiter)
        return await waiter

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        worker = self._worker
        if worker is not None and not worker.done():
            if worker.get_loop() is loop:
                return
            # The loop that ran the worker is gone (a server stopped, another started): what
            # was queued there has no one left to answer.
            worker.cancel()
            self._due.clear()
            self._waiting.clear()
        # The worker lives only while groups are queued, so none is left pending at shutdown.
        self._worker = loop.create_task(self._work(), name="group-passes")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            group, due = next(iter(self._due.items()))
            wait = due - loop.time()
            # Always yield between passes: reports waiting to be read go first.
            await asyncio.sleep(wait if wait > 0 else 0)
            del self._due[group]
            waiters = self._waiting.pop(group, [])
            try:
                result = self.run_pass(group)
            except Exception as exc:  # the pass's owner logged and counted it
                for waiter in waiters:
                    if not waiter.done():  # a waiter whose client went away was cancelled
                        waiter.set_exception(exc)
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)
