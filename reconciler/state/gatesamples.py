"""Health-check evaluations, kept durably by scope (a group, or a stream's promotion).

The planner's gates are judged from these samples (:mod:`reconciler.rollout.gates`); a
sample is written before any pass reads it, so a restart judges the same evaluations again
and a gate that passed before a crash still passed after it. Samples older than
:data:`KEPT_FOR` are dropped: no soak or promotion policy looks that far back.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.errors import StoreUnavailable
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.state.store import create_private, instant, migrate

#: How long an evaluation is kept (longer than any sensible soak or promotion soak).
KEPT_FOR = timedelta(days=30)


def group_scope(group: str) -> str:
    return f"group/{group}"


def stream_scope(stream: str, commit: str) -> str:
    """A promotion's checks are about one source build: each build starts from nothing."""
    return f"stream/{stream}/{commit}"


class SqliteGateSamples:
    """Evaluations in the state database, committed one by one (synchronous=FULL)."""

    def __init__(self, path: Path | str) -> None:
        try:
            create_private(path)
            # Opened where the daemon is built, used on the thread that runs its event loop
            # (DaemonThread builds in one thread and serves in another).
            self._db = sqlite3.connect(
                str(path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            migrate(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open the gate database {path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def append(self, scope: str, sample: GateSample) -> None:
        value = None if sample.value is None or math.isnan(sample.value) else sample.value
        try:
            self._db.execute(
                "INSERT INTO gate_samples (scope, check_name, at, outcome, value, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    scope,
                    sample.check,
                    instant(sample.at),
                    sample.outcome.value,
                    value,
                    sample.detail,
                ),
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot store a health-check evaluation: {exc}") from exc

    def since(self, at: datetime) -> dict[str, list[GateSample]]:
        """Every scope's samples taken at or after ``at``, oldest first."""
        rows = self._db.execute(
            "SELECT scope, check_name, at, outcome, value, detail FROM gate_samples "
            "WHERE at >= ? ORDER BY at, id",
            (instant(at),),
        ).fetchall()
        found: dict[str, list[GateSample]] = {}
        for scope, check, taken, outcome, value, detail in rows:
            sample = GateSample(
                check, datetime.fromisoformat(taken), GateOutcome(outcome), value, detail
            )
            found.setdefault(scope, []).append(sample)
        return found

    def prune(self, before: datetime) -> int:
        """Drop samples taken before ``before``; return how many."""
        cursor = self._db.execute("DELETE FROM gate_samples WHERE at < ?", (instant(before),))
        return cursor.rowcount
