"""Running the API with uvicorn on a host and port, with HTTPS when given a certificate, and
with limits on connections so that no client can starve the others.

uvicorn alone has no deadline for a request to arrive (a connection that sends half a head,
or nothing, is held for ever), no cap on the size of a head under httptools, and only a
`limit_concurrency` that counts those idle connections too and then answers 503 to everyone:
a thousand slow clients would still starve every agent. :class:`BoundedHttpProtocol` adds
what is missing; :class:`Listen` holds the numbers.

uvicorn also stops by waiting for every request to be answered, long-polls included, and
for every half-sent request to arrive; :class:`StoppingServer` and the protocol answer or
close those at once, so SIGTERM ends in well under a second (docs/daemon.md, "Stopping").
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import resource
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reconciler.serve.api.app import let_long_polls_go

logger = logging.getLogger(__name__)

#: Connections the kernel may queue before we accept them (uvicorn's default).
BACKLOG = 2048
#: Open files kept free for everything but connections: the database, the mirror's pack
#: files, Git and gpg subprocesses, the watch, log files.
RESERVED_FILES = 256
#: An agent's request head is well under 1 KiB; httptools itself sets no limit.
MAX_HEAD_BYTES = 32 * 1024


@dataclass(frozen=True)
class Listen:
    """Where to listen, and the limits that keep one client from starving the others.

    ``max_connections``: connections open at once. When it is reached, the connection that
    has waited longest for its request to arrive is closed to make room (a slow client gives
    way, an agent being answered never does); if every connection is being answered, the new
    one is refused with a 503. ``header_timeout``: seconds for a request's head to arrive,
    from the connection opening or the previous answer; ``body_timeout``: seconds for its body
    to arrive once the head has.
    """

    host: str = "127.0.0.1"
    port: int = 8443
    certfile: str | None = None
    keyfile: str | None = None
    max_connections: int = 4096
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: PEM file of the fleet CA: clients may present a certificate it issued (mutual TLS);
    #: the API decides what a verified certificate is worth (``agent_auth``).
    client_ca: str | None = None

    @property
    def url(self) -> str:
        """Where this listener answers (replicas advertise it unless told otherwise)."""
        scheme = "https" if self.certfile is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def __post_init__(self) -> None:
        if self.client_ca is not None and self.certfile is None:
            raise ValueError("client certificates (--client-ca) need HTTPS (--tls-cert)")
        if self.max_connections < 1:
            raise ValueError(f"max connections must be at least 1, not {self.max_connections}")
        for name, value in (("header", self.header_timeout), ("body", self.body_timeout)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"the {name} timeout must be more than 0 seconds, not {value}")


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


def open_files_needed(listen: Listen) -> int:
    """Open files the process may need at once with ``listen``'s connection limit: the
    connections, up to two backlogs accepted before the surplus is closed, and the rest."""
    return listen.max_connections + 2 * BACKLOG + RESERVED_FILES


def reserve_open_files(listen: Listen) -> str | None:
    """Raise this process's soft limit on open files to what ``listen`` needs (as Go's
    runtime does); why not, when the hard limit is too low."""
    needed = open_files_needed(listen)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return (
            f"--max-connections {listen.max_connections} needs {needed} open files "
            f"(connections, a backlog of {BACKLOG} twice, {RESERVED_FILES} for the database, "
            f"the mirror and Git), but this process may open only {hard}: raise its limit "
            "(LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-connections"
        )
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except OSError as exc:  # a seccomp filter without @resources, say
        return (
            f"--max-connections {listen.max_connections} needs {needed} open files, this "
            f"process may open {soft} and cannot raise it ({exc.strerror}): raise its limit "
            "(LimitNOFILE= in the systemd unit, ulimit -n) or lower --max-connections"
        )
    return None


def make_server(app: FastAPI, listen: Listen) -> uvicorn.Server:
    """A uvicorn server for ``app`` within ``listen``'s limits; TLS when both a certificate
    and a key are given."""
    if (listen.certfile is None) != (listen.keyfile is None):
        raise ValueError("HTTPS needs both a certificate and a key")
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="warning",
        ssl_certfile=listen.certfile,
        ssl_keyfile=listen.keyfile,
        # Optional, not required: operators and scrapers use tokens; agents' certificates
        # are verified here and mapped to hosts by the API.
        ssl_ca_certs=listen.client_ca,
        ssl_cert_reqs=ssl.CERT_OPTIONAL if listen.client_ca else ssl.CERT_NONE,
        access_log=False,
        http=BoundedHttpProtocol.within(ConnectionTable(listen)),
        ws="none",  # no route needs WebSockets; an upgrade would leave the protocol above
        backlog=BACKLOG,
        # On SIGTERM, long-polls are answered at once (StoppingServer) and connections still
        # receiving a request are closed (BoundedHttpProtocol.shutdown); what is left is
        # reports being answered, in milliseconds. This bound is for a bug: stopping ends.
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    return StoppingServer(config, app)


class StoppingServer(uvicorn.Server):
    """uvicorn's server, which answers the app's long-polls as soon as it starts stopping.

    uvicorn stops by waiting for every request being answered to end; a long-poll would end
    only when its wait does, minutes later, so it would be cut off at the graceful-shutdown
    timeout instead (a 500 to the agent, a traceback in the log, seconds of delay)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        let_long_polls_go(self.app)
        await super().shutdown(sockets)


class ConnectionTable:
    """One server's open connections; those still receiving a request, oldest first."""

    def __init__(self, listen: Listen) -> None:
        self.listen = listen
        self.open: set[BoundedHttpProtocol] = set()
        self.receiving: dict[BoundedHttpProtocol, None] = {}  # insertion order: oldest first
        self._shed = {"evicted": 0, "refused": 0, "timed out": 0}
        self._summary: asyncio.TimerHandle | None = None

    def admit(self, connection: BoundedHttpProtocol) -> bool:
        """Take ``connection`` in, closing the longest-waiting receiver if the table is
        full; False if it is full of connections being answered."""
        if len(self.open) >= self.listen.max_connections:
            if not self.receiving:
                self.shed("refused")
                return False
            oldest = next(iter(self.receiving))
            oldest.close()
            self.shed("evicted")
        self.open.add(connection)
        return True

    def waiting_for_request(self, connection: BoundedHttpProtocol) -> None:
        self.receiving.pop(connection, None)
        self.receiving[connection] = None

    def answering(self, connection: BoundedHttpProtocol) -> None:
        self.receiving.pop(connection, None)

    def forget(self, connection: BoundedHttpProtocol) -> None:
        self.open.discard(connection)
        self.receiving.pop(connection, None)

    def shed(self, how: Literal["evicted", "refused", "timed out"]) -> None:
        """Count a connection shed. The first is logged at once, the rest in a summary every
        10 s while shedding goes on: a flood must not become a flood of log lines."""
        self._shed[how] += 1
        if self._summary is None:
            self._warn()

    def _warn(self) -> None:
        if not any(self._shed.values()):
            self._summary = None  # a quiet 10 s: the next one is logged at once again
            return
        logger.warning(
            "shedding connections (limit %d open; head within %gs, body within %gs): %s",
            self.listen.max_connections,
            self.listen.header_timeout,
            self.listen.body_timeout,
            ", ".join(f"{n} {how}" for how, n in self._shed.items() if n),
        )
        self._shed = dict.fromkeys(self._shed, 0)
        self._summary = asyncio.get_running_loop().call_later(10, self._warn)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`Listen`.

    A connection is *receiving* from when it opens, or its previous answer ends, until its
    request has fully arrived; then it is *answering* until the response is sent. One timer
    per connection bounds the receiving: ``header_timeout`` for the head (closed silently if
    nothing came, else a 408), then ``body_timeout`` for the body (a 408 as well). A head past
    :data:`MAX_HEAD_BYTES` is a 431. Receivers are what the table evicts when full.
    """

    table: ClassVar[ConnectionTable]

    @classmethod
    def within(cls, table: ConnectionTable) -> type[BoundedHttpProtocol]:
        """This protocol bound to one server's ``table`` (uvicorn wants a class)."""
        return type(cls.__name__, (cls,), {"table": table})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting: Literal["head", "body"] | None = None
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.table.admit(self):
            self._refuse(503, "Service unavailable", "the server is at its connection limit")
            return
        self._await("head")

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()
        self.table.forget(self)

    def data_received(self, data: bytes) -> None:
        if self._awaiting == "head":
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting == "head" and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                431,
                "Request header fields too large",
                f"a request head may be at most {MAX_HEAD_BYTES} bytes",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The client certificate the TLS layer verified against the fleet CA, if any, for
        # the API to map to a host (uvicorn puts nothing of it in the ASGI scope).
        peer = self.transport.get_extra_info("peercert") if self.transport else None
        if peer:
            self.scope["extensions"] = {"tls": {"peer_cert": peer}}

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._await("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle.response_complete:  # answered before the body ended (a 413, a 401)
            self._await("head")
        else:
            self._disarm()
            self._awaiting = None
            self.table.answering(self)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Unless a pipelined request is being answered now, the next one is awaited.
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._await("head")

    def shutdown(self) -> None:
        """The server is stopping: a connection still receiving its request is closed now
        rather than waited for (up to the header or body timeout); one being answered ends
        after its answer, as uvicorn does."""
        if self._awaiting is not None:
            self.close()
        else:
            super().shutdown()

    def close(self) -> None:
        """Close at once, and leave the table now rather than when the loop says it is lost."""
        self._disarm()
        self.table.forget(self)
        if self.cycle is not None and not self.cycle.response_complete:
            # As uvicorn does when the connection is lost: the app sees a disconnect and
            # whatever it sends from now on goes nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if not self.transport.is_closing():
            self.transport.close()

    def _await(self, part: Literal["head", "body"]) -> None:
        self._disarm()
        self._awaiting = part
        if part == "head":
            self._head_bytes = 0
        timeout = (
            self.table.listen.header_timeout if part == "head" else self.table.listen.body_timeout
        )
        self._deadline = self.loop.call_later(timeout, self._too_slow)
        self.table.waiting_for_request(self)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.table.shed("timed out")
        if self._awaiting == "head" and self._head_bytes == 0:
            self.close()  # an idle connection: nothing to answer
        elif self._awaiting == "head" or not self.cycle.response_started:
            limit = self.table.listen
            seconds = limit.header_timeout if self._awaiting == "head" else limit.body_timeout
            self._refuse(
                408, "Request timeout", f"the request's {self._awaiting} took over {seconds:g} s"
            )
        else:
            self.close()

    def _refuse(self, status: int, title: str, detail: str) -> None:
        """Answer ``status`` as problem+json and close, whatever the request's state."""
        body = json.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail}
        ).encode()
        head = (
            f"HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        if not self.transport.is_closing():
            self.transport.write(head.encode() + body)
        self.close()


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
