"""The report store, on SQLite and on PostgreSQL: batched writes, reads see everything,
history stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import StoreUnavailable
from reconciler.state import reports
from reconciler.state.reports import SqliteReportStore
from tests.state_backends import state_location_fixture

__all__ = ["state_location_fixture"]  # the fixture, for pytest

AT = datetime(2026, 11, 25, tzinfo=UTC)


def test_reads_see_queued_reports_and_close_writes_them(state_location: Path | str) -> None:
    store = SqliteReportStore(state_location)
    store.save("h1", AT, '{"n": 1}')
    assert store.latest() == {"h1": (AT, '{"n": 1}')}
    store.save("h1", AT + timedelta(seconds=1), '{"n": 2}')
    store.close()
    reopened = SqliteReportStore(state_location)
    assert reopened.latest()["h1"][1] == '{"n": 2}'
    assert [body for _, body in reopened.history("h1")] == ['{"n": 2}', '{"n": 1}']
    reopened.close()


def test_history_is_bounded_per_host(state_location: Path | str) -> None:
    store = SqliteReportStore(state_location, history_per_host=5)
    for n in range(3 * reports.TRIM_EVERY):
        store.save("h1", AT + timedelta(seconds=n), f'{{"n": {n}}}')
        store.save("h2", AT + timedelta(seconds=n), f'{{"n": {n}}}')
    store.flush()
    kept = store.history("h1", limit=1000)
    assert len(kept) <= 5 + reports.TRIM_EVERY
    assert kept[0][1] == f'{{"n": {3 * reports.TRIM_EVERY - 1}}}'
    assert len(store.history("h2", limit=1000)) <= 5 + reports.TRIM_EVERY
    store.close()


def test_a_failed_batch_is_reported_to_whoever_waits_for_it(state_location: Path | str) -> None:
    store = SqliteReportStore(state_location)
    store.save("h1", AT, "{}")
    store.flush()
    # The next batch cannot be written: its history table is gone.
    store._writer.execute("DROP TABLE report_history")
    store.save("h1", AT + timedelta(seconds=1), "{}")
    with pytest.raises(StoreUnavailable, match=r"cannot store 1 report\(s\)"):
        store.flush()
    with pytest.raises(StoreUnavailable):
        store.close()  # says so again, and closes all the same
    assert store._owned == []
