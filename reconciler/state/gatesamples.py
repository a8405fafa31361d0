"""Health-check evaluations, kept durably by scope (a group, or a stream's promotion).

The planner's gates are judged from these samples (:mod:`reconciler.rollout.gates`); a
sample is written before any pass reads it, so a restart judges the same evaluations again
and a gate that passed before a crash still passed after it. Samples older than
:data:`KEPT_FOR` are dropped: no soak or promotion policy looks that far back.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

from reconciler.errors import StoreUnavailable
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.state.database import Database
from reconciler.state.store import instant, opened

#: How long an evaluation is kept (longer than any sensible soak or promotion soak).
KEPT_FOR = timedelta(days=30)


def group_scope(group: str) -> str:
    return f"group/{group}"


def stream_scope(stream: str, commit: str) -> str:
    """A promotion's checks are about one source build: each build starts from nothing."""
    return f"stream/{stream}/{commit}"


class DatabaseGateSamples:
    """Evaluations in the state database, committed one by one (SQLite: synchronous=FULL).

    ``location``: a SQLite file, a ``postgresql://`` URL, or a database opened by the
    caller, who closes it.
    """

    def __init__(self, location: Path | str | Database) -> None:
        self._db, self._owned = opened(location, "gate database")

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def append(self, scope: str, sample: GateSample) -> None:
        value = None if sample.value is None or math.isnan(sample.value) else sample.value
        try:
            self._db.modify(
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
        except StoreUnavailable as exc:
            raise StoreUnavailable(f"cannot store a health-check evaluation: {exc}") from exc

    def since(self, at: datetime) -> dict[str, list[GateSample]]:
        """Every scope's samples taken at or after ``at``, oldest first."""
        rows = self._db.execute(
            "SELECT scope, check_name, at, outcome, value, detail FROM gate_samples "
            "WHERE at >= ? ORDER BY at, id",
            (instant(at),),
        )
        found: dict[str, list[GateSample]] = {}
        for scope, check, taken, outcome, value, detail in rows:
            sample = GateSample(
                check, datetime.fromisoformat(taken), GateOutcome(outcome), value, detail
            )
            found.setdefault(scope, []).append(sample)
        return found

    def prune(self, before: datetime) -> int:
        """Drop samples taken before ``before``; return how many."""
        return self._db.modify("DELETE FROM gate_samples WHERE at < ?", (instant(before),))


#: The name this class had when SQLite was its only database.
SqliteGateSamples = DatabaseGateSamples
