"""A real Prometheus scrapes a running reconciler through a rollout with a failing host.

Prometheus runs in the foreground on 127.0.0.1 with a 1 s scrape and evaluation interval and
temporary storage, loading deploy/prometheus/alerts.yml (with FleetRolloutHalted's `for:`
shortened, the expression unchanged). Asserted through Prometheus's HTTP API: drift rises and
clears, a host's booted-version series moves with it (no stale one left), the halted-rollout
alert fires, and every PromQL expression of the Grafana dashboard runs without error.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.clock import SystemClock
from tests.api_support import RunningApi, running_api
from tests.conftest import ROOT
from tests.fleets import NEW, OLD, build_fleet
from tests.test_api import GROUPS, HOSTS, post, report


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prometheus_and_api(tmp_path: Path) -> Iterator[tuple[str, RunningApi]]:
    with running_api(build_fleet(GROUPS, HOSTS), tmp_path / "s.sqlite", SystemClock()) as api:
        rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
        for rule in rules["groups"][0]["rules"]:
            if rule["alert"] == "FleetRolloutHalted":
                rule["for"] = "2s"  # the expression is what is tested; a minute is not
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
        target = api.url.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(tmp_path / "alerts.yml")],
                    "scrape_configs": [
                        {"job_name": "fleet-reconciler", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        port = free_port()
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait(lambda: _ready(url, process), "Prometheus did not start")
            yield url, api
        finally:
            process.terminate()
            process.communicate(timeout=30)


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    try:
        return httpx.get(url + "/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def wait(check: Any, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message
        time.sleep(0.25)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", (expr, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def scalar(url: str, expr: str) -> float | None:
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else None


@pytest.mark.needs_tool("prometheus")
def test_drift_rises_and_clears_and_the_halt_alert_fires(
    prometheus_and_api: tuple[str, RunningApi],
) -> None:
    prom, api = prometheus_and_api
    for host in HOSTS:
        post(api, report(), token=host)  # everyone on the old commit
    wait(lambda: scalar(prom, 'sum(fleet_host_drift{group="g"})') == 3, "drift never rose")

    post(api, report(booted=NEW), token="c1")  # the canary is updated and healthy
    wait(lambda: scalar(prom, 'fleet_host_drift{host="c1"}') == 0, "drift never cleared")
    # Hosts by booted commit: c1's series moved to NEW, and its OLD one went stale at once.
    by_commit = 'count by (commit) (fleet_host_booted_info{group="g"})'
    wait(
        lambda: (
            {r["metric"]["commit"]: r["value"][1] for r in query(prom, by_commit)}
            == {OLD: "2", NEW: "1"}
        ),
        "the booted-commit series never moved",
    )

    post(api, report(), token="c2")  # wave 2: offered the target
    post(api, report(staged=NEW), token="c2")  # staged: allowed to reboot
    post(api, report(boot_id="b2"), token="c2")  # rebooted, came back on the old commit
    wait(
        lambda: query(prom, 'ALERTS{alertname="FleetRolloutHalted",alertstate="firing"}'),
        "FleetRolloutHalted never fired",
    )
    assert scalar(prom, 'fleet_host_failures_total{reason="fell_back"}') == 1
    assert scalar(prom, 'fleet_rollout_state{group="g",state="halted"}') == 1
    assert query(prom, 'ALERTS{alertname="FleetHostFellBack"}')

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "fleet.json").read_text())
    expressions = [
        target["expr"].replace("$group", ".*")
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    assert len(expressions) >= 12
    for expr in expressions:
        query(prom, expr)  # asserts the query ran without error
