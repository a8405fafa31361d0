"""The state's two databases, for tests that must hold on both: import
``state_location_fixture`` into a test module and ask for ``state_location``.

A SQLite file in the test's directory, or a fresh database of the session's throwaway
PostgreSQL server (tests/postgres_harness.py; started only when a PostgreSQL case runs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.state.database import is_postgres_url
from tests.engine_harness import Harness

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(name="state_location", params=BACKENDS)
def state_location_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a store is opened: a SQLite file's path or a ``postgresql://`` URL."""
    if request.param == "sqlite":
        return tmp_path / "state.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


def on_postgres(location: Path | str) -> bool:
    return is_postgres_url(location)


@pytest.fixture(params=BACKENDS)
def harness_on_both_stores(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test of tests/engine_harness.py's Harness on each store: the rollout rules must
    hold the same on PostgreSQL as on SQLite."""
    if request.param == "postgresql":
        monkeypatch.setattr(Harness, "location", request.getfixturevalue("postgres_url"))
    return str(request.param)
