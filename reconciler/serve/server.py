"""Running the API with uvicorn on a host and port, with HTTPS when given a certificate."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Self

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8443
    certfile: str | None = None
    keyfile: str | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) only ever reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_refusal(listen: Listen, insecure_http: bool) -> str | None:
    """Why serving ``listen`` would be refused: plain HTTP beyond loopback carries every
    agent's bearer token in clear, so it needs certificates or an explicit opt-out."""
    if listen.certfile is not None or insecure_http or is_loopback(listen.host):
        return None
    return (
        f"refusing plain HTTP on {listen.host}: agents' tokens would cross the network in "
        "clear. Give --tls-cert and --tls-key, or --insecure-http if a TLS proxy in front "
        "takes care of it"
    )


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
    """A real uvicorn server in a thread, for tests, benchmarks and the demo.

    ``serve`` runs the server on the thread's event loop; by default the server alone, or
    whatever wraps it (the daemon runs its loops around it)."""

    def __init__(
        self,
        app: FastAPI,
        listen: Listen,
        serve: Callable[[uvicorn.Server], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self.listen = listen
        self.server = make_server(app, listen)
        run = serve or (lambda server: server.serve())
        self.thread = threading.Thread(target=lambda: asyncio.run(run(self.server)), daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server failed to start")
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.listen.host}:{self.port}"
