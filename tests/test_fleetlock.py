"""The FleetLock server on a real uvicorn on 127.0.0.1, driven by a client written from the
protocol as Zincati speaks it: no credentials, only the `fleet-lock-protocol` header and its
node UUID, URLs made by joining `v1/...` to a configured base URL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from reconciler.clock import ManualClock
from reconciler.serve.api.fleetlock import FleetLockSettings
from reconciler.serve.service import token_hash
from tests.api_support import OPERATOR_TOKEN, RunningApi, running_api
from tests.engine_harness import START
from tests.fleets import HOLIDAY_FREEZE, NEW, OLD, build_fleet

# Zincati's id: the app-specific machine UUID as 32 lowercase hex digits.
IDS = {name: uuid.uuid4().hex for name in ("z1", "z2", "z3", "a2")}
HOSTS: dict[str, dict[str, str]] = {"z1": {}, "z2": {}, "z3": {}, "a1": {}, "a2": {}}
ONE_AT_A_TIME = {"waves": ["100%"], "soakTime": "0s", "rebootBudget": {"maxUnavailable": 1}}
GROUPS: dict[str, dict[str, Any]] = {"g": {"hosts": list(HOSTS), "rollout": ONE_AT_A_TIME}}
SECRET = "s3cret-path-part"


@dataclass
class ZincatiLike:
    """A FleetLock client as Zincati is one (src/fleet_lock/mod.rs): a pretty-printed body
    with `client_params`, the header, the path joined to the base URL, success on 2xx."""

    base_url: str
    node_uuid: str
    group: str = "default"

    def _post(self, suffix: str, header: bool = True) -> tuple[bool, dict[str, Any] | None]:
        body = json.dumps({"client_params": {"id": self.node_uuid, "group": self.group}}, indent=2)
        headers = {"fleet-lock-protocol": "true"} if header else {}
        answer = httpx.post(urljoin(self.base_url, suffix), content=body, headers=headers)
        if answer.is_success:
            return True, None
        return False, answer.json()

    def pre_reboot(self, header: bool = True) -> tuple[bool, dict[str, Any] | None]:
        return self._post("v1/pre-reboot", header)

    def steady_state(self) -> tuple[bool, dict[str, Any] | None]:
        return self._post("v1/steady-state")


def agent_report(
    booted: str = OLD, staged: str | None = None, boot_id: str = "b1", greenboot: str = "green"
) -> dict[str, Any]:
    return {
        "agentVersion": "0.1.0",
        "bootId": boot_id,
        "greenboot": greenboot,
        "booted": {"checksum": booted, "baseChecksum": booted},
        "staged": {"checksum": staged, "baseChecksum": staged} if staged else None,
    }


def report(api: RunningApi, host: str, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{api.url}/v1/report",
        json=agent_report(**fields),
        headers={"Authorization": f"Bearer {host}"},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def locks(api: RunningApi) -> list[dict[str, Any]]:
    answer = httpx.get(api.url + "/v1/locks", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert answer.status_code == 200
    result: list[dict[str, Any]] = answer.json()
    return result


def refusal(result: tuple[bool, dict[str, Any] | None]) -> dict[str, Any]:
    """The error body of a refused call."""
    ok, err = result
    assert not ok
    assert err is not None
    return err


def client(api: RunningApi, host: str) -> ZincatiLike:
    return ZincatiLike(api.url + "/", IDS[host])


def serve(
    tmp_path: Path,
    clock: ManualClock | None = None,
    groups: dict[str, dict[str, Any]] = GROUPS,
    fleetlock: FleetLockSettings | None = FleetLockSettings(),  # noqa: B008 - frozen
    **fleet: Any,
) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return running_api(
        build_fleet(groups, HOSTS, lock_ids=IDS, **fleet),
        tmp_path / "state.sqlite",
        clock or ManualClock(START),
        fleetlock=fleetlock,
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApi]:
    with serve(tmp_path) as running:
        yield running


def test_refusals_carry_the_protocols_error_body(api: RunningApi) -> None:
    assert client(api, "z1").pre_reboot(header=False) == (
        False,
        {"kind": "missing_header", "value": "the header `fleet-lock-protocol: true` is required"},
    )
    unknown = ZincatiLike(api.url + "/", uuid.uuid4().hex).pre_reboot()
    assert refusal(unknown)["kind"] == "unknown_client"
    garbled = httpx.post(
        api.url + "/v1/pre-reboot", content=b"{", headers={"fleet-lock-protocol": "true"}
    )
    assert (garbled.status_code, garbled.json()["kind"]) == (400, "bad_request")
    no_id = httpx.post(
        api.url + "/v1/pre-reboot",
        json={"client_params": {"group": "default"}},
        headers={"fleet-lock-protocol": "true"},
    )
    assert (no_id.status_code, no_id.json()["kind"]) == (400, "bad_request")
    assert locks(api) == []


def test_clients_racing_for_one_slot_get_exactly_one_lock(api: RunningApi) -> None:
    results: dict[str, tuple[bool, dict[str, Any] | None]] = {}
    start = threading.Barrier(3)

    def ask(host: str) -> None:
        start.wait()
        results[host] = client(api, host).pre_reboot()

    threads = [threading.Thread(target=ask, args=(h,)) for h in ("z1", "z2", "z3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [h for h, (ok, _) in results.items() if ok]
    assert len(winners) == 1
    for host, result in results.items():
        if host not in winners:
            assert refusal(result)["kind"] == "lock_refused"
            assert refusal(result)["value"].startswith("waiting_for_budget:")
    [held] = locks(api)
    assert held["host"] == winners[0]


def test_lock_and_unlock_are_idempotent(api: RunningApi) -> None:
    z1, z2 = client(api, "z1"), client(api, "z2")
    assert z1.steady_state() == (True, None)  # nothing held: still a success
    assert z1.pre_reboot() == (True, None)
    assert z1.pre_reboot() == (True, None)  # a holder asking again keeps its lock
    assert [lock["host"] for lock in locks(api)] == ["z1"]
    assert z2.pre_reboot()[0] is False
    assert z1.steady_state() == (True, None)
    assert z1.steady_state() == (True, None)
    assert locks(api) == []
    assert z2.pre_reboot() == (True, None)


def test_no_slot_outside_the_hosts_window(tmp_path: Path) -> None:
    nights = [{"schedule": "0 2 * * *", "duration": "2h", "timeZone": "Europe/Dublin"}]
    with serve(tmp_path, host_windows={"z1": nights}) as api:
        assert refusal(client(api, "z1").pre_reboot())["value"].startswith("waiting_for_window:")
        assert client(api, "z2").pre_reboot() == (True, None)  # its own windows: any time


def test_no_slot_during_a_freeze(tmp_path: Path) -> None:
    freeze = HOLIDAY_FREEZE  # 2026-11-25, the day START falls on
    clock = ManualClock(START)
    with serve(tmp_path, clock, freezes=[freeze]) as api:
        assert refusal(client(api, "z1").pre_reboot())["value"].startswith("frozen:")
        clock.advance(timedelta(days=1))
        assert client(api, "z1").pre_reboot() == (True, None)


def test_no_slot_while_the_group_is_halted_or_paused(tmp_path: Path) -> None:
    halting = {"g": {**GROUPS["g"], "rollout": {**ONE_AT_A_TIME, "failureThreshold": 1}}}
    with serve(tmp_path, groups=halting) as api:
        report(api, "a1", booted=NEW, greenboot="red")  # fails on the target: halts
        assert refusal(client(api, "z1").pre_reboot())["value"].startswith("halted:")
    paused = {"g": {**GROUPS["g"], "paused": True}}
    with serve(tmp_path / "paused", groups=paused) as api:
        assert refusal(client(api, "z1").pre_reboot())["value"].startswith("paused:")


def test_agent_and_fleetlock_reboots_share_one_budget(api: RunningApi) -> None:
    assert report(api, "a1")["action"] == "stage"
    assert report(api, "a1", staged=NEW)["action"] == "reboot"
    assert refusal(client(api, "z1").pre_reboot())["value"].startswith("waiting_for_budget:")
    report(api, "a1", booted=NEW, boot_id="b2")  # back on the target, healthy
    assert client(api, "z1").pre_reboot() == (True, None)
    # Now the lock holds the one slot: the agent's next host waits for it.
    report(api, "a2")
    answer = report(api, "a2", staged=NEW)
    assert answer["action"] != "reboot"
    assert answer["reason"]["code"] == "waiting_for_budget"
    assert client(api, "z1").steady_state() == (True, None)
    assert report(api, "a2", staged=NEW)["action"] == "reboot"


def test_a_lock_is_released_when_its_agent_reports_healthy_after_the_reboot(
    api: RunningApi,
) -> None:
    report(api, "a2")  # a2 runs both our agent and a FleetLock client
    assert client(api, "a2").pre_reboot() == (True, None)
    report(api, "a2", boot_id="b1")  # the same boot: not back yet
    assert [lock["host"] for lock in locks(api)] == ["a2"]
    report(api, "a2", booted=NEW, boot_id="b2")
    assert locks(api) == []


def test_operators_see_who_holds_what_and_stale_locks(tmp_path: Path) -> None:
    clock = ManualClock(START)
    with serve(tmp_path, clock) as api:
        assert client(api, "z1").pre_reboot() == (True, None)
        host = httpx.get(
            api.url + "/v1/hosts/z1", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        ).json()
        assert (host["state"], host["reason"]["code"]) == ("updating", "lock_granted")
        assert host["lockGrantedAt"] is not None
        [fresh] = locks(api)
        assert fresh["stale"] is False
        clock.advance(timedelta(hours=2))
        [old] = locks(api)
        assert (old["host"], old["stale"], old["ageSeconds"]) == ("z1", True, 7200.0)
        metrics = httpx.get(api.url + "/metrics").text
        assert 'fleet_fleetlock_stale_locks{group="g"} 1.0' in metrics
        assert 'fleet_fleetlock_lock_granted_timestamp_seconds{group="g",host="z1"}' in metrics


def test_locks_survive_a_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as api:
        assert client(api, "z1").pre_reboot() == (True, None)
    with serve(tmp_path) as api:
        assert [lock["host"] for lock in locks(api)] == ["z1"]
        assert client(api, "z2").pre_reboot()[0] is False
        assert client(api, "z1").pre_reboot() == (True, None)
        assert client(api, "z1").steady_state() == (True, None)
        assert client(api, "z2").pre_reboot() == (True, None)


def test_a_secret_in_the_base_url_is_required_when_configured(tmp_path: Path) -> None:
    settings = FleetLockSettings(token_hash(SECRET))
    with serve(tmp_path, fleetlock=settings) as api:
        with_secret = ZincatiLike(f"{api.url}/fleetlock/{SECRET}/", IDS["z1"])
        assert with_secret.pre_reboot() == (True, None)
        assert with_secret.steady_state() == (True, None)
        # Without the trailing `/`, joining `v1/...` drops the secret, as in Zincati.
        for base in (f"{api.url}/fleetlock/{SECRET}", f"{api.url}/", f"{api.url}/fleetlock/x/"):
            assert refusal(ZincatiLike(base, IDS["z1"]).pre_reboot())["kind"] == "wrong_secret", (
                base
            )


def test_fleetlock_is_off_unless_enabled(tmp_path: Path) -> None:
    with serve(tmp_path, fleetlock=None) as api:
        answer = httpx.post(api.url + "/v1/pre-reboot", headers={"fleet-lock-protocol": "true"})
        assert answer.status_code in (404, 405)
