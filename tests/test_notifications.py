"""Replicas hear which group another replica changed (LISTEN/NOTIFY, real PostgreSQL): the
notification goes out with the decisions' transaction, only if it commits, and never for a
write the fence refused."""

from __future__ import annotations

import queue
from datetime import timedelta

import pytest

from reconciler.serve.replicas import Replicas
from reconciler.state.leases import LeaseLost, PostgresLeases
from reconciler.state.notifications import PlanListener
from reconciler.state.store import Store
from tests.test_store import _started


def listening(url: str) -> tuple[PlanListener, queue.Queue[str]]:
    heard: queue.Queue[str] = queue.Queue()
    listener = PlanListener(url, heard.put)
    listener.start()
    assert listener.listening.wait(10)
    return listener, heard


def test_a_fenced_save_announces_its_group_when_it_commits(postgres_url: str) -> None:
    listener, heard = listening(postgres_url)
    leases = PostgresLeases(postgres_url, timedelta(seconds=30))
    replica = Replicas(leases, "http://127.0.0.1:1")
    store = Store(postgres_url)
    try:
        assert replica.round(["g"]).gained == ("__writeback__", "g")
        replica.adopted("g")
        state, decisions = _started()
        store.save(state, decisions, fence=replica.fence("g"))
        assert heard.get(timeout=10) == "g"
        assert store.load("g").rollout is not None
    finally:
        listener.stop()
        store.close()
        leases.close()


def test_a_refused_save_announces_nothing(postgres_url: str) -> None:
    listener, heard = listening(postgres_url)
    leases = PostgresLeases(postgres_url, timedelta(seconds=30))
    first, second = Replicas(leases, "http://127.0.0.1:1"), Replicas(leases, "http://127.0.0.1:2")
    store = Store(postgres_url)
    try:
        first.round(["g"])
        first.adopted("g")
        stale = first.fence("g")
        first.give_up()  # the lease is released ...
        assert leases.acquire("g", second.holder) is not None  # ... and taken by another
        state, decisions = _started()
        with pytest.raises(LeaseLost):
            store.save(state, decisions, fence=stale)
        with pytest.raises(queue.Empty):
            heard.get(timeout=1.5)
        assert store.load("g").rollout is None
    finally:
        listener.stop()
        store.close()
        leases.close()


def test_a_group_taken_over_is_not_planned_until_it_is_adopted(postgres_url: str) -> None:
    """Between taking a lease and reading the group's state again, a pass would plan from
    what was read before: it could repeat a decision the last holder made."""
    leases = PostgresLeases(postgres_url, timedelta(seconds=30))
    replica = Replicas(leases, "http://127.0.0.1:1")
    try:
        assert "g" in replica.round(["g"]).gained
        assert not replica.holds("g")
        assert replica.round(["g"]).gained == ()  # still taken, not gained again
        assert not replica.holds("g")
        replica.adopted("g")
        assert replica.holds("g")
    finally:
        leases.close()
