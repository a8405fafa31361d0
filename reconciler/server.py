"""Running the API with uvicorn on a host and port, with HTTPS when given a certificate."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8443
    certfile: str | None = None
    keyfile: str | None = None


def make_server(app: FastAPI, listen: Listen) -> uvicorn.Server:
    """A uvicorn server for ``app``; TLS when both a certificate and a key are given."""
    if (listen.certfile is None) != (listen.keyfile is None):
        raise ValueError("HTTPS needs both a certificate and a key")
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="warning",
        ssl_certfile=listen.certfile,
        ssl_keyfile=listen.keyfile,
        access_log=False,
        # Long-polls may hold a request for minutes; on SIGTERM give them a few seconds, not
        # their whole wait, so shutdown ends well inside systemd's TimeoutStopSec.
        timeout_graceful_shutdown=5,
        lifespan="off",
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """A real uvicorn server in a thread, for tests, benchmarks and the demo."""

    def __init__(self, app: FastAPI, listen: Listen) -> None:
        self.server = make_server(app, listen)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the API server failed to start")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])
