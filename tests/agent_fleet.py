"""Simulated hosts that talk to a real `reconciler serve` over HTTP, as the agent does.

Each host is a thread with its own deployments, boot id and greenboot verdict. It reports
the way `reconciler-agent` does (the JSON of docs/agent.md), obeys the answer — `stage`
deploys the target for the next boot after a while, `reboot` takes it down for a while and
brings it up on the staged commit (or, for a host whose new build is bad, back on the old
one, as greenboot falls back; or on the new one with greenboot red), `unstage` drops the
staged deployment — and retries when the server does not answer. The only fakes are the
deployment and the reboot.

Everything the hosts were told, and when each one was down for a reboot, is recorded, so a
test can judge the reconciler from the hosts' side as well as from its event log.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


class Build(enum.Enum):
    """How the host fares when it boots a new commit."""

    GOOD = "good"  # greenboot green
    FALLS_BACK = "falls_back"  # greenboot fails and the boot falls back to the old commit
    RED = "red"  # boots the new commit, greenboot red


@dataclass(frozen=True)
class Told:
    """One answer a host got: what it had reported and what it was told to do."""

    host: str
    sent_at: float  # time.monotonic() when the report left
    at: float  # ... and when the answer arrived
    booted: str
    staged: str | None
    action: str
    state: str
    target: str | None
    changed: bool  # the report differed from the last one the server had answered


@dataclass
class Reboot:
    """A reboot a host made because it was told to: down from ``started`` until the first
    report that shows how it went (``outcome_sent``: the target booted green or red, or
    another commit booted)."""

    host: str
    target: str
    started: float
    outcome_sent: float | None = None


@dataclass(frozen=True)
class Pace:
    """How long the simulated operations take, in seconds (each drawn uniformly)."""

    report_every: tuple[float, float] = (0.2, 0.4)
    stage: tuple[float, float] = (0.2, 0.5)
    reboot: tuple[float, float] = (1.0, 2.0)
    greenboot: tuple[float, float] = (0.1, 0.4)  # verdict 'unknown' this long after a boot
    retry: tuple[float, float] = (0.05, 0.15)  # when the server does not answer


class SimulatedHost:
    """One host and its agent, running in a thread until :meth:`stop`."""

    def __init__(
        self,
        fleet: AgentFleet,
        name: str,
        token: str,
        booted: str,
        build: Build,
        rng: random.Random,
    ) -> None:
        self.fleet, self.name, self.token, self.build, self.rng = fleet, name, token, build, rng
        self.booted: str = booted
        self.staged: str | None = None
        self.boots = 1
        self.greenboot = "green"
        self._staging: tuple[str, float] | None = None  # target, ready at
        self._down_until: float | None = None
        self._verdict_at: float | None = None
        self._reboot: Reboot | None = None  # the one whose outcome is not reported yet
        self._last_answered: dict[str, Any] | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"host-{name}", daemon=True)

    # -- the host -----------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The report the agent would send now."""
        return {
            "agentVersion": "0.1.0",
            "host": self.name,
            "bootId": f"{self.name}-boot-{self.boots}",
            "greenboot": self.greenboot,
            "booted": {
                "checksum": self.booted,
                "baseChecksum": self.booted,
                "origin": "callos:callos/9/x86_64/production",
            },
            "staged": (
                {"checksum": self.staged, "baseChecksum": self.staged} if self.staged else None
            ),
        }

    def _advance(self, now: float) -> None:
        """Finish what was due by ``now``: a deployment staged, a boot, greenboot's verdict."""
        if self._staging is not None and now >= self._staging[1]:
            self.staged, self._staging = self._staging[0], None
        if self._down_until is not None and now >= self._down_until:
            self._boot()
        if self._verdict_at is not None and now >= self._verdict_at:
            self.greenboot = "red" if self.build is Build.RED else "green"
            self._verdict_at = None

    def _boot(self) -> None:
        assert self._reboot is not None
        self._down_until = None
        self.boots += 1
        if self.build is Build.FALLS_BACK:
            self.staged = None  # greenboot rebooted into the previous deployment
            self.greenboot = "green"
        else:
            self.booted, self.staged = self._reboot.target, None
            self.greenboot = "unknown"
            self._verdict_at = time.monotonic() + self.rng.uniform(*self.fleet.pace.greenboot)

    def _obey(self, answer: dict[str, Any]) -> None:
        action = answer["action"]
        target: str | None = (answer.get("target") or {}).get("commit")
        if action == "unstage":
            self.staged, self._staging = None, None
        elif target is None:
            return
        elif action == "stage" and target not in (self.booted, self.staged):
            if self._staging is None or self._staging[0] != target:
                ready = time.monotonic() + self.rng.uniform(*self.fleet.pace.stage)
                self._staging = (target, ready)
        elif action == "reboot" and target != self.booted:
            # The agent stages first if it has to, and never reboots when that fails.
            self.staged, self._staging = target, None
            now = time.monotonic()
            self._down_until = now + self.rng.uniform(*self.fleet.pace.reboot)
            self._reboot = Reboot(self.name, target, now)
            self.fleet.rebooted(self._reboot)

    def _shows_outcome(self) -> bool:
        return self._reboot is not None and (
            self.booted != self._reboot.target or self.greenboot != "unknown"
        )

    # -- the agent ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        pace = self.fleet.pace
        with httpx.Client(timeout=5.0) as client:
            while not self._stopping.is_set():
                self._advance(time.monotonic())
                if self._down_until is not None:  # rebooting: silent
                    self._stopping.wait(max(0.0, self._down_until - time.monotonic()))
                    continue
                pause = pace.report_every if self._exchange(client) else pace.retry
                self._stopping.wait(self.rng.uniform(*pause))

    def _exchange(self, client: httpx.Client) -> bool:
        """One report and, if the server answers, obey it; False when it did not answer."""
        body = self.report()
        sent = time.monotonic()
        if self._shows_outcome():
            assert self._reboot is not None
            self._reboot.outcome_sent = sent
            self._reboot = None
        try:
            response = client.post(
                self.fleet.pick_url(self.rng) + "/v1/report",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.TransportError:
            self.fleet.unanswered += 1
            return False
        if response.status_code != 200:  # 503 while a pass cannot be made; try again
            self.fleet.unanswered += 1
            return False
        answer = response.json()
        changed = body != self._last_answered
        self._last_answered = body
        self.fleet.told(
            Told(
                host=self.name,
                sent_at=sent,
                at=time.monotonic(),
                booted=body["booted"]["checksum"],
                staged=(body["staged"] or {}).get("checksum"),
                action=answer["action"],
                state=answer["state"],
                target=(answer.get("target") or {}).get("commit"),
                changed=changed,
            )
        )
        self._obey(answer)
        return True


class AgentFleet:
    """The simulated hosts of one test, and the record of what they were told."""

    def __init__(self, url: str | Sequence[str], pace: Pace | None = None) -> None:
        # Several URLs: replicas behind no balancer; each report goes to one picked at random.
        self.urls = [url] if isinstance(url, str) else list(url)
        self.url = self.urls[0]
        self.pace = pace or Pace()
        self.hosts: dict[str, SimulatedHost] = {}
        self.answers: list[Told] = []
        self.reboots: list[Reboot] = []
        self.unanswered = 0
        self._lock = threading.Condition()
        self._changes = 0  # answers to a changed report, for whoever waits on them

    def pick_url(self, rng: random.Random) -> str:
        """Where the next report goes (one URL: no draw, so seeded runs replay as before)."""
        return self.urls[0] if len(self.urls) == 1 else rng.choice(self.urls)

    def add(self, name: str, token: str, booted: str, build: Build, seed: int) -> None:
        self.hosts[name] = SimulatedHost(self, name, token, booted, build, random.Random(seed))

    def start(self) -> None:
        for host in self.hosts.values():
            host.start()

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop()

    def told(self, told: Told) -> None:
        with self._lock:
            self.answers.append(told)
            if told.changed:
                self._changes += 1
                self._lock.notify_all()

    def rebooted(self, reboot: Reboot) -> None:
        with self._lock:
            self.reboots.append(reboot)

    def changes(self) -> int:
        """How many answers so far were to a report that changed something."""
        with self._lock:
            return self._changes

    def wait_for_change(self, after: int, timeout: float) -> bool:
        """Wait until an answer to a changed report arrives after the ``after``-th one."""
        with self._lock:
            return self._lock.wait_for(lambda: self._changes > after, timeout=timeout)

    def last_answers(self) -> dict[str, Told]:
        """What each host was told last."""
        with self._lock:
            return {told.host: told for told in self.answers}
