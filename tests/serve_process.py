"""`reconciler serve` as a real process on one state directory and port, for crash tests:
started, killed with SIGKILL, started again, and stopped with SIGTERM at the end; each life
logs to its own file."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

RECONCILER = Path(sys.executable).parent / "reconciler"


def unused_port() -> int:
    """A free port below the ephemeral range: between two lives of the daemon, no outgoing
    connection (the hosts make thousands) can be given it as its own port."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = random.Random().sample(range(10_000, min(low, 32_768)), 50)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


class ServeProcess:
    """`reconciler serve` on one state directory and port, started again after each kill."""

    def __init__(self, repo: Path, state: Path, logs: Path, extra_args: Sequence[str] = ()) -> None:
        self.repo, self.state, self.logs = repo, state, logs
        self.extra_args = list(extra_args)
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lives = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        logs.mkdir(parents=True)

    def start(self) -> None:
        assert self.process is None
        self.lives += 1
        self._log = (self.logs / f"life-{self.lives:03}.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(RECONCILER),
                "serve",
                "--repo",
                str(self.repo),
                "--state-dir",
                str(self.state),
                "--port",
                str(self.port),
                # The watch sees a push; a poll catches one made while it was not yet watching.
                "--poll-interval",
                "1",
                "--no-push-notes",
                "--no-promote",
                "--log-format",
                "json",
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not ready after {timeout} s: {self.tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._ended()

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; returns the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._ended()
        return code

    def _ended(self) -> None:
        assert self._log is not None
        self._log.close()
        self.process, self._log = None, None

    def tail(self) -> str:
        return (self.logs / f"life-{self.lives:03}.log").read_text(errors="replace")[-3000:]

    def errors_logged(self) -> list[tuple[str, str]]:
        """(life, what) for every error or traceback any life logged."""
        noted = ('"level": "error"', '"level": "critical"', "Traceback")
        found = []
        for log in sorted(self.logs.glob("life-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if not any(needle in line for needle in noted):
                    continue
                try:
                    record = json.loads(line)
                    last = str(record.get("exception", "")).splitlines()[-1:]
                    what = f"{record['message']} {last}"
                except (ValueError, KeyError):
                    what = line
                found.append((log.stem, what))
        return found
