"""A real daemon (Git mirror, watch, scheduler, uvicorn) in a thread, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

from reconciler.daemon import Daemon, ServeConfig
from reconciler.server import make_server


class BackgroundDaemon:
    def __init__(self, config: ServeConfig) -> None:
        self.daemon = Daemon(config)
        self.server = make_server(self.daemon.app, config.listen)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.daemon.run(self.server))

    def __enter__(self) -> BackgroundDaemon:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the daemon failed to start")
            time.sleep(0.01)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
