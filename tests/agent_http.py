"""A real HTTP server on 127.0.0.1 for the agent's transport tests, answering as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ASSIGNMENT = {"host": "h", "action": "none", "assignmentId": "a1", "reportAfterSeconds": 15}


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = (json.dumps(ASSIGNMENT).encode(),)


@dataclass
class Server:
    url: str
    requests: list[tuple[str, str, str | None]]  # method, path, Authorization
    finished_sending: list[bool]
    bodies: list[Any]  # each request's body as JSON (None when it was not JSON)


@contextmanager
def serving(reply: Callable[[], Reply]) -> Iterator[Server]:
    """A real HTTP/1.0 server on 127.0.0.1 answering every request with ``reply()``."""
    requests: list[tuple[str, str, str | None]] = []
    finished: list[bool] = []
    bodies: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                bodies.append(json.loads(raw))
            except ValueError:
                bodies.append(None)
            requests.append((self.command, self.path, self.headers.get("Authorization")))
            answer = reply()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                for chunk in answer.chunks:
                    self.wfile.write(chunk)
                finished.append(True)
            except OSError:  # the agent hung up, as it should on an oversized answer
                finished.append(False)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", requests, finished, bodies)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
