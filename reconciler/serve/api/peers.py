"""Keep-alive HTTP/1.1 connections to the other replicas, for forwarded requests only.

Forwarding is on the hot path of every report whose group another replica plans: half of
all reports with two replicas behind a balancer. A general HTTP client was most of the
forwarding replica's CPU (httpx's pool scans every waiting request against every
connection at each step: 35 % of a replica in `benchmarks/replicas.py`). What is needed is
small: one request, one answer with a length, over a connection kept for the next, to a peer
that is another `reconciler serve` (uvicorn answers with `content-length`, or chunked).

A request on a reused connection that the peer had closed meanwhile (its keep-alive timed
out) is sent once more on a new one: a report is level-triggered, so sending it twice
changes nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

#: Idle connections kept per peer; more are opened when needed and closed after use.
IDLE_PER_PEER = 256
#: Largest answer accepted from a peer (an assignment is a few hundred bytes).
MAX_ANSWER_BYTES = 1 << 20

Address = tuple[str, str, int]  # scheme, host, port
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class PeerUnavailable(Exception):
    """The peer could not be reached, or broke the exchange."""


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class PeerClient:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._idle: dict[Address, list[Connection]] = {}

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,
    ) -> PeerAnswer:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 80)
        address: Address = (scheme, parts.hostname or "127.0.0.1", port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += [f"content-length: {len(body)}", "", ""]
        message = "\r\n".join(head).encode("latin-1") + body
        try:
            return await asyncio.wait_for(self._exchange(address, message), timeout)
        except (
            TimeoutError,
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ) as exc:
            raise PeerUnavailable(f"{scheme}://{address[1]}:{port}: {exc!r}") from exc

    async def _exchange(self, address: Address, message: bytes) -> PeerAnswer:
        reused = self._take_idle(address)
        if reused is not None:
            try:
                return await self._send(address, reused, message)
            except (OSError, asyncio.IncompleteReadError):
                pass  # closed by the peer while idle: once more on a new connection
        return await self._send(address, await self._connect(address), message)

    async def _send(self, address: Address, connection: Connection, message: bytes) -> PeerAnswer:
        reader, writer = connection
        try:
            writer.write(message)
            await writer.drain()
            answer, keep = await _read_answer(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            idle = self._idle.setdefault(address, [])
            if len(idle) < IDLE_PER_PEER:
                idle.append(connection)
                return answer
        writer.close()
        return answer

    def _take_idle(self, address: Address) -> Connection | None:
        idle = self._idle.get(address)
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _connect(self, address: Address) -> Connection:
        scheme, host, port = address
        tls = None
        if scheme == "https":
            tls = self._tls or ssl.create_default_context()
        return await asyncio.open_connection(host, port, ssl=tls)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for _, writer in idle:
                writer.close()
        self._idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[PeerAnswer, bool]:
    """The answer on ``reader``, and whether its connection may be used again."""
    status_line = await reader.readuntil(b"\r\n")
    version, status, _ = status_line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        length = int(headers.get("content-length", "0"))
        if length > MAX_ANSWER_BYTES:
            raise ValueError(f"an answer of {length} bytes from a peer")
        body = await reader.readexactly(length)
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return PeerAnswer(int(status), headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # the empty trailer section
            return bytes(body)
        if len(body) + size > MAX_ANSWER_BYTES:
            raise ValueError("a chunked answer too large from a peer")
        body += await reader.readexactly(size)
        await reader.readexactly(2)
