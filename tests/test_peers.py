"""The replicas' forwarding client (reconciler/serve/api/peers.py) against real servers on
127.0.0.1: a real uvicorn for the ordinary exchange, and a raw asyncio server for what a
peer may do on the wire (close an idle connection, answer chunked, not answer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from reconciler.serve.api.peers import PeerClient, PeerUnavailable
from tests.tools import free_port


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    """A real uvicorn echoing method, path, query, a header and the body."""
    app = FastAPI()

    @app.post("/v1/report")
    async def report(request: Request) -> Response:
        body = await request.body()
        text = f"{request.url.path}?{request.url.query}|{request.headers.get('authorization')}|"
        return Response(text.encode() + body, status_code=202, headers={"retry-after": "7"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_request_and_its_answer_go_through_as_they_are(echo_server: str) -> None:
    async def exchange() -> list[tuple[int, bytes, str]]:
        client = PeerClient()
        answers = []
        for _ in range(3):  # the same connection, kept alive
            answer = await client.request(
                "POST",
                echo_server + "/v1/report?wait=30",
                {"authorization": "Bearer t", "content-type": "application/json"},
                b'{"a": 1}',
                timeout=5,
            )
            answers.append((answer.status, answer.body, answer.headers["retry-after"]))
        await client.aclose()
        return answers

    expected = (202, b'/v1/report?wait=30|Bearer t|{"a": 1}', "7")
    assert asyncio.run(exchange()) == [expected] * 3


def test_an_idle_connection_the_peer_closed_is_replaced_and_chunks_are_read() -> None:
    """The peer answers chunked and closes each connection after one answer, without saying
    so: the next request on it fails and goes out again on a new connection."""
    connections = 0

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    async def exchange() -> list[bytes]:
        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PeerClient()
        bodies = []
        for _ in range(2):
            answer = await client.request("POST", f"http://127.0.0.1:{port}/x", {}, b"", 5)
            bodies.append(answer.body)
            await asyncio.sleep(0.05)  # the peer's close arrives
        await client.aclose()
        server.close()
        return bodies

    assert asyncio.run(exchange()) == [b"hello world", b"hello world"]
    assert connections == 2


def test_a_peer_that_is_gone_or_silent_is_unavailable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            writer.close()

    async def exchange() -> list[str]:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = PeerClient()
        errors = []
        for url, timeout in (
            (f"http://127.0.0.1:{free_port()}/x", 5.0),
            (f"http://127.0.0.1:{port}/x", 0.3),
        ):
            with pytest.raises(PeerUnavailable) as raised:
                await client.request("POST", url, {}, b"", timeout)
            errors.append(str(raised.value))
        server.close()
        await asyncio.sleep(0.05)  # the client's closed connection reaches the server
        return errors

    refused, silent_error = asyncio.run(exchange())
    assert "127.0.0.1" in refused
    assert "Timeout" in silent_error
