"""A real Prometheus scraping fake hosts whose metrics the test sets.

Each fake host is an exporter of its own on 127.0.0.1 (`prometheus_client` serving the host's
own registry), scraped every second as one target whose ``instance`` label is the host's
name (set as a target label in ``static_configs``, so it replaces the default
``127.0.0.1:<port>``). So the series of host ``c1`` carry ``instance="c1"``, and a health
check's ``instance=~"(c1|c2)"`` (or ``instance=~"(c1|c2)(:[0-9]+)?"``) selects exactly the
hosts named; ``up{instance="c1"}`` is there as for any target. The job is ``hosts``.

Prometheus runs in the foreground on a free 127.0.0.1 port with storage in the test's
directory. :meth:`PrometheusServer.start` returns once it is ready and has scraped every
host; :meth:`PrometheusServer.stop` stops it, and a later ``start()`` brings it back on the
same port over the same storage, which is how a test simulates an outage::

    @pytest.fixture(scope="module")
    def prometheus(tmp_path_factory):
        with running_prometheus(tmp_path_factory.mktemp("prom"), ["c1", "c2"]) as server:
            yield server

    server.hosts["c1"].gauge("sip_failure_ratio").set(0.03)
    server.wait_for('sip_failure_ratio{instance="c1"}', lambda r: len(r) == 1)

Without the `prometheus` binary the harness skips, except under CI, where it fails (the rule
of `needs_tool` in conftest.py, which tests using it should carry as well).
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from tests.tools import free_port, require_tool

JOB = "hosts"
Result = list[dict[str, Any]]


@dataclass
class FakeHost:
    """One host's exporter: the metrics the test creates here are scraped as ``instance=name``."""

    name: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None
    _metrics: dict[str, Gauge | Counter] = field(default_factory=dict)

    @property
    def address(self) -> str:
        assert self._server is not None, "the exporter is not running"
        return f"127.0.0.1:{self._server.server_address[1]}"

    def gauge(self, name: str, labelnames: Iterable[str] = ()) -> Gauge:
        """The gauge ``name`` on this host, created on first use."""
        if name not in self._metrics:
            self._metrics[name] = Gauge(name, name, list(labelnames), registry=self.registry)
        metric = self._metrics[name]
        assert isinstance(metric, Gauge), f"{name} is a counter on {self.name}"
        return metric

    def counter(self, name: str, labelnames: Iterable[str] = ()) -> Counter:
        """The counter ``name`` on this host (exposed as ``name_total``), created on first use."""
        if name not in self._metrics:
            self._metrics[name] = Counter(name, name, list(labelnames), registry=self.registry)
        metric = self._metrics[name]
        assert isinstance(metric, Counter), f"{name} is a gauge on {self.name}"
        return metric

    def serve(self) -> None:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)

    def shut_down(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None


@dataclass(frozen=True)
class TlsFiles:
    """Prometheus serves HTTPS with ``cert``/``key``; the harness trusts ``ca`` to reach it."""

    cert: Path
    key: Path
    ca: Path


class PrometheusServer:
    def __init__(self, directory: Path, hosts: list[FakeHost], tls: TlsFiles | None) -> None:
        self.directory = directory
        self.hosts = {host.name: host for host in hosts}
        self.port = free_port()
        self.tls = tls
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(tls.ca)) if tls else True
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    def start(self, timeout: float = 30) -> None:
        """Start Prometheus; return once it is ready and has scraped every host since."""
        assert self._process is None, "Prometheus is already running"
        started = time.time()
        arguments = [
            "prometheus",
            f"--config.file={self.directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        if self.tls:
            arguments.append(f"--web.config.file={self.directory / 'web.yml'}")
        with self.log.open("ab") as log:  # a file, not a pipe: a pipe nobody reads fills up
            self._process = subprocess.Popen(arguments, stdout=log, stderr=log)
        self._wait(self._ready, "Prometheus did not become ready", timeout)
        if self.hosts:
            fresh = f"count(timestamp(up{{job={JOB!r}}}) >= {started:.3f})"
            self.wait_for(fresh, lambda r: _number(r) == len(self.hosts), timeout)

    def stop(self) -> None:
        """Stop Prometheus (SIGTERM, a clean shutdown); its port refuses connections after."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def query(self, promql: str) -> Result:
        """The instant vector of ``promql`` now (a scalar as one sample without labels)."""
        answer = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, verify=self._verify
        ).json()
        assert answer["status"] == "success", (promql, answer)
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: Result = data["result"]
        return result

    def wait_for(self, promql: str, done: Callable[[Result], bool], timeout: float = 30) -> Result:
        """Query until ``done(result)``: what a test sets takes a scrape to show."""
        result: Result = []

        def check() -> bool:
            nonlocal result
            result = self.query(promql)
            return done(result)

        self._wait(check, f"{promql} never satisfied the condition (last: {result})", timeout)
        return result

    def _ready(self) -> bool:
        assert self._process is not None
        assert self._process.poll() is None, self.log.read_text(errors="replace")
        try:
            return httpx.get(f"{self.url}/-/ready", verify=self._verify).status_code == 200
        except httpx.TransportError:
            return False

    def _wait(self, check: Callable[[], bool], message: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, message
            time.sleep(0.1)

    def _write_config(self) -> None:
        targets = [
            {"targets": [host.address], "labels": {"instance": host.name}}
            for host in self.hosts.values()
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": targets}],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        if self.tls:
            server = {"cert_file": str(self.tls.cert), "key_file": str(self.tls.key)}
            (self.directory / "web.yml").write_text(yaml.safe_dump({"tls_server_config": server}))


def _number(result: Result) -> float | None:
    return float(result[0]["value"][1]) if result else None


@contextmanager
def running_prometheus(
    directory: Path, hosts: Iterable[str] = ("host1",), tls: TlsFiles | None = None
) -> Iterator[PrometheusServer]:
    """Exporters for ``hosts`` and a Prometheus scraping them, ready; all stopped after."""
    require_tool("prometheus")
    fake_hosts = [FakeHost(name) for name in hosts]
    try:
        for host in fake_hosts:
            host.serve()
        server = PrometheusServer(directory, fake_hosts, tls)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        for host in fake_hosts:
            host.shut_down()
