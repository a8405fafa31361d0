"""Two real `reconciler serve` replicas on one PostgreSQL database (docs/ha.md): either one
answers agents and operators about every group, and a long-poll held by the replica that
does not plan the host's group wakes when the one that does changes the plan."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.serve.ownership import WRITEBACK
from tests.serve_process import ServeProcess
from tests.test_api import report
from tests.test_crash_serve import GROUP, HOSTS, NEW, OLD, crash_fleet
from tests.test_failover import lease_of
from tests.test_gitsource import Remote, replace

OPERATOR_TOKEN = "operator-token-for-the-replica-tests"
HOST = HOSTS[0]  # the group's canary: the first host offered a new build


@pytest.fixture
def two_replicas(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[Remote, list[ServeProcess], str]]:
    origin = Remote(tmp_path)
    origin.commit("one group", crash_fleet)
    replicas = []
    for index in range(2):
        replica = ServeProcess(origin.bare, tmp_path / f"state-{index}", tmp_path / f"logs-{index}")
        replica.extra_args = [
            "--store",
            postgres_url,
            "--advertise-url",
            replica.url,
            "--lease-ttl",
            "3s",
            "--operator-token-sha256",
            hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest(),
        ]
        replicas.append(replica)
    for replica in replicas:
        replica.start()
    try:
        for replica in replicas:
            replica.wait_ready()
        yield origin, replicas, postgres_url
    finally:
        for replica in replicas:
            if replica.process is not None:
                replica.stop()


def holder_and_other(
    replicas: list[ServeProcess], database: str
) -> tuple[ServeProcess, ServeProcess]:
    """The replica holding the group's lease and the other one, once the leases settled:
    the first replica up takes everything, then gives back its share above one once the
    second says it is alive (the group and the write-back, one each)."""
    for _ in range(400):
        group, writeback = lease_of(database, GROUP), lease_of(database, WRITEBACK)
        if group is not None and writeback is not None and group[0] != writeback[0]:
            url = group[0].partition("#")[0]
            holder = next(r for r in replicas if r.url == url)
            return holder, next(r for r in replicas if r is not holder)
        threading.Event().wait(0.05)
    raise AssertionError(f"the leases of {GROUP} and the write-back never settled")


def send(replica: ServeProcess, body: dict[str, Any], wait: int = 0) -> httpx.Response:
    """A report, retried on a 503 for a few seconds as the agent retries (a lease moving)."""
    for _ in range(50):
        response = httpx.post(
            replica.url + "/v1/report" + (f"?wait={wait}" if wait else ""),
            json=body,
            headers={"Authorization": f"Bearer demo-token-{HOST}"},
            timeout=wait + 30,
        )
        if response.status_code != 503:
            return response
        threading.Event().wait(0.1)
    return response


def test_either_replica_answers_about_every_group(
    two_replicas: tuple[Remote, list[ServeProcess], str],
) -> None:
    _, replicas, database = two_replicas
    holder, other = holder_and_other(replicas, database)
    for replica in (holder, other):
        answer = send(replica, report(booted=OLD))
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "in_sync"
    for replica in (holder, other):
        groups = httpx.get(
            replica.url + "/v1/groups", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        ).json()
        assert [g["name"] for g in groups] == [GROUP], replica.url
        assert groups[0]["target"]["commit"] == OLD


def test_a_long_poll_held_by_the_other_replica_wakes_on_the_holders_plan_change(
    two_replicas: tuple[Remote, list[ServeProcess], str],
) -> None:
    origin, replicas, database = two_replicas
    _, other = holder_and_other(replicas, database)
    first = send(other, report(booted=OLD)).json()
    assert first["target"]["commit"] == OLD
    answered: dict[str, Any] = {}

    def long_poll() -> None:
        body = report(booted=OLD, knownAssignment=first["assignmentId"])
        answered["response"] = send(other, body, wait=60)

    polling = threading.Thread(target=long_poll)
    polling.start()
    threading.Event().wait(1.0)  # the long-poll is held (forwarded to the holder)
    assert polling.is_alive(), (first, answered["response"].text)
    origin.commit("production: 9.20261125.0", replace("streams/production.yaml", OLD, NEW))
    polling.join(timeout=45)
    assert not polling.is_alive(), "the long-poll was not woken by the plan change"
    response = answered["response"]
    assert response.status_code == 200, response.text
    assert response.json()["target"]["commit"] == NEW
    assert response.json()["action"] == "stage"


def test_a_groups_series_come_from_the_replica_that_plans_it(
    two_replicas: tuple[Remote, list[ServeProcess], str],
) -> None:
    """Scraping every replica and summing by group counts each group once (docs/ha.md)."""
    _, replicas, database = two_replicas
    holder, other = holder_and_other(replicas, database)
    assert send(other, report(booted=OLD)).status_code == 200
    pages = {r.url: httpx.get(r.url + "/metrics").text for r in (holder, other)}
    group_series = f'fleet_rollout_state{{group="{GROUP}"'
    host_series = f'fleet_host_last_report_timestamp_seconds{{host="{HOST}"}}'
    assert group_series in pages[holder.url]
    assert host_series in pages[holder.url]
    assert group_series not in pages[other.url]
    assert host_series not in pages[other.url]
