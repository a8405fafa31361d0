"""A large fleet in a local bare Git repository, and `reconciler serve` on it as a subprocess.

The fleet: ``hosts`` hosts in ``groups`` groups, one inventory file and one group file per
group, every group on the stream ``prod``; and one host alone in the group ``canary`` on its
own stream ``canary``, for the merge -> canary measure. Streams carry no URL, so the daemon
does not preflight an OSTree repository (as benchmarks/push_latency.py). The YAML is built as
strings: 100,000 hosts take a second.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from loadgen import host_name, report_body, token

RECONCILER = Path(sys.executable).parent / "reconciler"
HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
OLD, NEW = "a1" * 32, "b2" * 32
CANARY_HOST, CANARY_TOKEN = "canary-01", "token-canary"
PROD_ORIGIN, CANARY_ORIGIN = "os:os/prod", "os:os/canary"
FLEET = """kind: Fleet
name: bench
defaults:
  rollout:
    waves: [1, 10%, 50%]          # a canary, then 10 %, 50 %, 100 %
    soakTime: 0s
    rebootBudget: {maxUnavailable: 10%}
    failureThreshold: 5%
    staleAfter: 1h                # the benchmark's pauses must not make hosts stale
    skipStaleAfter: 2h
"""


def canary_commit(number: int) -> str:
    return f"c{number:03x}" * 16  # a letter first: YAML must read a string


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=Bench", "-c", "user.email=b@example.net", *args],
        check=True,
        capture_output=True,
    )


def write_fleet(root: Path, hosts: int, groups: int) -> None:
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True)
    (root / "fleet.yaml").write_text(HEADER + FLEET)
    write_stream(root, "prod", OLD)
    write_stream(root, "canary", canary_commit(0))
    per_group = -(-hosts // groups)
    for g in range(groups):
        name = f"g{g:03d}"
        lines = [HEADER + "kind: HostInventory", "hosts:"]
        for i in range(g * per_group, min(hosts, (g + 1) * per_group)):
            lines += [
                f"  - name: {host_name(i)}",
                f"    labels: {{group: {name}}}",
                f"    tokenSha256: {hashlib.sha256(token(i).encode()).hexdigest()}",
            ]
        (root / "hosts" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
        (root / "groups" / f"{name}.yaml").write_text(
            HEADER + f"kind: Group\nname: {name}\nstream: prod\n"
            f"selector: {{matchLabels: {{group: {name}}}}}\n"
        )
    canary_sha = hashlib.sha256(CANARY_TOKEN.encode()).hexdigest()
    (root / "hosts" / "canary.yaml").write_text(
        HEADER + "kind: HostInventory\nhosts:\n"
        f"  - name: {CANARY_HOST}\n    labels: {{role: canary}}\n    tokenSha256: {canary_sha}\n"
    )
    (root / "groups" / "canary.yaml").write_text(
        HEADER + f"kind: Group\nname: canary\nstream: canary\nhosts: [{CANARY_HOST}]\n"
    )


def write_stream(root: Path, name: str, commit: str) -> None:
    (root / "streams" / f"{name}.yaml").write_text(
        HEADER + f"kind: Stream\nname: {name}\nremote: os\nref: os/{name}\ncommit: {commit}\n"
    )


def fleet_repo(tmp: Path, hosts: int, groups: int) -> tuple[Path, Path]:
    """A bare origin holding the fleet, and a working copy that pushes to it."""
    bare, work = tmp / "origin.git", tmp / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    write_fleet(work, hosts, groups)
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the fleet")
    git(work, "push", "-q", "origin", "main")
    return bare, work


def commit_stream(work: Path, stream: str, commit: str) -> None:
    """Commit a stream change in the working copy; push() sends it."""
    write_stream(work, stream, commit)
    git(work, "commit", "-qam", f"{stream} -> {commit[:8]}")


def push(work: Path) -> None:
    git(work, "push", "-q", "origin", "main")


def head_revision(work: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(
    port: int,
    method: str,
    path: str,
    body: str | None = None,
    bearer: str | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def canary_report(commit: str, known: str | None) -> str:
    body: dict[str, Any] = json.loads(report_body(0, commit, None, 0, CANARY_ORIGIN))
    body["knownAssignment"] = known
    return json.dumps(body)


class Serve:
    """`reconciler serve` on one state directory, as systemd runs it: a process of its own,
    stopped with SIGTERM. ``extra_args`` are appended to its command line (e.g. ``--store``);
    ``name`` tells apart the logs of several in one directory."""

    def __init__(
        self,
        repo: Path,
        state: Path,
        logs: Path,
        extra_args: Sequence[str] = (),
        name: str = "serve",
    ) -> None:
        self.repo, self.state, self.logs = repo, state, logs
        self.extra_args, self.name = list(extra_args), name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lives = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.lives += 1
        self._log = (self.logs / f"{self.name}-{self.lives}.log").open("wb")
        self.started = time.monotonic()
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
                "--poll-interval",
                "60",  # the watch sees each push; the poll is the fallback
                "--no-push-notes",
                "--no-promote",
                "--log-format",
                "json",
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds from the process's start to /readyz answering 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}: {self.tail()}")
            try:
                if request(self.port, "GET", "/readyz", timeout=5)[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"serve not ready after {timeout} s: {self.tail()}")

    def revision(self) -> str | None:
        status, body = request(self.port, "GET", "/readyz")
        return json.loads(body).get("revision") if status == 200 else None

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        assert self.process is not None
        assert self._log is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=120)
        self._log.close()
        self.process = None
        if code != 0:
            raise RuntimeError(f"serve stopped with {code}: {self.tail()}")

    def tail(self) -> str:
        return (self.logs / f"{self.name}-{self.lives}.log").read_text(errors="replace")[-3000:]
