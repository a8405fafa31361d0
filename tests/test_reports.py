"""The report store: batched writes, reads see everything, history stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.state import reports
from reconciler.state.reports import SqliteReportStore

AT = datetime(2026, 11, 25, tzinfo=UTC)


def test_reads_see_queued_reports_and_close_writes_them(tmp_path: Path) -> None:
    store = SqliteReportStore(tmp_path / "r.sqlite")
    store.save("h1", AT, '{"n": 1}')
    assert store.latest() == {"h1": (AT, '{"n": 1}')}
    store.save("h1", AT + timedelta(seconds=1), '{"n": 2}')
    store.close()
    reopened = SqliteReportStore(tmp_path / "r.sqlite")
    assert reopened.latest()["h1"][1] == '{"n": 2}'
    assert [body for _, body in reopened.history("h1")] == ['{"n": 2}', '{"n": 1}']


def test_history_is_bounded_per_host(tmp_path: Path, monkeypatch: object) -> None:
    store = SqliteReportStore(tmp_path / "r.sqlite", history_per_host=5)
    for n in range(3 * reports.TRIM_EVERY):
        store.save("h1", AT + timedelta(seconds=n), f'{{"n": {n}}}')
        store.save("h2", AT + timedelta(seconds=n), f'{{"n": {n}}}')
    store.flush()
    kept = store.history("h1", limit=1000)
    assert len(kept) <= 5 + reports.TRIM_EVERY
    assert kept[0][1] == f'{{"n": {3 * reports.TRIM_EVERY - 1}}}'
    assert len(store.history("h2", limit=1000)) <= 5 + reports.TRIM_EVERY
