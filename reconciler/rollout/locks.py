"""FleetLock reboot locks: a reboot permission for a host whose own client reboots it.

A host that runs Zincati (or any reboot script speaking FleetLock) asks for a lock before it
reboots and gives it back once it is up again. For the planner a request is an observation
(:class:`~reconciler.rollout.observed.LockRequests`), like a report: :func:`grant_locks`
grants it by the rules that govern the agent's reboots — the host's own windows, no freeze,
no hold, the group neither halted nor paused, and the same reboot budget (``groupBy``
included), in which a host counts once whichever way it reboots. :func:`release_locks` gives
a lock back when its client says so, when our agent (if the host runs one too) reports it
healthy on the target after a new boot, or when the host left the group or lost its
`fleetLockId` in Git (the operator's way to free a lock whose host will not come back).
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.rollout.decisions import DecisionKind
from reconciler.rollout.facts import PassFacts
from reconciler.rollout.ledger import Ledger
from reconciler.rollout.observed import Greenboot
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.spec import BudgetKey
from reconciler.rollout.state import Lifecycle
from reconciler.rollout.steps import StepResult, unavailable_by_bucket


def release_locks(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Give back the locks of hosts that are back: said so, or seen healthy on the target."""
    for host, lock in sorted(ledger.state.locks.items()):
        obs = facts.observed.get(host)
        if host in facts.locks.release:
            why = f"{host} is back: its FleetLock client reported steady state"
        elif host not in facts.spec.wave_of:
            why = f"{host} left the group"
        elif host not in facts.spec.lock_clients:
            why = f"{host} has no fleetLockId in the inventory any more"
        elif (
            obs is not None
            and obs.received_at >= lock.granted_at
            and obs.boot_id != lock.boot_id
            and obs.booted_commit == facts.target
            and obs.greenboot is Greenboot.GREEN
        ):
            why = f"{host} is back: it rebooted and runs the target, greenboot green"
        else:
            continue
        ledger.decide(DecisionKind.LOCK_RELEASED, Reason(ReasonCode.LOCK_RELEASED, why), host=host)
    return StepResult()


def grant_locks(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Grant the locks asked for, in rollout order, as far as the rules and budget allow."""
    wanted = [
        h for h in facts.spec.order if h in facts.locks.acquire and h not in ledger.state.locks
    ]
    if not wanted:
        return StepResult()
    unavailable = unavailable_by_bucket(facts, ledger)
    for host in wanted:
        if lock_refusal(facts, ledger, host, unavailable) is not None:
            continue
        key = facts.spec.budget_key[host]
        unavailable[key] = unavailable.get(key, 0) + 1
        obs = facts.observed.get(host)
        ledger.decide(
            DecisionKind.LOCK_GRANTED,
            Reason(
                ReasonCode.LOCK_GRANTED,
                f"{host} may reboot (FleetLock); {facts.window_of(host).describe(facts.now)}",
            ),
            host=host,
            boot_id=obs.boot_id if obs is not None else None,
        )
    return StepResult()


def lock_refusal(
    facts: PassFacts, ledger: Ledger, host: str, unavailable: Mapping[BudgetKey, int]
) -> Reason | None:
    """Why ``host`` may not take a reboot lock now, or None if it may."""
    stopped = _stopped(facts, ledger, host)
    if stopped is not None:
        return stopped
    spec = facts.spec
    window = facts.window_of(host)
    if not window.allowed:
        return Reason(ReasonCode.WAITING_FOR_WINDOW, window.describe(facts.now))
    key = spec.budget_key[host]
    limit = spec.budget_limit.get(key, 0)
    if unavailable.get(key, 0) >= limit:
        where = f" for {'/'.join(key)}" if any(key) else ""
        return Reason(
            ReasonCode.WAITING_FOR_BUDGET,
            f"reboot budget{where} in use: {limit} host(s) may be unavailable at once",
        )
    return None


def _stopped(facts: PassFacts, ledger: Ledger, host: str) -> Reason | None:
    """Why no reboot at all may start for ``host`` now: held, halted, paused or frozen."""
    spec, rollout = facts.spec, ledger.rollout
    if host in spec.held:
        return Reason(ReasonCode.HELD, f"{host} is held in the inventory: {spec.held[host]}")
    if rollout.lifecycle is Lifecycle.HALTED and rollout.halt is not None:
        return Reason(ReasonCode.HALTED, rollout.halt.reason.message)
    if spec.paused:
        return Reason(ReasonCode.PAUSED, "paused in the fleet repo")
    if facts.freeze.frozen:
        return Reason(ReasonCode.FROZEN, facts.freeze.describe())
    return None


def lock_answers(facts: PassFacts, ledger: Ledger) -> dict[str, Reason]:
    """For each host that asked for a lock in this pass, why it holds one or why not."""
    answers: dict[str, Reason] = {}
    unavailable = unavailable_by_bucket(facts, ledger)
    for host in sorted(facts.locks.acquire):
        if host in ledger.state.locks:
            granted = ledger.state.locks[host].granted_at
            answers[host] = Reason(
                ReasonCode.LOCK_GRANTED,
                f"{host} holds the reboot lock since {granted:%Y-%m-%d %H:%M}Z",
            )
        elif host not in facts.spec.wave_of:
            answers[host] = Reason(ReasonCode.NOT_A_MEMBER, f"{host} is in no group")
        else:
            refusal = lock_refusal(facts, ledger, host, unavailable)
            answers[host] = refusal or Reason(ReasonCode.LOCK_REQUESTED, "not granted")
    return answers
