"""Connection limits under attack: slow heads and long-polls with one host's token, against
`reconciler serve` on 127.0.0.1, while another host reports.

Issue 14, finding 3: 1,100 slow-header connections (no token), or 1,100 long-polls with one
host's token, starved every other host at 1,024 open files, and asyncio logged 76,000 "Too
many open files" lines in 10 s. Here both attacks run at once against the real daemon (a
subprocess, its open files limited as the systemd unit limits them), and they keep up the
pressure: a slow client whose connection is closed opens another; a long-poll that is
answered polls again. Another host, in a process of its own, reports every 200 ms on a new
connection; the target is every one of its reports answered in under a second.

Two runs: the default limits, and `--max-connections 1000`, fewer than the attackers, so that
slow clients must make room. Each is bounded (--seconds). Prints the figures; asserts nothing.
Usage: python benchmarks/connection_limits.py [--seconds N] [--slow N] [--polls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from push_latency import report, start_fleet_repo

RECONCILER = Path(sys.executable).parent / "reconciler"
ATTACKER = "demo-token-dub-call-01"  # the host whose token the attacker holds
OTHER = "demo-token-dub-call-02"  # the host that must still be answered
#: The unit's LimitNOFILE, or as much of it as this machine allows.
UNIT_OPEN_FILES = 65536


@dataclass
class Attack:
    slow_opened: int = 0
    slow_answers: dict[str, int] = field(default_factory=dict)  # "408", "closed"...
    polls_sent: int = 0
    poll_answers: dict[str, int] = field(default_factory=dict)
    connect_errors: int = 0

    def saw(self, answers: dict[str, int], data: bytes) -> None:
        what = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"
        answers[what] = answers.get(what, 0) + 1


async def slow_head(port: int, attack: Attack, stop: asyncio.Event) -> None:
    """Begin a head and drip a header line every 2 s; when closed, open another."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            attack.connect_errors += 1
            await asyncio.sleep(0.5)
            continue
        attack.slow_opened += 1
        try:
            writer.write(b"POST /v1/report HTTP/1.1\r\nHost: fleet\r\n")
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=2)
                except TimeoutError:
                    writer.write(b"X-Drip: 1\r\n")
                    continue
                attack.saw(attack.slow_answers, data)
                break
        except OSError:
            attack.saw(attack.slow_answers, b"")
        finally:
            writer.close()
        await asyncio.sleep(0.5)  # a pause, so the attacker's own loop leaves us some CPU


async def long_poll(port: int, known: str, attack: Attack, stop: asyncio.Event) -> None:
    """Long-poll with the attacker's token; once answered, poll again a second later."""
    body = json.dumps(report(known)).encode()
    request = (
        b"POST /v1/report?wait=300 HTTP/1.1\r\nHost: fleet\r\n"
        b"Authorization: Bearer " + ATTACKER.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            attack.connect_errors += 1
            await asyncio.sleep(0.5)
            continue
        try:
            while not stop.is_set():
                writer.write(request)
                attack.polls_sent += 1
                head = await reader.readuntil(b"\r\n\r\n")
                attack.saw(attack.poll_answers, head)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if b"connection: close" in head.lower():
                    break
                await asyncio.sleep(1)
        except (OSError, asyncio.IncompleteReadError, StopIteration):
            attack.saw(attack.poll_answers, b"")
        finally:
            writer.close()


async def attack_for(port: int, known: str, slow: int, polls: int, seconds: float) -> Attack:
    attack, stop = Attack(), asyncio.Event()
    tasks = [asyncio.create_task(slow_head(port, attack, stop)) for _ in range(slow)]
    tasks += [asyncio.create_task(long_poll(port, known, attack, stop)) for _ in range(polls)]
    await asyncio.sleep(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return attack


def other_host(url: str, seconds: float, into: multiprocessing.Queue[list[object]]) -> None:
    """In a process of its own: a report every 200 ms on a new connection; (at, ms, status)."""
    results: list[object] = []
    started = time.perf_counter()
    while (at := time.perf_counter() - started) < seconds:
        try:
            status: object = httpx.post(
                url, json=report(None), headers={"Authorization": f"Bearer {OTHER}"}, timeout=5
            ).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        results.append((at, 1000 * (time.perf_counter() - started - at), status))
        time.sleep(0.2)
    into.put(results)


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def serve(
    bare: Path, state: Path, port: int, log: Path, flags: list[str]
) -> subprocess.Popen[bytes]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = UNIT_OPEN_FILES if hard == resource.RLIM_INFINITY else min(UNIT_OPEN_FILES, hard)

    command = ["sh", "-c", f'ulimit -n {limit} && exec "$0" "$@"', str(RECONCILER), "serve"]
    command += ["--repo", str(bare), "--state-dir", str(state), "--port", str(port)]
    command += ["--no-watch", "--poll-interval", "3600", *flags]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"reconciler serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("reconciler serve did not become ready")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(title: str, flags: list[str], args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        bare, _ = start_fleet_repo(tmp)
        port, log = free_port(), tmp / "serve.log"
        process = serve(bare, tmp / "state", port, log, flags)
        url = f"http://127.0.0.1:{port}/v1/report"
        try:
            attacker = {"Authorization": f"Bearer {ATTACKER}"}
            known = httpx.post(url, json=report(None), headers=attacker).json()["assignmentId"]
            peak, sampling = [0], threading.Event()

            def sample() -> None:
                while not sampling.wait(0.05):
                    peak[0] = max(peak[0], open_files(process.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            queue: multiprocessing.Queue[list[object]] = multiprocessing.Queue()
            measurer = multiprocessing.Process(
                target=other_host, args=(url, args.seconds + 2, queue)
            )
            measurer.start()
            time.sleep(2)  # a quiet start: the other host's answers before the attack
            attack = asyncio.run(attack_for(port, known, args.slow, args.polls, args.seconds))
            results = queue.get(timeout=60)
            measurer.join()
            sampling.set()
            sampler.join()
            alive = process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=30)
        lines = log.read_text(errors="replace").splitlines()
        print_run(title, args, attack, results, alive, peak[0], lines)


def print_run(
    title: str,
    args: argparse.Namespace,
    attack: Attack,
    results: list[object],
    alive: bool,
    peak: int,
    lines: list[str],
) -> None:
    during = [r for r in results if r[0] >= 2]  # type: ignore[index]
    ms = sorted(r[1] for r in during if r[2] == 200)  # type: ignore[index]
    failed = [r[2] for r in during if r[2] != 200]  # type: ignore[index]
    print(f"\n== {title}: {args.slow} slow heads + {args.polls} long-polls, {args.seconds:g} s")
    if ms:
        print(
            f"other host: {len(ms)} of {len(during)} reports answered 200 during the attack; "
            f"median {statistics.median(ms):.0f} ms, p99 {ms[int(0.99 * (len(ms) - 1))]:.0f} ms, "
            f"max {ms[-1]:.0f} ms; over 1 s: {sum(1 for x in ms if x > 1000)}; "
            f"failed: {len(failed)} {sorted(set(map(str, failed)))}"
        )
    else:
        print(f"other host: no report answered; failures {failed[:5]}")
    print(
        f"slow heads: {attack.slow_opened} connections opened; the server's answers "
        f"{dict(sorted(attack.slow_answers.items()))}"
    )
    print(
        f"long-polls: {attack.polls_sent} sent with one token, answers "
        f"{dict(sorted(attack.poll_answers.items()))}; connect errors {attack.connect_errors}"
    )
    emfile = sum("Too many open files" in line for line in lines)
    shedding = [line for line in lines if "shedding connections" in line]
    print(
        f"server: {'up' if alive else 'DOWN'}; peak open files {peak}; "
        f'"Too many open files" lines {emfile}; log lines {len(lines)}, '
        f"of which shedding warnings {len(shedding)}"
    )
    if shedding:
        print("last shedding warning: " + json.loads(shedding[-1]).get("message", shedding[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20, help="length of each attack")
    parser.add_argument("--slow", type=int, default=1100, help="slow-head connections")
    parser.add_argument("--polls", type=int, default=1100, help="long-polls with one token")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * (args.slow + args.polls) + 256
    if soft != resource.RLIM_INFINITY and soft < needed:  # the attacker's own sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    run("default limits", ["--log-format", "json"], args)
    run("max 1,000 connections", ["--log-format", "json", "--max-connections", "1000"], args)


if __name__ == "__main__":
    main()
