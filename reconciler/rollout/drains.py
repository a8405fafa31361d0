"""Drains: a host allowed to reboot whose agent holds the reboot back (docs/rollouts.md, rule 16).

The agent runs the host's pre-reboot command (move calls away, wait for active calls to reach
0) before every reboot it is allowed; while that fails or times out it defers the reboot and
says so in each report (:class:`~reconciler.rollout.observed.RebootDeferral`). Such a host is
*draining*: it keeps its reboot-budget slot, exactly like a host that is rebooting, so no
other host takes its place; the health timeout does not run, since the host has not begun
to reboot; and once it has drained for the group's ``drainTimeout`` it fails with reason
``drain_timeout``, which frees the slot. When the deferral goes away the host is drained and
reboots, and the health timeout counts from then.

When the drain began is durable (``host_draining``): the agent's ``since`` for this reboot,
kept within the permission and the report, so neither an agent's clock nor a deferral left
over from an earlier permission can move the deadline.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.durations import format_minutes
from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.facts import PassFacts
from reconciler.rollout.ledger import Ledger
from reconciler.rollout.observed import HostObservation, RebootDeferral
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import HostProgress


def deferral_of(
    facts: PassFacts, progress: HostProgress, obs: HostObservation | None
) -> RebootDeferral | None:
    """The deferral in ``obs`` if it holds back the reboot ``progress`` allows, else None.

    That is a report received after the permission, from the boot the host was allowed to
    reboot out of, with the target staged and not booted. A deferral of an earlier
    permission, of another target, or sent before this permission was granted is ignored.
    """
    if obs is None or obs.reboot_deferred is None:
        return None
    allowed_at = progress.reboot_allowed_at
    if (
        allowed_at is None
        or obs.received_at <= allowed_at
        or obs.boot_id != progress.boot_id_at_reboot
        or obs.staged_commit != facts.target
        or obs.booted_commit == facts.target
    ):
        return None
    return obs.reboot_deferred


def follow_drain(
    facts: PassFacts, ledger: Ledger, host: str, progress: HostProgress
) -> datetime | None:
    """Record where an updating host stands with its drain; returns its drain deadline while
    it drains, None once it is not draining (any more) or failed to drain."""
    deferral = deferral_of(facts, progress, facts.observed.get(host))
    if progress.draining_since is None:
        if deferral is None:
            return None
        _started(facts, ledger, host, progress, deferral)
        progress = ledger.rollout.hosts[host]
    elif deferral is None:
        took = format_minutes(facts.now - progress.draining_since)
        ledger.decide(
            DecisionKind.HOST_DRAINED,
            Reason(ReasonCode.DRAINED, f"{host} drained after {took}; it reboots now"),
            host=host,
        )
        return None
    assert progress.draining_since is not None
    timeout = facts.spec.policy.drain_timeout
    deadline = progress.draining_since + timeout
    if facts.now < deadline:
        return deadline
    ledger.decide(
        DecisionKind.HOST_FAILED,
        Reason(
            ReasonCode.DRAIN_TIMEOUT,
            f"{host} did not drain within {format_minutes(timeout)}: {deferral.message}",
        ),
        host=host,
    )
    return None


def _started(
    facts: PassFacts,
    ledger: Ledger,
    host: str,
    progress: HostProgress,
    deferral: RebootDeferral,
) -> None:
    """The first report of a deferral: the drain began at the agent's ``since``, but not
    before the permission (an agent's clock may lag) nor after the report (or lead)."""
    obs = facts.observed[host]
    assert progress.reboot_allowed_at is not None
    earliest = progress.drained_at or progress.reboot_allowed_at
    since = min(max(deferral.since, earliest), obs.received_at)
    ledger.decide(
        DecisionKind.HOST_DRAINING,
        Reason(
            ReasonCode.DRAINING,
            f"{host} holds its reboot back to drain since {since:%Y-%m-%d %H:%MZ}: "
            f"{deferral.message}",
        ),
        host=host,
        since=since,
    )


def drain_text(facts: PassFacts, progress: HostProgress, deferral: RebootDeferral) -> str:
    """What a draining host is waiting for, for people: since when, the command's last
    line, and when it will be failed."""
    assert progress.draining_since is not None
    deadline = progress.draining_since + facts.spec.policy.drain_timeout
    return (
        f"allowed to reboot; draining since {progress.draining_since:%Y-%m-%d %H:%MZ} "
        f"(pre-reboot command: {deferral.message}); fails to drain at "
        f"{deadline:%Y-%m-%d %H:%MZ}"
    )
