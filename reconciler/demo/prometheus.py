"""The demo's metrics: a real Prometheus scraping the call servers' call-setup success ratio.

The call servers of the demo run no service, so one exporter in this process speaks for all
of them: a gauge ``callos_call_setup_success_ratio`` with one series per host, labelled
``instance="<host>"``. Prometheus scrapes it every second with ``honor_labels: true``, so
those ``instance`` labels are kept (rather than replaced by the exporter's address) and a
health check's ``instance=~"$hosts"`` selects exactly the hosts of the wave it judges.

:func:`running_prometheus` starts both on 127.0.0.1, Prometheus on a free port with its
storage in the given directory, and returns once every host's series has been scraped; it
stops both when the block ends. Without the `prometheus` binary the demo skips the gate
(:func:`have_prometheus`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from reconciler.serve.prometheus import PrometheusClient, PrometheusConnection

METRIC = "callos_call_setup_success_ratio"
#: What every call server reports: healthy, above the demo check's success threshold.
HEALTHY_RATIO = 0.998
JOB = "callservers"


def have_prometheus() -> bool:
    return shutil.which("prometheus") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _exporter(hosts: Sequence[str], ratio: float) -> Iterator[str]:
    """Serve ``METRIC{instance=host} = ratio`` for each host; yields ``127.0.0.1:<port>``."""
    registry = CollectorRegistry()
    gauge = Gauge(METRIC, "Share of call setups that succeed", ["instance"], registry=registry)
    for host in hosts:
        gauge.labels(instance=host).set(ratio)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _write_config(directory: Path, exporter: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": JOB,
                # Keep the exporter's per-host `instance` labels: the checks select by them.
                "honor_labels": True,
                "static_configs": [{"targets": [exporter]}],
            }
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # SIGTERM: a clean shutdown
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_prometheus(
    directory: Path, hosts: Sequence[str], ratio: float = HEALTHY_RATIO, timeout: float = 30
) -> Iterator[PrometheusConnection]:
    """The exporter for ``hosts`` and a Prometheus scraping it, ready; both stopped after.

    Raises `RuntimeError` (with the end of Prometheus's log) when it exits or has not
    scraped every host's series within ``timeout`` seconds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        exporter = stack.enter_context(_exporter(hosts, ratio))
        port = _free_port()
        log_path = directory / "prometheus.log"
        with log_path.open("ab") as log:  # a file, not a pipe: a pipe nobody reads fills up
            process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={_write_config(directory, exporter)}",
                    f"--storage.tsdb.path={directory / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=log,
            )
        stack.callback(_stop, process)
        connection = PrometheusConnection(f"http://127.0.0.1:{port}", timeout=2)
        _wait_for_series(connection, process, len(hosts), timeout, log_path)
        yield connection


def _wait_for_series(
    connection: PrometheusConnection,
    process: subprocess.Popen[bytes],
    expected: int,
    timeout: float,
    log_path: Path,
) -> None:
    """Until Prometheus answers and has scraped ``expected`` series of the metric."""
    client = PrometheusClient(connection)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {_tail(log_path)}")
        answer = client.query(f"count({METRIC})")
        if answer.values == (float(expected),):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"prometheus did not scrape {expected} series of {METRIC} in {timeout:.0f}s "
                f"(last answer: {answer}): {_tail(log_path)}"
            )
        time.sleep(0.2)


def _tail(log_path: Path, size: int = 500) -> str:
    return log_path.read_text(errors="replace")[-size:].strip() or "(empty log)"
