"""The health gate of the wave that soaks: which evaluations count and what they say.

A wave that completed soaks before the next one opens; with health checks in the group's
spec, the soak also needs each check's gate to pass (:func:`reconciler.rollout.gates.
gate_verdict`) over evaluations made since the soak began, of queries about the soaking
wave's own hosts. Evaluations enter a pass as data (``PassFacts.gate_samples``); the daemon
makes them on a schedule and stores them, so the planner stays a pure function of its
inputs and a restart judges the same evaluations again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.rollout.facts import PassFacts
from reconciler.rollout.gates import GateVerdict, blocking, gate_verdict, halting
from reconciler.rollout.state import Rollout


@dataclass(frozen=True, slots=True)
class WaveGate:
    """The gate of the soaking wave: what the daemon evaluates, and the verdicts so far."""

    wave: int  # index of the soaking wave (0-based)
    since: datetime  # evaluations at or after this count
    hosts: tuple[str, ...]  # the soaking wave's hosts: the queries' `$hosts`
    verdicts: tuple[GateVerdict, ...]

    @property
    def halting(self) -> tuple[GateVerdict, ...]:
        return halting(self.verdicts)

    @property
    def blocking(self) -> tuple[GateVerdict, ...]:
        return blocking(self.verdicts)

    def waiting_sentence(self) -> str:
        """Why the next wave is not open although the soak time has passed."""
        return "; ".join(verdict.reason for verdict in self.blocking)

    def passed_sentence(self) -> str:
        """The checks that passed, for the reason of the wave it lets open."""
        names = ", ".join(v.check for v in self.verdicts if not v.dry_run)
        return f"health checks passed: {names}" if names else ""


def wave_gate(
    facts: PassFacts, rollout: Rollout, wave: int, soak_from: datetime
) -> WaveGate | None:
    """The gate of ``wave``, soaking since ``soak_from``; None when the group has no checks.

    A resumed rollout counts evaluations from its resumption: the failures that halted it
    are what the operator looked at before resuming.
    """
    checks = facts.spec.health_checks
    if not checks:
        return None
    since = max(soak_from, rollout.failures_counted_since or soak_from)
    ends = facts.spec.wave_ends
    hosts = facts.spec.order[ends[wave - 1] if wave > 0 else 0 : ends[wave]]
    verdicts = tuple(gate_verdict(check, facts.gate_samples, since) for check in checks)
    return WaveGate(wave, since, hosts, verdicts)
