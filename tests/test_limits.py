"""Connection limits on a real uvicorn on 127.0.0.1: a deadline for each request to arrive, a
cap on open connections that slow clients give way to, one long-poll per host, and the open
files the cap needs. The load test with figures is benchmarks/connection_limits.py."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from reconciler.cli import main
from reconciler.clock import ManualClock
from reconciler.serve.api.app import create_app
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.server import BackgroundServer, ConnectionTable, Listen
from reconciler.serve.service import FleetService
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store
from tests.engine_harness import START
from tests.fleets import build_fleet
from tests.test_api import GROUPS, HOSTS, auth, report
from tests.test_daemon import wait_for

RECONCILER = str(Path(sys.executable).parent / "reconciler")
#: Long enough that a test never meets a deadline it did not ask for.
PATIENT = Listen("127.0.0.1", 0, header_timeout=600, body_timeout=600)
#: How long a test waits for the server before it gives up; never a figure under test.
BOUND = 15


class Api:
    def __init__(self, server: BackgroundServer, clock: ManualClock) -> None:
        self.server, self.url, self.port, self.clock = server, server.url, server.port, clock

    @property
    def table(self) -> ConnectionTable:
        """The server's open connections."""
        return self.server.server.config.http_protocol_class.table  # type: ignore[attr-defined, no-any-return]

    def connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=BOUND)
        return connection

    def post(self, host: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/report", json=report(), headers=auth(host), timeout=BOUND, **kwargs
        )


@contextmanager
def serving(tmp_path: Path, listen: Listen = PATIENT) -> Iterator[Api]:
    db = tmp_path / "state.sqlite"
    store, reports, registry = Store(db), SqliteReportStore(db), CollectorRegistry()
    clock = ManualClock(START)
    service = FleetService(
        build_fleet(GROUPS, HOSTS), store, reports, clock, OperationalMetrics(registry)
    )
    with BackgroundServer(create_app(service, registry), listen) as server:
        yield Api(server, clock)
    store.close()
    reports.close()


def until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def status_and_detail(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["detail"]


def test_a_request_head_that_does_not_arrive_in_time_is_a_408(tmp_path: Path) -> None:
    with serving(tmp_path, Listen("127.0.0.1", 0, header_timeout=0.2)) as api:
        with api.connect() as slow:
            slow.sendall(b"POST /v1/report HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            status, detail = status_and_detail(until_closed(slow))
        assert (status, detail) == (408, "the request's head took over 0.2 s")
        with api.connect() as silent:  # sends nothing at all: closed without a word
            assert until_closed(silent) == b""
        assert api.post("c1").status_code == 200


def test_the_deadline_is_armed_again_after_each_answer(tmp_path: Path) -> None:
    listen = Listen("127.0.0.1", 0, header_timeout=0.2)
    with serving(tmp_path, listen) as api, api.connect() as keep_alive:
        keep_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answered = keep_alive.recv(65536)
        keep_alive.sendall(b"GET /healthz HTTP/1.1\r\n")  # the second head stalls
        answered += until_closed(keep_alive)
        assert answered.startswith(b"HTTP/1.1 200")
        assert b'{"status":"ok"}HTTP/1.1 408 Request timeout' in answered


def test_a_request_body_that_does_not_arrive_in_time_is_a_408(tmp_path: Path) -> None:
    with serving(tmp_path, Listen("127.0.0.1", 0, body_timeout=0.2)) as api:
        with api.connect() as slow:
            slow.sendall(
                b"POST /v1/report HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer c1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            status, detail = status_and_detail(until_closed(slow))
        assert (status, detail) == (408, "the request's body took over 0.2 s")


def test_a_request_head_past_the_size_limit_is_a_431(tmp_path: Path) -> None:
    with serving(tmp_path) as api, api.connect() as greedy:
        greedy.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(40):
                greedy.sendall(b"X-Padding: " + b"a" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: the answer is already in our buffer
        status, detail = status_and_detail(until_closed(greedy))
    assert (status, detail) == (431, "a request head may be at most 32768 bytes")


def test_when_full_the_longest_waiting_connection_makes_room(tmp_path: Path) -> None:
    listen = Listen("127.0.0.1", 0, max_connections=2, header_timeout=600)
    with serving(tmp_path, listen) as api, api.connect() as oldest, api.connect() as newer:
        newer.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head begun, then nothing
        with httpx.Client(timeout=BOUND) as agent:  # a third connection, past the limit
            answer = agent.post(f"{api.url}/v1/report", json=report(), headers=auth("c1"))
            assert answer.status_code == 200
            assert until_closed(oldest) == b""
            # Still full (the agent keeps its connection): the begun head is now the oldest.
            assert api.post("c2").status_code == 200
            assert until_closed(newer) == b""


def test_when_full_of_answers_a_new_connection_is_refused(tmp_path: Path) -> None:
    with serving(tmp_path, Listen("127.0.0.1", 0, max_connections=2)) as api:
        known = {host: api.post(host).json()["assignmentId"] for host in ("c2", "c3")}
        answers: dict[str, httpx.Response] = {}

        def long_poll(host: str) -> None:
            answers[host] = httpx.post(
                f"{api.url}/v1/report",
                json=report(knownAssignment=known[host]),
                headers=auth(host),
                params={"wait": 300},
                timeout=BOUND,
            )

        pollers = [threading.Thread(target=long_poll, args=(h,)) for h in ("c2", "c3")]
        for poller in pollers:
            poller.start()
        wait_for(lambda: len(api.table.open) == 2 and not api.table.receiving)
        with api.connect() as third:
            status, detail = status_and_detail(until_closed(third))
        assert (status, detail) == (503, "the server is at its connection limit")
        assert not answers  # both long-polls are still held: one per host, not one in all
        api.clock.advance(timedelta(seconds=300))
        for poller in pollers:
            poller.join(timeout=BOUND)
        assert [answers[h].status_code for h in ("c2", "c3")] == [200, 200]


def test_a_new_long_poll_from_a_host_ends_its_previous_one(tmp_path: Path) -> None:
    with serving(tmp_path) as api:
        first = api.post("c2").json()
        assert first["action"] == "none"
        answers: list[dict[str, Any]] = []
        done = threading.Event()

        def long_poll() -> None:
            body = report(knownAssignment=first["assignmentId"])
            answer = httpx.post(
                f"{api.url}/v1/report",
                json=body,
                headers=auth("c2"),
                params={"wait": 300},
                timeout=BOUND,
            )
            answers.append(answer.json())
            done.set()

        pollers = [threading.Thread(target=long_poll) for _ in range(2)]
        for poller in pollers:
            poller.start()
        # The clock never moves and nothing changes: only the rule can answer one of them.
        assert done.wait(timeout=BOUND)
        [answer] = answers  # at once, with the assignment as it stands
        assert (answer["assignmentId"], answer["action"]) == (first["assignmentId"], "none")
        api.clock.advance(timedelta(seconds=300))  # the one still held answers at its deadline
        for poller in pollers:
            poller.join(timeout=BOUND)
        assert len(answers) == 2


def test_listen_refuses_limits_that_make_no_sense() -> None:
    with pytest.raises(ValueError, match="max connections must be at least 1"):
        Listen(max_connections=0)
    with pytest.raises(ValueError, match="header timeout must be more than 0 seconds"):
        Listen(header_timeout=0)
    with pytest.raises(ValueError, match="body timeout must be more than 0 seconds"):
        Listen(body_timeout=float("inf"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-connections", "many"], "--max-connections must be a whole number, not 'many'"),
        (["--header-timeout", "-1"], "the header timeout must be more than 0 seconds"),
    ],
)
def test_serve_says_which_limit_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    args = ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def _with_open_files(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_serve_refuses_to_start_without_the_open_files_its_limit_needs(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    serve = [RECONCILER, "serve", "--repo", str(tmp_path / "none")]
    result = subprocess.run(
        [*serve, "--state-dir", str(tmp_path / "s"), "--max-connections", "4096"],
        preexec_fn=lambda: _with_open_files(1024, min(hard, 2048)),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--max-connections 4096 needs 8448 open files" in result.stderr
    assert "raise its limit (LimitNOFILE= in the systemd unit" in result.stderr


def test_the_soft_open_files_limit_is_raised_to_what_the_cap_needs() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 8448:
        pytest.skip(f"the hard limit on open files here ({hard}) is below what this needs")
    script = (
        "import resource\n"
        "from reconciler.serve.server import Listen, reserve_open_files\n"
        "print(reserve_open_files(Listen(max_connections=4096)),"
        " resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        preexec_fn=lambda: _with_open_files(1024, hard),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == ["None", "8448"]
