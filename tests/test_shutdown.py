"""SIGTERM to a real `reconciler serve` with agents long-polling: it stops within 2 s, exit
code 0, no error in its log, and every long-poll is answered with a valid assignment
(docs/daemon.md, "Stopping")."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reconciler.agent.client import ReconcilerClient
from tests.test_daemon import OLD_PRODUCTION, agent_report, no_urls, wait_for
from tests.test_gitsource import Remote
from tests.test_serve_cli import serve

HOSTS = [f"dub-call-{i:02}" for i in range(1, 7)]
#: The promise of docs/daemon.md; stopping measures about 0.3 s here.
STOP_WITHIN_SECONDS = 2.0


@dataclass
class LongPoller:
    """One host long-polling as the agent does: with the agent's own client, again at once
    whenever it is answered, until the server is gone."""

    client: ReconcilerClient
    answers_after_sigterm: list[dict[str, Any]]
    failures: list[str]
    in_flight: bool = False

    def run(self, sigterm_sent: threading.Event) -> None:
        known = self.client.report(agent_report(OLD_PRODUCTION))["assignmentId"]
        while not self.failures:
            self.in_flight = True
            try:
                body = {**agent_report(OLD_PRODUCTION), "knownAssignment": known}
                answer = self.client.report(body, wait=300)
            except Exception as exc:  # the agent's own error types, or anything else
                self.failures.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                self.in_flight = False
            if sigterm_sent.is_set():
                self.answers_after_sigterm.append(answer)
                return
            known = answer["assignmentId"]  # woken by a plan change: poll again, as agents do


def ok_reports(port: int) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in metrics.splitlines():
        if line.startswith('fleet_agent_reports_total{result="ok"}'):
            return float(line.split()[-1])
    return 0.0


def slow_clients(port: int) -> list[socket.socket]:
    """A client that sent half a request head and one that sent half a body: without care,
    the server would wait for them up to the header and body timeouts."""
    half_head = socket.create_connection(("127.0.0.1", port))
    half_head.sendall(b"POST /v1/report HTTP/1.1\r\nHost: reconciler\r\n")
    body = json.dumps(agent_report(OLD_PRODUCTION)).encode()
    half_body = socket.create_connection(("127.0.0.1", port))
    half_body.sendall(
        b"POST /v1/report HTTP/1.1\r\nHost: reconciler\r\n"
        b"Authorization: Bearer demo-token-dub-call-07\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
    )
    return [half_head, half_body]


def test_sigterm_answers_every_long_poll_and_stops_within_two_seconds(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    port = _port()
    process = serve(origin, tmp_path / "state", port)
    sigterm_sent = threading.Event()
    answers: list[dict[str, Any]] = []
    failures: list[str] = []
    pollers = [
        LongPoller(
            ReconcilerClient(f"http://127.0.0.1:{port}", f"demo-token-{host}"), answers, failures
        )
        for host in HOSTS
    ]
    threads = [threading.Thread(target=p.run, args=(sigterm_sent,)) for p in pollers]
    try:
        for thread in threads:
            thread.start()
        # Every host has sent its first report and one long-poll that the server holds.
        wait_for(lambda: ok_reports(port) >= 2 * len(HOSTS) and all(p.in_flight for p in pollers))
        slow = slow_clients(port)
        time.sleep(0.5)  # long enough for a wake-up by a plan change to show as a new poll

        started = time.monotonic()
        sigterm_sent.set()
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    for thread in threads:
        thread.join(timeout=10)

    assert took <= STOP_WITHIN_SECONDS, f"stopping took {took:.2f} s"
    assert process.returncode == 0, log[-2000:]
    assert "Traceback" not in log
    logged = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [r["message"] for r in logged if r["level"] in ("warning", "error", "critical")] == []
    assert '"message": "stopped"' in log
    # Each long-poll open at SIGTERM was answered with the host's assignment, not cut off.
    assert failures == []
    assert sorted(a["host"] for a in answers) == HOSTS
    assert all(a["action"] == "none" and a["assignmentId"] for a in answers)
    for client in slow:  # closed, not left hanging
        client.settimeout(5)
        assert client.recv(1024) == b""
        client.close()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
