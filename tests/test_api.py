"""The agent API and operator API on a real uvicorn on 127.0.0.1: every status code."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.agent.client import ReconcilerClient
from reconciler.clock import ManualClock
from reconciler.errors import StoreUnavailable
from reconciler.fleetrepo.models import Stream
from reconciler.rollout.gates import GateOutcome, GateSample
from reconciler.state.gatesamples import group_scope, stream_scope
from tests.api_support import OPERATOR_TOKEN, RunningApi, running_api
from tests.engine_harness import START
from tests.fleet_driver import ReportingFleet
from tests.fleets import HOLIDAY_FREEZE, NEW, OLD, build_fleet

HOSTS = {"c1": {}, "c2": {}, "c3": {}}
GROUPS = {
    "g": {"hosts": list(HOSTS), "canaries": ["c1"], "rollout": {"waves": [1], "soakTime": "0s"}}
}


def report(
    host: str | None = None,
    booted: str = OLD,
    staged: str | None = None,
    greenboot: str = "green",
    boot_id: str = "b1",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agentVersion": "0.1.0",
        "bootId": boot_id,
        "greenboot": greenboot,
        "booted": {"checksum": booted, "baseChecksum": booted, "origin": "os:os/main"},
        "staged": ({"checksum": staged, "baseChecksum": staged} if staged else None),
        **extra,
    }
    if host:
        body["host"] = host
    return body


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApi]:
    clock = ManualClock(START)
    with running_api(build_fleet(GROUPS, HOSTS), tmp_path / "state.sqlite", clock) as running:
        yield running


def post(api: RunningApi, body: Any, token: str | None = "c1", **kwargs: Any) -> httpx.Response:
    headers = auth(token) if token else {}
    return httpx.post(f"{api.url}/v1/report", json=body, headers=headers, **kwargs)


def test_report_returns_the_assignment(api: RunningApi) -> None:
    answer = post(api, report("c1"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["host"], body["group"], body["action"], body["state"]) == (
        "c1",
        "g",
        "stage",
        "staging",
    )
    assert body["target"]["commit"] == NEW
    assert body["reason"]["code"] == "waiting_for_stage"
    assert body["reportAfterSeconds"] > 0
    assert body["assignmentId"]
    assert post(api, report(), token="c2").json()["reason"]["code"] == "wave_not_open"


@pytest.mark.parametrize(
    ("token", "detail"), [(None, "missing bearer token"), ("not-a-token", "unknown token")]
)
def test_401_without_a_known_token(api: RunningApi, token: str | None, detail: str) -> None:
    answer = post(api, report(), token=token)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["detail"] == detail
    assert api.reports.latest() == {}


def test_403_when_the_body_names_another_host(api: RunningApi) -> None:
    answer = post(api, report("c2"), token="c1")
    assert answer.status_code == 403
    assert "belongs to c1, not c2" in answer.json()["detail"]
    assert api.reports.latest() == {}


def test_415_for_other_content_types(api: RunningApi) -> None:
    answer = httpx.post(
        f"{api.url}/v1/report",
        content=json.dumps(report()),
        headers={**auth("c1"), "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415
    assert answer.headers["content-type"] == "application/problem+json"


def test_413_for_large_bodies_declared_or_streamed(api: RunningApi) -> None:
    big = report(statusError="x" * 70_000)
    assert post(api, big).status_code == 413

    def chunks() -> Iterator[bytes]:
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    streamed = httpx.post(
        f"{api.url}/v1/report",
        content=chunks(),
        headers={**auth("c1"), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert api.reports.latest() == {}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ("{not json", {"body"}),
        (json.dumps(report(booted="xyz")), {"booted.checksum", "booted.baseChecksum"}),
        (json.dumps(report(greenboot="purple", bootId=7)), {"greenboot", "bootId"}),
        (json.dumps({"bootId": "b"}), {"agentVersion"}),
        (json.dumps([1, 2]), {"body"}),
        (
            json.dumps(report(rebootDeferred={"since": "2026-11-25T12:00:00", "message": "m"})),
            {"rebootDeferred.since"},  # a time without its zone
        ),
        (
            json.dumps(
                report(
                    rebootDeferred={
                        "since": "2026-11-25T12:00:00Z",
                        "message": "x" * 257,
                        "exitCode": "one",
                        "timedOut": "perhaps",
                    }
                )
            ),
            {
                "rebootDeferred.message",
                "rebootDeferred.exitCode",
                "rebootDeferred.timedOut",
            },
        ),
        (json.dumps(report(rebootDeferred="busy")), {"rebootDeferred"}),
    ],
)
def test_422_names_each_field_at_fault(api: RunningApi, body: str, fields: set[str]) -> None:
    answer = httpx.post(
        f"{api.url}/v1/report",
        content=body,
        headers={**auth("c1"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in problem["errors"]} == fields
    assert api.reports.latest() == {}


def test_a_deferred_reboot_shows_the_host_draining(api: RunningApi) -> None:
    assert post(api, report("c1", staged=NEW)).json()["action"] == "reboot"
    clock = api.service.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=1))
    deferral = {
        "since": "2026-11-25T12:01:00+00:00",
        "message": "3 active calls",
        "exitCode": 1,
        "timedOut": False,
    }
    answer = post(api, report("c1", staged=NEW, rebootDeferred=deferral))
    assert answer.status_code == 200
    assert (answer.json()["state"], answer.json()["action"]) == ("draining", "reboot")
    host = httpx.get(f"{api.url}/v1/hosts/c1", headers=auth(OPERATOR_TOKEN)).json()
    assert host["state"] == "draining"
    assert host["reason"]["code"] == "draining"
    assert "3 active calls" in host["reason"]["message"]
    assert host["rebootDeferred"] == {**deferral, "since": "2026-11-25T12:01:00Z"}


def test_422_for_a_bad_wait_parameter(api: RunningApi) -> None:
    answer = post(api, report(), params={"wait": "forever"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "query.wait"


def test_operator_endpoints_need_the_operator_token(api: RunningApi) -> None:
    post(api, report("c1"))
    for path in ("/v1/hosts", "/v1/hosts/c1", "/v1/groups"):
        assert httpx.get(api.url + path).status_code == 401
        assert httpx.get(api.url + path, headers=auth("c1")).status_code == 401
    hosts = httpx.get(api.url + "/v1/hosts", headers=auth(OPERATOR_TOKEN)).json()
    assert {h["name"] for h in hosts} == set(HOSTS)
    one = httpx.get(api.url + "/v1/hosts/c1", headers=auth(OPERATOR_TOKEN)).json()
    assert (one["state"], one["action"], one["bootedCommit"]) == ("staging", "stage", OLD)
    groups = httpx.get(api.url + "/v1/groups", headers=auth(OPERATOR_TOKEN)).json()
    assert groups[0]["name"] == "g"
    assert groups[0]["hostsByState"]["staging"] == 1
    missing = httpx.get(api.url + "/v1/hosts/nope", headers=auth(OPERATOR_TOKEN))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_groups_show_the_freeze_in_force(tmp_path: Path) -> None:
    freeze = HOLIDAY_FREEZE  # 2026-11-25, the day START falls on
    fleet = build_fleet(GROUPS, HOSTS, freezes=[freeze])
    with running_api(fleet, tmp_path / "state.sqlite", ManualClock(START)) as running:
        post(running, report("c1"))
        [group] = httpx.get(running.url + "/v1/groups", headers=auth(OPERATOR_TOKEN)).json()
    assert group["freeze"] == (
        "reboots frozen by `xmas` until 2026-11-26 00:00 UTC: holiday change freeze"
    )


def test_long_poll_returns_as_soon_as_the_assignment_changes(api: RunningApi) -> None:
    first = post(api, report(), token="c2").json()
    assert first["action"] == "none"
    answers: list[tuple[float, dict[str, Any]]] = []

    def wait_for_change() -> None:
        start = time.monotonic()
        body = report(knownAssignment=first["assignmentId"])
        result = post(api, body, token="c2", params={"wait": 20}, timeout=30).json()
        answers.append((time.monotonic() - start, result))

    waiter = threading.Thread(target=wait_for_change)
    waiter.start()
    time.sleep(0.3)
    assert not answers  # still held
    post(api, report(booted=NEW), token="c1")  # the canary is done: wave 2 opens
    waiter.join(timeout=10)
    [(elapsed, answer)] = answers
    assert answer["action"] == "stage"
    assert elapsed < 5


def test_unchanged_heartbeat_does_not_replan(api: RunningApi) -> None:
    post(api, report("c1"))
    decisions_before = len(api.service.engine.store.events())
    for _ in range(5):
        post(api, report("c1"))
    assert len(api.service.engine.store.events()) == decisions_before
    assert len(api.reports.history("c1", limit=50)) == 6


@pytest.mark.needs_tool("openssl")
def test_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    clock = ManualClock(START)
    with running_api(
        build_fleet(GROUPS, HOSTS), tmp_path / "s.sqlite", clock, str(cert), str(key)
    ) as api:
        assert api.url.startswith("https://")
        client = ReconcilerClient(api.url, "c1", ca_file=str(cert))
        assert client.report(report())["action"] == "stage"
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"{api.url}/v1/report", json=report(), headers=auth("c1"))


@pytest.mark.parametrize("wait", ["²", "9" * 5000, "-1", "301"])
def test_odd_wait_values_are_422_not_500(api: RunningApi, wait: str) -> None:
    answer = post(api, report(), params={"wait": wait})
    assert answer.status_code == 422


def test_a_failing_store_is_503_and_recovers(
    api: RunningApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = api.service.engine.store.save

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(api.service.engine.store, "save", broken)
    # the canary now runs the target: a pass that decides something, and cannot persist it
    answer = post(api, report("c1", booted=NEW, boot_id="b2"))
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    monkeypatch.setattr(api.service.engine.store, "save", real)
    # the same report again: not new, but the failed pass is made now and persisted
    assert post(api, report("c1", booted=NEW, boot_id="b2")).status_code == 200
    assert "g" not in api.service.failures
    assert "host_succeeded" in [e.kind for e in api.service.store.events("g")]


# -- health gates: what an operator sees of them -------------------------------------------

GATE_CHECKS: list[dict[str, Any]] = [
    {
        "name": "call-failures",
        "query": 'max(sip_call_failure_ratio{instance=~"$hosts"})',
        "successCondition": "< 0.02",
        "failureCondition": ">= 0.05",
        "consecutiveSuccesses": 3,
    },
    {
        "name": "rtp-loss",
        "query": 'max(rtp_packet_loss_ratio{instance=~"$hosts"})',
        "successCondition": "< 0.01",
        "inconclusiveLimit": 1,
    },
    {
        "name": "registrations",
        "query": 'sum(rate(sip_register_failed_total{instance=~"$hosts"}[5m]))',
        "failureCondition": "> 1",
        "dryRun": True,
    },
]


@contextlib.contextmanager
def gated_api(tmp_path: Path) -> Iterator[RunningApi]:
    """Group `g` of three call servers whose canary c1 runs the new build while wave 2 waits
    on the gates, each evaluated once: call-failures 1 of 3 successes (pending), rtp-loss
    without data (stalled), registrations failing as a dry run (failed, never blocking).
    Stream `production` promotes from `main` with the call-failures check, which failed once.
    """
    groups = {
        "g": {
            "hosts": list(HOSTS),
            "canaries": ["c1"],
            "rollout": {"waves": [1, "100%"], "soakTime": "0s", "healthTimeout": "30m"},
            "healthChecks": GATE_CHECKS,
        }
    }
    promotion = {
        "from": "main",
        "soakTime": "1m",
        "minHealthyHosts": 1,
        "healthChecks": [GATE_CHECKS[0]],
    }
    streams = {
        name: Stream.model_validate(
            {
                "apiVersion": "ostree-fleet/v1alpha1",
                "kind": "Stream",
                "name": name,
                "remote": "os",
                "ref": f"os/{name}",
                **fields,
            }
        )
        for name, fields in {
            "main": {"commit": NEW},
            "production": {"commit": OLD, "promotion": promotion},
        }.items()
    }
    fleet = dataclasses.replace(build_fleet(groups, HOSTS), streams=streams)
    clock = ManualClock(START)
    with running_api(fleet, tmp_path / "state.sqlite", clock) as api:
        hosts = ReportingFleet(api.service, clock, dict.fromkeys(HOSTS, OLD))
        hosts.run(timedelta(minutes=20), dt=timedelta(minutes=1))
        assert (hosts.hosts["c1"].booted, hosts.hosts["c2"].booted) == (NEW, OLD)
        at = clock.now()
        samples = [
            GateSample("call-failures", at, GateOutcome.SUCCESS, 0.001, "0.001 < 0.02 is true"),
            GateSample("rtp-loss", at, GateOutcome.INCONCLUSIVE, None, "no data"),
            GateSample("registrations", at, GateOutcome.FAILURE, 4.0, "4 > 1 is true"),
        ]
        for sample in samples:
            api.service.record_gate_sample(group_scope("g"), sample)
        api.service.record_gate_sample(
            stream_scope("production", NEW),
            GateSample("call-failures", at, GateOutcome.FAILURE, 0.2, "0.2 >= 0.05 is true"),
        )
        api.service.reconcile("g")
        yield api


def test_groups_and_promotions_show_their_health_gates(tmp_path: Path) -> None:
    with gated_api(tmp_path) as api:
        headers = auth(OPERATOR_TOKEN)
        [group] = httpx.get(f"{api.url}/v1/groups", headers=headers).json()
        [promotion] = httpx.get(f"{api.url}/v1/promotions", headers=headers).json()
    assert group["reason"]["code"] == "waiting_for_health_checks"
    gates = {gate["name"]: gate for gate in group["healthChecks"]}
    assert list(gates) == ["call-failures", "rtp-loss", "registrations"]
    pending = gates["call-failures"]
    assert {k: v for k, v in pending.items() if k not in ("lastAt", "reason")} == {
        "name": "call-failures",
        "status": "pending",
        "dryRun": False,
        "failures": 0,
        "consecutiveSuccesses": 1,
        "consecutiveSuccessesNeeded": 3,
        "lastValue": 0.001,
        "lastOutcome": "success",
    }
    assert pending["lastAt"] is not None
    assert "1 of 3 successes" in pending["reason"]
    assert (gates["rtp-loss"]["status"], gates["rtp-loss"]["lastValue"]) == ("stalled", None)
    assert gates["rtp-loss"]["lastOutcome"] == "inconclusive"
    dry = gates["registrations"]
    assert (dry["status"], dry["dryRun"], dry["failures"]) == ("failed", True, 1)
    assert "dry run" in dry["reason"]
    assert promotion["state"] == "waiting_for_health_checks"
    [gate] = promotion["healthChecks"]
    assert (gate["name"], gate["status"], gate["lastValue"]) == ("call-failures", "failed", 0.2)
    assert "0.2 >= 0.05" in gate["reason"]


def test_a_group_without_checks_has_no_health_gates(api: RunningApi) -> None:
    post(api, report("c1"))
    [group] = httpx.get(f"{api.url}/v1/groups", headers=auth(OPERATOR_TOKEN)).json()
    assert group["healthChecks"] == []
