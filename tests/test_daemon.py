"""`reconciler serve`, end to end on real repositories: a push reaches agents by itself."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli import main
from reconciler.clock import ManualClock
from reconciler.errors import GitRemoteUnavailable
from reconciler.git.source import set_network_timeouts
from reconciler.serve.daemon import NoValidRevision, ServeConfig, open_daemon
from reconciler.serve.server import Listen
from reconciler.serve.service import token_hash
from tests.conftest import git
from tests.daemon_support import BackgroundDaemon
from tests.test_gitsource import Remote, replace

OLD_PRODUCTION = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"
NEW_PRODUCTION = "4a" * 32


def no_urls(root: Path) -> None:
    """The example streams point at an example URL; the daemon's preflight would ask it."""
    for stream in ("production", "staging"):
        replace(f"streams/{stream}.yaml", "url: https://ostree.callos.example.net/repo\n", "")(root)


def agent_report(booted: str) -> dict[str, Any]:
    return {
        "agentVersion": "0.1.0",
        "bootId": "b1",
        "greenboot": "green",
        "booted": {
            "checksum": booted,
            "baseChecksum": booted,
            "origin": "callos:callos/9/x86_64/production",
        },
    }


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def config(tmp_path: Path, origin: Remote, **kwargs: Any) -> ServeConfig:
    return ServeConfig(
        repo=str(origin.bare),
        state_dir=tmp_path / "state",
        listen=Listen("127.0.0.1", 0),
        poll_interval=3600,
        **kwargs,
    )


def test_a_push_reaches_a_long_polling_agent_through_the_watch(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    first = origin.commit("no example urls", no_urls)
    with BackgroundDaemon(config(tmp_path, origin)) as running:
        assert httpx.get(running.url + "/readyz").json()["revision"] == first
        token = {"Authorization": "Bearer demo-token-dub-call-01"}
        answer = httpx.post(
            running.url + "/v1/report", json=agent_report(OLD_PRODUCTION), headers=token
        ).json()
        assert answer["state"] == "in_sync"
        result: dict[str, Any] = {}

        def long_poll() -> None:
            body = {**agent_report(OLD_PRODUCTION), "knownAssignment": answer["assignmentId"]}
            start = time.monotonic()
            result["answer"] = httpx.post(
                running.url + "/v1/report?wait=20", json=body, headers=token, timeout=30
            ).json()
            result["seconds"] = time.monotonic() - start

        poller = threading.Thread(target=long_poll)
        poller.start()
        time.sleep(0.3)
        pushed = origin.commit(
            "production: 9.20261125.0",
            replace("streams/production.yaml", OLD_PRODUCTION, NEW_PRODUCTION),
        )
        poller.join(timeout=25)
        assert result["answer"]["action"] == "stage", result
        assert result["answer"]["target"]["commit"] == NEW_PRODUCTION
        assert result["seconds"] < 5
        assert httpx.get(running.url + "/readyz").json()["revision"] == pushed


def test_an_invalid_push_keeps_the_last_good_revision(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    good = origin.commit("no example urls", no_urls)
    ops = {"Authorization": "Bearer ops-token"}
    settings = config(tmp_path, origin, operator_token_sha256=token_hash("ops-token"))
    with BackgroundDaemon(settings) as running:
        bad = origin.commit(
            "typo",
            replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution"),
        )

        def refused() -> bool:
            verdict = httpx.get(running.url + "/readyz", headers=ops).json()["lastVerdict"]
            return verdict is not None and verdict["revision"] == bad

        wait_for(refused)
        # Anyone may ask whether it is ready; the verdict (fleet-repo content) is for operators.
        assert httpx.get(running.url + "/readyz").json() == {"status": "ready", "revision": good}
        ready = httpx.get(running.url + "/readyz", headers=ops).json()
        assert ready["revision"] == good
        assert ready["lastVerdict"]["code"] == "invalid"
        assert "groups/callservers-nyc.yaml:9:1" in ready["lastVerdict"]["message"]


def test_restart_resumes_from_the_applied_revision_even_if_the_tip_is_bad(
    tmp_path: Path,
) -> None:
    origin = Remote(tmp_path)
    good = origin.commit("no example urls", no_urls)
    open_daemon(config(tmp_path, origin)).store.close()  # applies `good`
    origin.commit(
        "typo", replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    )
    restarted = open_daemon(config(tmp_path, origin))
    assert restarted.service.fleet.revision == good
    restarted.store.close()


def test_refuses_to_start_without_any_valid_revision(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit(
        "typo", replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    )
    with pytest.raises(NoValidRevision):
        open_daemon(config(tmp_path, origin))


def test_status_command_against_a_running_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = config(tmp_path, origin, operator_token_sha256=token_hash("ops"))
    with BackgroundDaemon(settings) as running:
        httpx.post(
            running.url + "/v1/report",
            json=agent_report(OLD_PRODUCTION),
            headers={"Authorization": "Bearer demo-token-dub-call-01"},
        )
        assert main(["status", "--server", running.url, "--token", "ops", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert {g["name"] for g in data["groups"]} >= {"callservers-dub", "staging-lab"}
        [promotion] = data["promotions"]
        assert (promotion["stream"], promotion["source"]) == ("production", "staging")
        assert promotion["state"] == "waiting_for_hosts"  # no lab host runs the build yet
        assert main(["status", "--server", running.url, "--token", "ops"]) == 0
        assert "Promotions" in capsys.readouterr().out
        assert (
            main(
                ["status", "--server", running.url, "--token", "ops", "--group", "callservers-dub"]
            )
            == 0
        )
        text = capsys.readouterr().out
        assert "callservers-dub" in text
        assert "dub-call-01" in text
        assert main(["status", "--server", running.url, "--token", "wrong"]) == 2


def test_a_remote_is_polled(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = ServeConfig(
        repo=f"file://{origin.bare}",
        state_dir=tmp_path / "state",
        listen=Listen("127.0.0.1", 0),
        poll_interval=0.3,
        watch=False,
    )
    with BackgroundDaemon(settings) as running:
        pushed = origin.commit(
            "production", replace("streams/production.yaml", OLD_PRODUCTION, NEW_PRODUCTION)
        )
        wait_for(lambda: httpx.get(running.url + "/readyz").json()["revision"] == pushed)


def test_a_soak_ends_on_a_timer_without_any_report(tmp_path: Path) -> None:
    origin = Remote(tmp_path)

    def short_soak(root: Path) -> None:
        no_urls(root)  # and a soak that ends before anyone would count as silent
        replace("groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 2m")(root)

    origin.commit("lab soaks for 2 minutes", short_soak)
    clock = ManualClock(datetime.now(UTC))
    with BackgroundDaemon(config(tmp_path, origin), clock) as running:
        service = running.daemon.service
        target = service.fleet.streams["staging"].commit
        canary = service.plans["staging-lab"].spec.order[0]
        headers = {"Authorization": f"Bearer demo-token-{canary}"}
        # The canary runs another build first, so its wave has work to do and soaks.
        before = httpx.post(
            running.url + "/v1/report", json=agent_report("0" * 64), headers=headers
        ).json()
        assert before["action"] == "stage"
        answer = httpx.post(
            running.url + "/v1/report", json=agent_report(target), headers=headers
        ).json()
        assert answer["state"] == "in_sync"
        status = service.plans["staging-lab"].status
        assert (status.phase.value, status.wave) == ("soaking", 1)
        soak_ends = service.plans["staging-lab"].requeue_at
        assert soak_ends == clock.now() + timedelta(minutes=2)
        timers = running.daemon.timers
        assert timers is not None
        wait_for(lambda: timers.due_at("look-again:staging-lab") == soak_ends)
        clock.advance(timedelta(minutes=1))  # not yet: the timer sleeps on
        assert service.plans["staging-lab"].status.wave == 1
        assert timers.due_at("look-again:staging-lab") == soak_ends
        # Nobody reports; the look-again timer alone must open the next wave once the
        # clock reaches the end of the soak: no wall-clock wait.
        clock.advance(soak_ends - clock.now())
        wait_for(lambda: service.plans["staging-lab"].status.wave == 2)


def test_revision_valid_again_when_the_branch_returns_to_the_applied_commit(
    tmp_path: Path,
) -> None:
    origin = Remote(tmp_path)
    good = origin.commit("no example urls", no_urls)
    with BackgroundDaemon(config(tmp_path, origin)) as running:

        def valid() -> float:
            for line in httpx.get(running.url + "/metrics").text.splitlines():
                if line.startswith("fleet_repo_revision_valid "):
                    return float(line.split()[1])
            raise AssertionError("no fleet_repo_revision_valid")

        assert valid() == 1
        origin.commit(
            "typo",
            replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution"),
        )
        wait_for(lambda: valid() == 0)
        git(origin.work, "push", "-q", "--force", "origin", f"{good}:main")
        wait_for(lambda: valid() == 1)


def test_a_remote_that_goes_silent_fails_the_fetch_within_the_timeout(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        daemon = open_daemon(config(tmp_path, origin, git_timeout=1.0))
        applied = daemon.service.fleet.revision
        port = silent.getsockname()[1]
        daemon.mirror.repo.remotes.set_url("origin", f"http://127.0.0.1:{port}/fleet.git")
        started = time.monotonic()
        with pytest.raises(GitRemoteUnavailable, match="timed out"):
            daemon.sync()
        assert time.monotonic() - started < 10  # not for ever
        assert daemon.service.fleet.revision == applied  # the last good revision stays
    finally:
        silent.close()
        set_network_timeouts(ServeConfig(repo="", state_dir=tmp_path).git_timeout)
