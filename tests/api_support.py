"""A real API server on 127.0.0.1 over a real SQLite file, for API, agent and e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from reconciler.clock import Clock
from reconciler.fleetrepo.fleet import Fleet
from reconciler.serve.api.app import create_app
from reconciler.serve.api.fleetlock import FleetLockSettings
from reconciler.serve.api.identity import AgentAuth
from reconciler.serve.metrics import OperationalMetrics
from reconciler.serve.server import BackgroundServer, Listen
from reconciler.serve.service import FleetService, token_hash
from reconciler.state.reports import SqliteReportStore
from reconciler.state.store import Store

OPERATOR_TOKEN = "operator-secret"


@dataclass
class RunningApi:
    url: str
    service: FleetService
    reports: SqliteReportStore


@contextmanager
def running_api(
    fleet: Fleet,
    db: Path,
    clock: Clock,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_ca: str | None = None,
    agent_auth: AgentAuth = AgentAuth.TOKEN,
    fleetlock: FleetLockSettings | None = None,
) -> Iterator[RunningApi]:
    store, reports = Store(db), SqliteReportStore(db)
    registry = CollectorRegistry()
    service = FleetService(fleet, store, reports, clock, OperationalMetrics(registry))
    app = create_app(
        service,
        registry,
        operator_token_sha256=token_hash(OPERATOR_TOKEN),
        agent_auth=agent_auth,
        fleetlock=fleetlock,
    )
    scheme = "https" if certfile else "http"
    listen = Listen("127.0.0.1", 0, certfile, keyfile, client_ca=client_ca)
    with BackgroundServer(app, listen) as server:
        yield RunningApi(f"{scheme}://127.0.0.1:{server.port}", service, reports)
    store.close()
    reports.close()
