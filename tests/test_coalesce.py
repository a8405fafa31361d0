"""Reports are planned through a work queue: a burst into one group shares its passes, every
reporting host is answered from a pass that saw its own report, the reboot budget holds when
many reports race, and a heartbeat never waits for a queued pass."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from reconciler.clock import ManualClock
from reconciler.errors import StoreUnavailable
from reconciler.rollout.state import GroupState
from reconciler.serve.answers import Answer
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.schemas import AgentReport, Assignment
from reconciler.serve.service import FleetService
from reconciler.serve.workqueue import PassQueue
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.api_support import running_api
from tests.engine_harness import START
from tests.fleets import NEW, OLD, build_fleet

BUDGET = 3
RACERS = [f"r{i:03d}" for i in range(200)]
ALL_AT_ONCE = {"waves": ["100%"], "soakTime": "0s", "rebootBudget": {"maxUnavailable": BUDGET}}


def report_body(
    booted: str = OLD, staged: str | None = None, boot_id: str = "b1"
) -> dict[str, Any]:
    return {
        "agentVersion": "0.1.0",
        "bootId": boot_id,
        "greenboot": "green",
        "booted": {"checksum": booted, "baseChecksum": booted, "origin": "os:os/main"},
        "staged": {"checksum": staged, "baseChecksum": staged} if staged else None,
    }


def agent_report(**fields: Any) -> AgentReport:
    return AgentReport.model_validate(report_body(**fields))


def allowed_to_reboot(state: GroupState) -> set[str]:
    assert state.rollout is not None
    return {h for h, p in state.rollout.hosts.items() if p.reboot_allowed_at is not None}


def updating(state: GroupState) -> set[str]:
    assert state.rollout is not None
    return {h for h, p in state.rollout.hosts.items() if p.updating}


# -- over real HTTP: 200 connections at once ---------------------------------------------------


async def race(url: str, bodies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every host's report at once, each on its own connection; their answers."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(host: str) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {host}"}
            answer = await client.post("/v1/report", json=bodies[host], headers=headers)
            assert answer.status_code == 200, answer.text
            result: dict[str, Any] = answer.json()
            return result

        answers = await asyncio.gather(*(one(host) for host in bodies))
    return dict(zip(bodies, answers, strict=True))


def test_two_hundred_racing_reports_never_exceed_the_reboot_budget(tmp_path: Path) -> None:
    fleet = build_fleet({"g": {"hosts": RACERS, "rollout": ALL_AT_ONCE}}, {h: {} for h in RACERS})
    with running_api(fleet, tmp_path / "state.sqlite", ManualClock(START)) as api:
        first = asyncio.run(race(api.url, {h: report_body() for h in RACERS}))
        assert {a["action"] for a in first.values()} == {"stage"}

        # Every host staged the target and asks at once: only the budget's worth may reboot.
        staged = report_body(staged=NEW)
        answers = asyncio.run(race(api.url, dict.fromkeys(RACERS, staged)))
        told_to_reboot = {h for h, a in answers.items() if a["action"] == "reboot"}
        state = api.service.engine.state("g")
        assert len(told_to_reboot) == BUDGET
        assert told_to_reboot == allowed_to_reboot(state) == updating(state)

        # Round after round, those rebooted come back on the target while the others ask
        # again: never more than the budget at once, told or recorded. (The others' reports
        # are heartbeats, answered from the plan in force when each arrives: a host the
        # returning ones made room for may hear of it in this round or the next.)
        done: set[str] = set()
        for round_number in range(2, 5):
            done |= told_to_reboot
            bodies = {
                h: report_body(booted=NEW, boot_id=f"b{round_number}") if h in done else staged
                for h in RACERS
            }
            answers = asyncio.run(race(api.url, bodies))
            told_to_reboot = {h for h, a in answers.items() if a["action"] == "reboot"}
            state = api.service.engine.state("g")
            assert len(told_to_reboot) <= BUDGET
            assert told_to_reboot <= updating(state)
            assert len(updating(state)) <= BUDGET
            assert not told_to_reboot & done
        assert len(done | told_to_reboot) >= 2 * BUDGET  # the rollout went on


# -- in one event loop: what each report is answered from --------------------------------------


@dataclass
class Running:
    service: FleetService
    registry: CollectorRegistry

    def passes(self, group: str) -> float:
        """Passes of ``group`` so far, as the service counts them."""
        count = self.registry.get_sample_value(
            "fleet_reconcile_duration_seconds_count", {"group": group}
        )
        return count or 0.0

    async def report_all(self, reports: list[tuple[str, AgentReport]]) -> list[Answer]:
        return list(await asyncio.gather(*(self.service.report(h, r) for h, r in reports)))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """Two groups: ``g`` of the racers with a budget of 3, ``h`` of five with room for all."""
    small = [f"s{i}" for i in range(5)]
    roomy = {**ALL_AT_ONCE, "rebootBudget": {"maxUnavailable": len(small)}}
    fleet = build_fleet(
        {"g": {"hosts": RACERS, "rollout": ALL_AT_ONCE}, "h": {"hosts": small, "rollout": roomy}},
        {h: {} for h in [*RACERS, *small]},
    )
    db = tmp_path / "state.sqlite"
    store, reports, registry = Store(db), SqliteReportStore(db), CollectorRegistry()
    service = FleetService(fleet, store, reports, ManualClock(START), OperationalMetrics(registry))
    yield Running(service, registry)
    store.close()
    reports.close()


def action(answer: Answer) -> str:
    return Assignment.model_validate_json(answer.body).action


def test_a_burst_into_one_group_costs_a_few_passes_not_one_each(running: Running) -> None:
    before = running.passes("g")
    answers = asyncio.run(running.report_all([(h, agent_report()) for h in RACERS]))
    assert [action(a) for a in answers] == ["stage"] * len(RACERS)
    assert running.passes("g") - before <= 2  # one each would be 200
    assert running.passes("h") == 1  # its plan at start: nothing asked for it since


def test_answers_are_cached_per_kind_of_answer_each_made_out_to_its_host(
    running: Running,
) -> None:
    service = running.service
    answers = asyncio.run(running.report_all([(h, agent_report()) for h in RACERS]))
    for host, answer in zip(RACERS, answers, strict=True):
        fresh = service.assignment(host)  # built afresh, not from the cache
        assert json.loads(answer.body) == fresh.model_dump(mode="json", by_alias=True)
        assert answer.assignment_id == fresh.assignment_id
    plan, shared = service._answers["g"]
    assert plan is service.plans["g"]
    assert len(shared) == 1  # 200 hosts told the same thing: one cached answer


def test_each_reporting_host_is_answered_from_its_own_report(running: Running) -> None:
    small = [f"s{i}" for i in range(5)]
    asyncio.run(running.report_all([(h, agent_report()) for h in small]))
    # All five staged the target and report in one burst, sharing one pass: each is told
    # to reboot (the budget allows five), never the `stage` of the plan before its report.
    # Each host reports twice: the second report changes nothing, yet the host's change is
    # not planned when it arrives, so it waits for the same pass.
    burst = [(h, agent_report(staged=NEW)) for h in small for _ in range(2)]
    before = running.passes("h")
    answers = asyncio.run(running.report_all(burst))
    assert [action(a) for a in answers] == ["reboot"] * len(burst)
    assert running.passes("h") - before == 1
    assert allowed_to_reboot(running.service.engine.state("h")) == set(small)


def test_a_heartbeat_does_not_wait_for_a_queued_pass(running: Running) -> None:
    service = running.service
    asyncio.run(running.report_all([(h, agent_report()) for h in ("r000", "r001", "s0")]))
    service.queue.delay = 3600.0  # a pass asked for now would start in an hour

    async def scenario() -> None:
        changed = asyncio.create_task(service.report("r000", agent_report(staged=NEW)))
        await asyncio.sleep(0)
        assert service.queue.pending("g")
        # Heartbeats from the same group and from another are answered from the plans in
        # force, at once, while the pass of `g` waits.
        for host in ("r001", "s0"):
            answer = await asyncio.wait_for(service.report(host, agent_report()), timeout=5)
            assert action(answer) == "stage"
        assert service.queue.pending("g")
        assert not changed.done()
        changed.cancel()

    asyncio.run(scenario())


def test_a_failed_pass_fails_every_report_waiting_for_it_and_the_next_one_retries(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = running.service.engine.store
    real = store.save

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(store, "save", broken)

    async def burst() -> list[Answer | BaseException]:
        reports = (running.service.report(h, agent_report()) for h in ("r000", "r001"))
        return list(await asyncio.gather(*reports, return_exceptions=True))

    outcomes = asyncio.run(burst())
    assert [type(o) for o in outcomes] == [StoreUnavailable, StoreUnavailable]
    assert outcomes[0] is outcomes[1]  # one pass, one failure, told to both
    monkeypatch.setattr(store, "save", real)
    # The same report again changes nothing, but its change was never planned: it waits
    # for a new pass, which now succeeds.
    answer = asyncio.run(running.service.report("r000", agent_report()))
    assert action(answer) == "stage"
    assert "g" not in running.service.failures


# -- the queue itself -------------------------------------------------------------------------


def test_groups_are_served_in_the_order_asked_one_pass_each_between_other_work() -> None:
    happened: list[str] = []

    def run_pass(group: str) -> str:
        happened.append(f"pass {group}")
        return group

    queue: PassQueue[str] = PassQueue(run_pass, delay=0)

    async def other_work() -> None:  # reports being read, say, while groups are queued
        while len(queue):
            happened.append("other")
            await asyncio.sleep(0)

    async def scenario() -> list[str]:
        asked = [queue.pass_of(g) for g in ("b", "a", "b", "c", "a")]
        results = await asyncio.gather(*asked, other_work())
        return list(results[:5])

    assert asyncio.run(scenario()) == ["b", "a", "b", "c", "a"]
    assert [h for h in happened if h.startswith("pass")] == ["pass b", "pass a", "pass c"]
    # Between two passes the loop ran other work: no pass follows another directly.
    assert all(
        not (one.startswith("pass") and two.startswith("pass"))
        for one, two in itertools.pairwise(happened)
    )
