"""/metrics on a real server: the fleet's state as Prometheus sees it, and promtool's lint."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from reconciler.clock import ManualClock
from reconciler.rollout.planner import GroupPhase, HostState
from reconciler.serve.metrics import OperationalMetrics, export_fleet_state, exposition, host_series
from reconciler.serve.schemas import AgentReport
from reconciler.serve.service import FleetService
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.api_support import OPERATOR_TOKEN, RunningApi, running_api
from tests.engine_harness import START
from tests.fleets import NEW, NEWER, OLD, build_fleet
from tests.serve_process import ServeProcess
from tests.test_api import GROUPS, HOSTS, auth, gated_api, post, report
from tests.test_daemon import OLD_PRODUCTION, agent_report, no_urls
from tests.test_gitsource import Remote


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApi]:
    with running_api(build_fleet(GROUPS, HOSTS), tmp_path / "s.sqlite", ManualClock(START)) as a:
        yield a


def samples(api: RunningApi) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(api.url + "/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_drift_hosts_by_state_and_waves(api: RunningApi) -> None:
    post(api, report("c1"), token="c1")
    found = samples(api)
    assert value(found, "fleet_host_drift", group="g", host="c1") == 1
    assert (
        value(found, "fleet_host_drift_since_timestamp_seconds", group="g", host="c1")
        == START.timestamp()
    )
    assert value(found, "fleet_group_hosts", group="g", state="staging") == 1
    assert value(found, "fleet_rollout_wave", group="g") == 1
    assert value(found, "fleet_rollout_waves", group="g") == 2
    assert value(found, "fleet_rollout_state", group="g", state="progressing") == 1
    assert value(found, "fleet_host_last_report_timestamp_seconds", host="c1") == START.timestamp()
    assert value(found, "fleet_agent_reports_total", result="ok") == 1
    assert value(found, "fleet_repo_revision_valid") == 1
    assert value(found, "fleet_repo_revision_info", revision="rev-1") == 1

    post(api, report(booted=NEW), token="c1")
    found = samples(api)
    assert value(found, "fleet_host_drift", group="g", host="c1") == 0
    assert (
        "fleet_host_drift_since_timestamp_seconds",
        (("group", "g"), ("host", "c1")),
    ) not in found


def test_a_draining_host_and_a_drain_timeout_are_counted(api: RunningApi) -> None:
    post(api, report(staged=NEW), token="c1")  # allowed to reboot
    clock = api.service.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=1))
    deferral = {"since": clock.now().isoformat(), "message": "3 active calls", "exitCode": 1}
    post(api, report(staged=NEW, rebootDeferred=deferral), token="c1")
    found = samples(api)
    assert value(found, "fleet_group_hosts", group="g", state="draining") == 1
    assert value(found, "fleet_group_hosts", group="g", state="updating") == 0
    assert value(found, "fleet_host_failures_total", group="g", reason="drain_timeout") == 0
    clock.advance(timedelta(hours=1))  # the default drainTimeout
    post(api, report(staged=NEW, rebootDeferred=deferral), token="c1")
    found = samples(api)
    assert value(found, "fleet_host_failures_total", group="g", reason="drain_timeout") == 1
    assert value(found, "fleet_group_hosts", group="g", state="failed") == 1
    assert value(found, "fleet_rollout_state", group="g", state="halted") == 0


def test_failures_and_finished_rollouts_are_counted_from_the_event_log(api: RunningApi) -> None:
    post(api, report(), token="c1")  # offered the target
    post(api, report(booted=NEW, greenboot="red"), token="c1")  # booted it, checks failed
    found = samples(api)
    assert value(found, "fleet_host_failures_total", group="g", reason="greenboot_red") == 1
    assert value(found, "fleet_rollout_state", group="g", state="halted") == 1
    assert value(found, "fleet_group_hosts", group="g", state="failed") == 1
    # A halt is not an end (it may be resumed): nothing has finished yet.
    assert value(found, "fleet_rollouts_finished_total", group="g", result="halted") == 0
    # A new commit replaces the halted rollout: it ended halted, and is counted once.
    api.service.use_fleet(build_fleet(GROUPS, HOSTS, streams={"main": NEWER}, revision="rev-2"))
    found = samples(api)
    assert value(found, "fleet_rollouts_finished_total", group="g", result="halted") == 1
    assert value(found, "fleet_rollouts_finished_total", group="g", result="superseded") == 0
    assert value(found, "fleet_rollouts_finished_total", group="g", result="completed") == 0


def test_the_rollout_state_uses_the_apis_words(api: RunningApi) -> None:
    for host in ("c1", "c2", "c3"):
        post(api, report(booted=NEW, boot_id="new"), token=host)
    found = samples(api)
    phase = httpx.get(api.url + "/v1/groups", headers=auth(OPERATOR_TOKEN)).json()[0]["phase"]
    assert phase == "in_sync"
    assert value(found, "fleet_rollout_state", group="g", state="in_sync") == 1
    assert value(found, "fleet_rollouts_finished_total", group="g", result="completed") == 1


def test_rejected_reports_are_counted_by_result(api: RunningApi) -> None:
    post(api, report(), token="nope")
    post(api, report("c2"), token="c1")
    httpx.post(
        api.url + "/v1/report",
        content="{",
        headers={"Authorization": "Bearer c1", "Content-Type": "application/json"},
    )
    found = samples(api)
    assert value(found, "fleet_agent_reports_total", result="unauthorized") == 1
    assert value(found, "fleet_agent_reports_total", result="forbidden") == 1
    assert value(found, "fleet_agent_reports_total", result="invalid") == 1


def booted_series(api: RunningApi) -> dict[str, dict[str, str]]:
    """host -> the labels of its `fleet_host_booted_info` series (asserting one per host)."""
    series = [
        labels
        for (name, pairs), v in samples(api).items()
        if name == "fleet_host_booted_info"
        for labels in [dict(pairs)]
        if v == 1
    ]
    by_host = {labels["host"]: labels for labels in series}
    assert len(by_host) == len(series), f"more than one series for a host: {series}"
    return by_host


def booting(commit: str, version: str | None) -> dict[str, object]:
    body = report(booted=commit)
    body["booted"]["version"] = version
    return body


def test_booted_info_has_one_series_per_reporting_host(api: RunningApi) -> None:
    assert booted_series(api) == {}  # nobody has reported yet
    post(api, booting(OLD, "9.1"), token="c1")
    post(api, booting(OLD, None), token="c2")  # an image without a version
    assert booted_series(api) == {
        "c1": {"group": "g", "host": "c1", "commit": OLD, "version": "9.1"},
        "c2": {"group": "g", "host": "c2", "commit": OLD, "version": ""},
    }


def test_booted_info_of_a_host_no_group_selects_has_an_empty_group(tmp_path: Path) -> None:
    fleet = build_fleet(GROUPS, {**HOSTS, "loose": {}})
    with running_api(fleet, tmp_path / "s.sqlite", ManualClock(START)) as api:
        post(api, booting(OLD, "9.1"), token="loose")
        assert booted_series(api) == {
            "loose": {"group": "", "host": "loose", "commit": OLD, "version": "9.1"}
        }


def test_booted_info_of_a_host_that_boots_another_version_replaces_its_series(
    api: RunningApi,
) -> None:
    post(api, booting(OLD, "9.1"), token="c1")
    post(api, booting(NEW, "9.2"), token="c1")
    assert booted_series(api) == {
        "c1": {"group": "g", "host": "c1", "commit": NEW, "version": "9.2"}
    }
    text = httpx.get(api.url + "/metrics").text
    assert "9.1" not in text  # no stale series of the version it left


@pytest.mark.needs_tool("promtool")
def test_promtool_finds_nothing_to_lint(api: RunningApi) -> None:
    post(api, booting(OLD, "9.1"), token="c1")  # every family has a sample, the info too
    text = httpx.get(api.url + "/metrics").text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_a_scrape_never_plans(api: RunningApi) -> None:
    post(api, report("c1"), token="c1")
    events = len(api.service.engine.store.events())
    clock = api.service.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(days=1))  # every plan's look-again time has passed
    api.service.plans.pop("g")  # and one group has no plan at all
    found = samples(api)
    assert len(api.service.engine.store.events()) == events
    assert ("fleet_rollout_wave", (("group", "g"),)) not in found


def test_the_docs_name_every_phase_and_host_state_and_nothing_else() -> None:
    """One vocabulary: docs/metrics.md lists exactly the words the API and metrics use."""
    docs = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text()

    def words(metric: str) -> set[str]:
        line = next(row for row in docs.splitlines() if row.startswith(f"| `{metric}`"))
        meaning = line.split("|")[4]
        return {w for w in re.findall(r"`([a-z_]+)`", meaning) if "{" not in w}

    assert words("fleet_rollout_state") == {p.value for p in GroupPhase}
    assert words("fleet_group_hosts") == {s.value for s in HostState}


# -- per-host series: written directly, cached per group and host -------------------------


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[tuple[FleetService, CollectorRegistry]]:
    db = tmp_path / "s.sqlite"
    reports = SqliteReportStore(db)
    registry = CollectorRegistry()
    service = FleetService(
        build_fleet(GROUPS, {**HOSTS, "loose": {}}),
        Store(db),
        reports,
        ManualClock(START),
        OperationalMetrics(registry),
    )
    export_fleet_state(service, registry)
    yield service, registry
    reports.close()


def ingest(service: FleetService, host: str, body: dict[str, Any]) -> None:
    service.ingest(host, AgentReport.model_validate(body))


PER_HOST = (
    "fleet_host_drift",
    "fleet_host_drift_since_timestamp_seconds",
    "fleet_host_last_report_timestamp_seconds",
    "fleet_host_booted_info",
)


def per_host_lines(page: bytes) -> list[str]:
    return [line for line in page.decode().splitlines() if line.startswith(PER_HOST)]


def generic_rendering(service: FleetService) -> list[str]:
    """The per-host families as prometheus_client writes them from sample objects (how they
    were built before): the direct writer must produce the very same lines."""
    drift = GaugeMetricFamily("fleet_host_drift", "", labels=["group", "host"])
    since = GaugeMetricFamily(
        "fleet_host_drift_since_timestamp_seconds", "", labels=["group", "host"]
    )
    reported = GaugeMetricFamily("fleet_host_last_report_timestamp_seconds", "", labels=["host"])
    booted = InfoMetricFamily(
        "fleet_host_booted", "", labels=["group", "host", "commit", "version"]
    )
    for group, plan in service.plans.items():
        rollout = plan.state.rollout
        for host in plan.hosts:
            observed = service.observed.get(host)
            drifted = observed is None or observed.booted_commit != plan.spec.target.commit
            drift.add_metric([group, host], 1.0 if drifted else 0.0)
            progress = rollout.hosts.get(host) if rollout is not None else None
            if drifted and progress is not None and progress.offered_at is not None:
                since.add_metric([group, host], progress.offered_at.timestamp())
    for host, observed in service.observed.items():
        reported.add_metric([host], observed.received_at.timestamp())
        if observed.booted_commit is not None:
            group = service.fleet.group_of(host) or ""
            booted.add_metric(
                [group, host, observed.booted_commit, observed.booted_version or ""], {}
            )

    class Families(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
            yield from (drift, since, reported, booted)

    registry = CollectorRegistry()
    registry.register(Families())
    return per_host_lines(generate_latest(registry))


def test_per_host_series_are_the_lines_prometheus_client_would_write(
    in_process: tuple[FleetService, CollectorRegistry],
) -> None:
    service, registry = in_process
    odd = booting(OLD, 'nightly "9.1" \\ build')  # a version that needs escaping
    ingest(service, "c1", odd)
    ingest(service, "c2", booting(NEW, "9.2"))
    ingest(service, "loose", booting(OLD, None))
    page = exposition(registry)
    assert sorted(per_host_lines(page)) == sorted(generic_rendering(service))
    # Each family is written once, whole: a family split in two is invalid text format.
    names = [f.name for f in text_string_to_metric_families(page.decode())]
    assert len(names) == len(set(names))


def test_cached_per_host_series_follow_every_report_and_plan(
    in_process: tuple[FleetService, CollectorRegistry],
) -> None:
    service, registry = in_process
    clock = service.clock
    assert isinstance(clock, ManualClock)
    ingest(service, "c1", booting(OLD, "9.1"))
    ingest(service, "c2", booting(OLD, "9.1"))
    exposition(registry)  # the group's and hosts' lines are now kept
    clock.advance(timedelta(seconds=90))
    ingest(service, "c2", booting(OLD, "9.1"))  # a heartbeat: the plan stays, the time moves
    ingest(service, "c3", booting(OLD, "9.1"))  # a host's first report
    page = exposition(registry)
    assert sorted(per_host_lines(page)) == sorted(generic_rendering(service))
    # A host's observation replaced without its group being planned again (a pass that
    # failed, or one still queued): its booted deployment shows all the same.
    plan = service.plans["g"]
    service.observed["c1"] = dataclasses.replace(
        service.observed["c1"], booted_commit=NEWER, booted_version="9.3"
    )
    page = exposition(registry)
    assert service.plans["g"] is plan
    assert sorted(per_host_lines(page)) == sorted(generic_rendering(service))
    assert f'commit="{NEWER}",group="g",host="c1",version="9.3"' in page.decode()


def test_without_per_host_series_only_group_series_are_exported(
    in_process: tuple[FleetService, CollectorRegistry],
) -> None:
    service, registry = in_process
    ingest(service, "c1", booting(OLD, "9.1"))
    series = host_series(registry)
    assert series is not None
    series.enabled = False
    page = exposition(registry).decode()
    assert per_host_lines(page.encode()) == []
    assert not any(f" {name} " in page for name in PER_HOST)  # no HELP or TYPE either
    assert 'fleet_group_hosts{group="g",state="staging"} 1.0' in page
    series.enabled = True
    assert len(per_host_lines(exposition(registry))) == len(generic_rendering(service))


def test_serve_without_per_host_series_exports_group_series_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reconciler serve` itself, told so by the environment (as by the flag or TOML)."""
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    monkeypatch.setenv("RECONCILER_NO_METRICS_PER_HOST", "1")
    server = ServeProcess(origin.bare, tmp_path / "state", tmp_path / "logs")
    server.start()
    try:
        server.wait_ready()
        token = {"Authorization": "Bearer demo-token-dub-call-01"}
        answer = httpx.post(
            server.url + "/v1/report", json=agent_report(OLD_PRODUCTION), headers=token
        )
        assert answer.is_success
        page = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert "fleet_group_hosts{" in page
    assert not any(f" {name} " in page for name in PER_HOST)


def test_health_gates_have_a_status_series_each_and_their_last_value(tmp_path: Path) -> None:
    with gated_api(tmp_path) as api:
        found = samples(api)
        text = httpx.get(api.url + "/metrics").text
    status = {
        labels: v for (name, labels), v in found.items() if name == "fleet_health_gate_status"
    }
    assert status == {
        (("check", "call-failures"), ("scope", "group/g"), ("status", "pending")): 1,
        (("check", "rtp-loss"), ("scope", "group/g"), ("status", "stalled")): 1,
        (("check", "registrations"), ("scope", "group/g"), ("status", "failed")): 1,
        (("check", "call-failures"), ("scope", "stream/production"), ("status", "failed")): 1,
    }
    gate_values = {
        labels: v for (name, labels), v in found.items() if name == "fleet_health_gate_value"
    }
    assert gate_values == {  # rtp-loss had no value: no series rather than a made-up one
        (("check", "call-failures"), ("scope", "group/g")): 0.001,
        (("check", "registrations"), ("scope", "group/g")): 4.0,
        (("check", "call-failures"), ("scope", "stream/production")): 0.2,
    }
    if shutil.which("promtool"):
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_groups_without_checks_have_no_health_gate_series(api: RunningApi) -> None:
    post(api, report("c1"), token="c1")
    names = {name for name, _ in samples(api)}
    assert "fleet_health_gate_status" not in names
    assert "fleet_rollout_state" in names
