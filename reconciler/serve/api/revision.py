"""`GET /v1/revision`: the fleet-repo revision in force, the last one refused and why, and
whether fetching the repo works — what `reconciler status` shows first, because a merged
change that never arrives is the first thing an operator has to notice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI

from reconciler.serve.revisions import FetchHealth
from reconciler.serve.schemas import FetchOut, FleetRevisionOut, RefusalOut, VerdictOut
from reconciler.state.store import RevisionRecord, Store


def add_revision_route(
    app: FastAPI,
    store: Store,
    operator: Callable[..., Awaitable[None]],
    fetch_health: Callable[[], FetchHealth] | None,
) -> None:
    @app.get("/v1/revision", response_model=FleetRevisionOut, dependencies=[Depends(operator)])
    async def revision() -> FleetRevisionOut:
        """The revision in force and since when, the newest refused revision, fetch health."""
        in_force = store.revision_in_force()
        refused = store.last_refusal()
        newest = store.last_verdict()
        # Nothing was applied after the refusal (not even the branch going back): still
        # refused.
        pending = newest is not None and not newest.accepted
        return FleetRevisionOut(
            in_force=_verdict(in_force) if in_force else None,
            last_refused=_refusal(refused, pending) if refused else None,
            fetch=_fetch(fetch_health()) if fetch_health else None,
        )


def _verdict(record: RevisionRecord) -> VerdictOut:
    return VerdictOut(
        revision=record.revision, at=record.seen_at, code=record.code, message=record.message
    )


def _refusal(record: RevisionRecord, pending: bool) -> RefusalOut:
    # A summary line, then (for an invalid revision) one indented line per error.
    summary, *listed = [line for line in record.message.splitlines() if line.strip()]
    return RefusalOut(
        revision=record.revision,
        at=record.seen_at,
        code=record.code,
        message=record.message,
        pending=pending,
        errors=[line.strip() for line in listed] if listed else [summary],
    )


def _fetch(health: FetchHealth) -> FetchOut:
    return FetchOut(
        last_attempt_at=health.last_attempt_at,
        last_success_at=health.last_success_at,
        consecutive_failures=health.consecutive_failures,
        last_error=health.last_error,
    )
