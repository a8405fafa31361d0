"""Replicas tell each other which group's plan changed: PostgreSQL's LISTEN/NOTIFY.

A replica that writes a group's decisions sends ``NOTIFY fleet_plans, '<group>'`` in the same
transaction (:func:`notify_in`), so the notification is delivered exactly when, and only if,
the decisions are committed. Every replica listens on a connection of its own
(:class:`PlanListener`) and hears the group's name: it reads that group's state again at
once (a group of its own that depends on it may go on now, rather than at its next lease
round), and its operators' views of that group are read afresh.

A notification is a hint, never the only way a change is seen: a replica that was not
listening at that moment still reads every group's state at each lease round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "fleet_plans"


def notify_in(connection: Any, group: str) -> None:
    """Queue the notification that ``group``'s plan changed, in the caller's transaction."""
    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, group))


class PlanListener:
    """Hears the groups whose plans other replicas changed, on a thread of its own, and
    hands each name to ``heard`` (from that thread: the callback must be thread-safe)."""

    def __init__(self, url: str, heard: Callable[[str], object]) -> None:
        self.url, self.heard = url, heard
        self._stopping = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="plan-listener", daemon=True)
        self.listening = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stopping.is_set():
                        # Wake up every second to notice stop(); notifications queue meanwhile.
                        for notice in connection.notifies(timeout=1.0):
                            self.heard(notice.payload)
            except psycopg.Error as exc:  # the database went away: listen again when it is back
                self.listening.clear()
                logger.warning("listening for plan changes failed, retrying: %s", exc)
                self._stopping.wait(1.0)
