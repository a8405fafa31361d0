"""Reports per second into a real API server over loopback, with many concurrent agents.

The server runs in its own process (uvicorn, uvloop, httptools; SQLite on disk); the load
comes from this process over keep-alive HTTP/1.1 connections, one per simulated agent, each
with its own token. The same run measures the server's trivial endpoint (`/healthz`) for
comparison. Targets (issue 4): >= 2,000 reports/s and >= 50 % of the trivial endpoint.
Usage: python benchmarks/report_ingestion.py [--agents N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from reconciler.clock import SystemClock
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.serve.api.app import create_app
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.service import FleetService
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store

HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
OLD, NEW = "a1" * 32, "b2" * 32


def write_fleet(root: Path, hosts: int, per_group: int = 100) -> None:
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True)
    (root / "fleet.yaml").write_text(HEADER + "kind: Fleet\nname: bench\n")
    (root / "streams" / "prod.yaml").write_text(
        HEADER + f"kind: Stream\nname: prod\nremote: os\nref: os/prod\ncommit: {NEW}\n"
    )
    lines = [HEADER + "kind: HostInventory", "hosts:"]
    for i in range(hosts):
        token = hashlib.sha256(f"token-{i}".encode()).hexdigest()
        lines += [
            f"  - name: h{i:05d}",
            f"    labels: {{g: g{i // per_group}}}",
            f"    tokenSha256: {token}",
        ]
    (root / "hosts" / "all.yaml").write_text("\n".join(lines) + "\n")
    for g in range((hosts + per_group - 1) // per_group):
        (root / "groups" / f"g{g}.yaml").write_text(
            HEADER + f"kind: Group\nname: g{g}\nstream: prod\n"
            f"selector: {{matchLabels: {{g: g{g}}}}}\n"
        )


def serve(fleet_dir: str, db: str, port: int) -> None:
    fleet = load_fleet_or_raise(DirectorySource(Path(fleet_dir)))
    registry = CollectorRegistry()
    metrics = OperationalMetrics(registry)
    service = FleetService(fleet, Store(db), SqliteReportStore(db), SystemClock(), metrics)
    uvicorn.run(
        create_app(service, registry),
        host="127.0.0.1",
        port=port,
        log_level="error",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="off",
    )


def report_body(i: int) -> bytes:
    return json.dumps(
        {
            "agentVersion": "0.1.0",
            "bootId": f"boot-{i}",
            "greenboot": "green",
            "booted": {
                "checksum": OLD,
                "baseChecksum": OLD,
                "origin": "os:os/prod",
                "version": "1.0",
            },
            "staged": None,
            "lastApply": None,
        }
    ).encode()


def request(path: str, token: str | None, body: bytes | None) -> bytes:
    lines = [f"{'POST' if body else 'GET'} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def agent(port: int, payload: bytes, stop: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
        writer.write(payload)
        await writer.drain()
        status = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"unexpected answer {status!r}")
        counts[0] += 1
    writer.close()


async def load(port: int, payloads: list[bytes], seconds: float) -> float:
    counts = [0]
    stop = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(agent(port, p, stop, counts) for p in payloads))
    return counts[0] / (time.perf_counter() - start)


WRK_SCRIPT = """
local bodies = {}
local agents = %(agents)d
for i = 0, agents - 1 do
  bodies[i] = {token = "token-" .. i, body = string.format(%(template)s, i)}
end
local n = 0
request = function()
  local agent = bodies[n %% agents]
  n = n + 1
  return wrk.format("POST", "/v1/report", {["Authorization"] = "Bearer " .. agent.token,
                    ["Content-Type"] = "application/json"}, agent.body)
end
done = function(summary, latency, requests)
  io.write(string.format("non2xx=%%d errors=%%d\\n", summary.errors.status,
           summary.errors.connect + summary.errors.read + summary.errors.write
           + summary.errors.timeout))
end
"""


def wrk_rate(port: int, path: str, script: Path | None, agents: int, seconds: float) -> float:
    """Requests/s measured by wrk (one thread, so the server keeps the other core)."""
    command = ["wrk", "-t1", f"-c{agents}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    print(out.split("Requests/sec")[0].strip())
    if "non2xx=0 errors=0" not in out and script is not None:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    return float(out.split("Requests/sec:")[1].split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="use the built-in asyncio load generator even if wrk is installed",
    )
    parser.add_argument("--serve", nargs=3, metavar=("FLEET", "DB", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_fleet(Path(tmp) / "fleet", args.hosts)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", f"{tmp}/fleet", f"{tmp}/state.sqlite", str(port)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            reports = [
                request("/v1/report", f"token-{i}", report_body(i)) for i in range(args.agents)
            ]
            trivial = [request("/healthz", None, None)] * args.agents
            asyncio.run(load(port, reports, 1.0))  # warm-up: first reports plan every group
            if shutil.which("wrk") and not args.python_load:
                template = json.dumps(report_body(0).decode().replace("boot-0", "boot-%d"))
                script = Path(tmp) / "report.lua"
                script.write_text(WRK_SCRIPT % {"agents": args.agents, "template": template})
                generator = "wrk"
                report_rate = wrk_rate(port, "/v1/report", script, args.agents, args.seconds)
                trivial_rate = wrk_rate(port, "/healthz", None, args.agents, args.seconds)
            else:
                generator = "python asyncio (install wrk for a load generator that is not "
                generator += "itself the bottleneck)"
                report_rate = asyncio.run(load(port, reports, args.seconds))
                trivial_rate = asyncio.run(load(port, trivial, args.seconds))
        finally:
            server.terminate()
            server.wait()
    print(f"load generator: {generator}")
    print(
        f"report ingestion: {report_rate:,.0f} reports/s with {args.agents} concurrent "
        f"agents over loopback (target >= 2,000)"
    )
    print(
        f"trivial endpoint: {trivial_rate:,.0f} requests/s; reports reach "
        f"{100 * report_rate / trivial_rate:.0f} % of it (target >= 50 %)"
    )


if __name__ == "__main__":
    main()
