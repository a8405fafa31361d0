"""Simulated agents for benchmarks: many hosts over raw keep-alive HTTP/1.1, in several processes.

Each worker process owns every W-th host of the fleet (so each worker spans every group) and
keeps what each of its hosts runs: booted commit, staged commit, boot count, and the action
its last answer gave. A phase opens its own connections (a server restart breaks the old
ones, as it would for real agents), runs an asyncio loop (uvloop) in every worker, and
returns counts. Given several ports (replicas), a worker opens its connections to them in
turn, so the load is split evenly between them. The client is hand-written: write the
request bytes, read the status line, the head up to its blank line and Content-Length
bytes of body. It costs a fraction of an HTTP library's time per request, so that a 2-core
machine measures the server, not the generator (`ceiling` measures the generator against
`/healthz`).

A report changes its host's state when it follows an action of the host's last answer, as an
agent does: `stage` -> reports the target staged; `reboot` -> reports it booted with a new
boot id, greenboot green; `unstage` -> reports nothing staged. Any other report is a
heartbeat: the same state as the host's previous report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import uvloop

#: Answers are read this far for the action and target: the Assignment's field order.
_ACTION = b'"action":"'
_TARGET = b'"target":{"commit":"'


def token(index: int) -> str:
    return f"token-{index}"


def host_name(index: int) -> str:
    return f"h{index:06d}"


def report_body(index: int, booted: str, staged: str | None, boot: int, origin: str) -> str:
    """The JSON an agent sends: built by formatting, several times cheaper than json.dumps."""
    staged_json = "null" if staged is None else _deployment(staged, origin)
    return (
        f'{{"agentVersion":"bench","bootId":"boot-{index}-{boot}","greenboot":"green",'
        f'"booted":{_deployment(booted, origin)},"staged":{staged_json}}}'
    )


def _deployment(commit: str, origin: str) -> str:
    return f'{{"checksum":"{commit}","baseChecksum":"{commit}","origin":"{origin}"}}'


def post(path: str, bearer: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


@dataclass(slots=True)
class SimHost:
    """One simulated agent's host."""

    index: int
    booted: str
    staged: str | None = None
    boot: int = 0
    action: str = "none"  # from the last answer
    commit: str = ""  # the last answer's target
    queued: bool = False  # in the worker's queue of hosts with something to do
    _request: bytes | None = None

    def request(self, origin: str) -> bytes:
        if self._request is None:
            body = report_body(self.index, self.booted, self.staged, self.boot, origin)
            self._request = post("/v1/report", token(self.index), body.encode())
        return self._request

    def has_work(self) -> bool:
        """Whether following the last answer changes the host."""
        return (
            (self.action == "stage" and self.staged != self.commit)
            or (self.action == "reboot" and self.booted != self.commit)
            or (self.action == "unstage" and self.staged is not None)
        )

    def follow(self) -> None:
        """Do what the last answer said (the caller checked has_work)."""
        if self.action == "stage":
            self.staged = self.commit
        elif self.action == "reboot":
            self.booted, self.staged, self.boot = self.commit, None, self.boot + 1
        else:
            self.staged = None
        self.action, self._request = "none", None

    def reboot_on_its_own(self) -> None:
        """A reboot for another reason (a kernel update of the firmware, a power cut): same
        commit, new boot id."""
        self.boot += 1
        self._request = None


@dataclass
class Phase:
    """What every worker does in one phase.

    kind: ``each`` (every host of the worker once, from where the last ``each`` stopped;
    ``bump_boot`` gives each a new boot id first; ``skip_booted_on`` skips hosts booted on that
    commit, and hosts with something to do), ``drain`` (only hosts with something to
    do, following each answer while it gives more), ``mixed`` (round-robin over the hosts at
    ``rate`` reports/s in all, every ``change_every``-th a state change), ``get`` (``path``
    in a loop). Every phase ends at ``seconds`` or at the stop event, whichever is first.
    """

    kind: str
    connections: int
    seconds: float
    bump_boot: bool = False
    skip_booted_on: str | None = None
    restart: bool = False  # ``each`` from the first host
    reconnect: bool = False  # new connections (the server restarted), not the open ones
    rate: float = 0.0
    change_every: int = 5
    path: str = "/healthz"
    origin: str = "os:os/prod"


@dataclass
class Counts:
    changes: int = 0
    heartbeats: int = 0
    gets: int = 0
    errors: int = 0
    started: float = 0.0
    ended: float = 0.0
    cpu: float = 0.0
    exhausted: bool = False  # the phase ran out of work before its time
    buckets: dict[int, int] = field(default_factory=dict)  # reports per 50 ms, monotonic

    @property
    def answered(self) -> int:
        return self.changes + self.heartbeats + self.gets

    @property
    def elapsed(self) -> float:
        return max(self.ended - self.started, 1e-9)

    def merge(self, other: Counts) -> None:
        self.changes += other.changes
        self.heartbeats += other.heartbeats
        self.gets += other.gets
        self.errors += other.errors
        self.started = min(self.started or other.started, other.started)
        self.ended = max(self.ended, other.ended)
        self.cpu += other.cpu
        self.exhausted = self.exhausted and other.exhausted
        for key, value in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + value

    def answered_between(self, start: float, end: float) -> int:
        """Answers between two time.monotonic() instants (to the 50 ms bucket)."""
        first, last = int(start * 20), int(end * 20)
        return sum(v for k, v in self.buckets.items() if first <= k <= last)


#: A connection and when it last carried a request.
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]
#: uvicorn closes a keep-alive connection idle for 5 s; older ones are not reused.
_IDLE_REUSE_SECONDS = 3.0


class _Worker:
    def __init__(self, ports: Sequence[int], hosts: list[SimHost], stop: Event) -> None:
        self.ports, self.hosts, self.stop = list(ports), hosts, stop
        self.opened = 0  # connections opened so far: the next goes to ports[opened % n]
        self.cursor = 0
        self.todo: deque[SimHost] = deque(h for h in hosts if h.has_work())
        # Keep-alive connections outlive a phase, as agents' do; one loop for all phases.
        self.runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self.pool: list[_Connection] = []

    def run(self, phase: Phase) -> Counts:
        counts = Counts()
        cpu = time.process_time()
        fresh = time.monotonic() - _IDLE_REUSE_SECONDS
        for _, writer, used in self.pool:
            if phase.reconnect or used < fresh:
                writer.close()
        self.pool = [c for c in self.pool if not phase.reconnect and c[2] >= fresh]
        self.runner.run(self._phase(phase, counts))
        counts.cpu = time.process_time() - cpu
        return counts

    async def _phase(self, phase: Phase, counts: Counts) -> None:
        deadline = time.monotonic() + phase.seconds
        if phase.restart:
            self.cursor = 0
        picks = self._picker(phase, counts)
        counts.started = time.monotonic()
        pace = _Pace(phase.rate) if phase.rate else None
        wanted = (
            min(phase.connections, len(self.todo)) if phase.kind == "drain" else phase.connections
        )
        await asyncio.gather(
            *(self._connection(phase, picks, deadline, counts, pace) for _ in range(wanted))
        )
        counts.ended = time.monotonic()
        counts.exhausted = counts.exhausted or (phase.kind == "drain" and not self.todo)

    def _picker(self, phase: Phase, counts: Counts) -> Iterator[tuple[SimHost | None, bool]]:
        """(host, state changes) pairs to send, until the phase's work runs out."""
        if phase.kind == "get":
            while True:
                yield None, False
        elif phase.kind == "each":
            while self.cursor < len(self.hosts):
                host = self.hosts[self.cursor]
                self.cursor += 1
                if phase.skip_booted_on and (
                    host.booted == phase.skip_booted_on or host.has_work()
                ):
                    continue
                if phase.bump_boot:
                    host.reboot_on_its_own()
                yield host, phase.bump_boot
            counts.exhausted = True
        elif phase.kind == "drain":
            while self.todo:
                host = self.todo.popleft()
                host.queued = False
                if host.has_work():
                    yield host, True
            counts.exhausted = True
        else:  # mixed
            sent = 0
            while True:
                sent += 1
                if sent % phase.change_every:
                    yield self._next_round_robin(), False
                elif self.todo:
                    host = self.todo.popleft()
                    host.queued = False
                    yield host, host.has_work()
                else:
                    host = self._next_round_robin()
                    if host.staged is None:  # a staged host would boot its staged commit
                        host.reboot_on_its_own()
                    yield host, host.staged is None

    def _next_round_robin(self) -> SimHost:
        if self.cursor >= len(self.hosts):
            self.cursor = 0
        host = self.hosts[self.cursor]
        self.cursor += 1
        return host

    async def _connection(
        self,
        phase: Phase,
        picks: Iterator[tuple[SimHost | None, bool]],
        deadline: float,
        counts: Counts,
        pace: _Pace | None,
    ) -> None:
        if self.pool:
            reader, writer, _ = self.pool.pop()
        else:
            reader, writer = await self._open()
        chain = phase.kind == "drain"
        try:
            for host, changes in picks:
                while True:
                    if pace is not None:
                        await pace.wait()
                    if host is not None and changes and host.has_work():
                        host.follow()
                    payload = host.request(phase.origin) if host else get(phase.path)
                    try:
                        writer.write(payload)
                        status, body = await _answer(reader)
                    except (OSError, asyncio.IncompleteReadError):
                        counts.errors += 1  # the server closed it: open another
                        writer.close()
                        reader, writer = await self._open()
                        break
                    now = time.monotonic()
                    bucket = int(now * 20)
                    counts.buckets[bucket] = counts.buckets.get(bucket, 0) + 1
                    if status != 200:
                        counts.errors += 1
                    elif host is None:
                        counts.gets += 1
                    elif changes:
                        counts.changes += 1
                    else:
                        counts.heartbeats += 1
                    if host is not None and status == 200:
                        self._learn(host, body)
                    # A drain follows the host while its answers give it more to do.
                    if not (chain and host is not None and host.has_work()):
                        break
                    host.queued = False
                if time.monotonic() > deadline or self.stop.is_set():
                    break
        finally:
            self.pool.append((reader, writer, time.monotonic()))

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        port = self.ports[self.opened % len(self.ports)]
        self.opened += 1
        return await asyncio.open_connection("127.0.0.1", port)

    def _learn(self, host: SimHost, body: bytes) -> None:
        start = body.find(_ACTION) + len(_ACTION)
        host.action = body[start : body.find(b'"', start)].decode()
        start = body.find(_TARGET)
        if start >= 0:
            start += len(_TARGET)
            host.commit = body[start : body.find(b'"', start)].decode()
        if host.has_work() and not host.queued:
            host.queued = True
            self.todo.append(host)


class _Pace:
    """Spreads one worker's sends evenly at ``rate`` per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self.next = max(self.next + self.interval, now - 0.05)
        if self.next > now:
            await asyncio.sleep(self.next - now)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    at = head.lower().find(b"content-length:")
    length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
    return status, await reader.readexactly(length)


def _serve_commands(
    connection: Connection, ports: list[int], indices: range, commit: str, stop: Event
) -> None:
    worker = _Worker(ports, [SimHost(i, commit) for i in indices], stop)
    while True:
        phase: Phase | None = connection.recv()
        if phase is None:
            return
        connection.send(worker.run(phase))


class LoadGenerator:
    """``workers`` processes, each owning every ``workers``-th host of ``hosts`` (all booted
    on ``commit``, boot id 0, nothing staged at first). ``port`` may be several ports (one
    per replica): each worker's connections go to them in turn."""

    def __init__(self, port: int | Sequence[int], hosts: int, commit: str, workers: int) -> None:
        ports = [port] if isinstance(port, int) else list(port)
        context = multiprocessing.get_context("fork")  # before the caller starts any thread
        self.stop = context.Event()
        self._pipes: list[Connection] = []
        self._processes = []
        for number in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_serve_commands,
                args=(theirs, ports, range(number, hosts, workers), commit, self.stop),
                daemon=True,
            )
            process.start()
            self._pipes.append(mine)
            self._processes.append(process)

    def start(self, phase: Phase) -> None:
        """Begin ``phase`` in every worker (connections split between them)."""
        self.stop.clear()
        share = max(1, phase.connections // len(self._pipes))
        for pipe in self._pipes:
            pipe.send(_share(phase, share, len(self._pipes)))

    def finish(self) -> Counts:
        """Wait for the phase begun by start() and add up the workers' counts."""
        total = Counts(exhausted=True)
        for pipe in self._pipes:
            total.merge(pipe.recv())
        return total

    def run(self, phase: Phase) -> Counts:
        self.start(phase)
        return self.finish()

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(None)
        for process in self._processes:
            process.join(timeout=10)


def _share(phase: Phase, connections: int, workers: int) -> Phase:
    return dataclasses.replace(phase, connections=connections, rate=phase.rate / workers)
