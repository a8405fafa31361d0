"""What every host should do and where the group stands, explained from where a pass ended.

Pure and decision-free: :func:`host_plans` and :func:`group_status` read the pass's facts and
the state its decisions produced, and say what that state means for each host's agent and for
the people watching, each with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reconciler.durations import format_minutes
from reconciler.rollout.drains import deferral_of, drain_text
from reconciler.rollout.facts import PassFacts, current_rollout
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.reasons import HOST_SIDE_FAILURE_CODES, Reason, ReasonCode
from reconciler.rollout.spec import BudgetKey, GroupSpec
from reconciler.rollout.state import FailureRecord, GroupState, HostProgress, Lifecycle, Rollout
from reconciler.rollout.wavegate import WaveGate


class Action(StrEnum):
    """What a host's agent is told to do."""

    NONE = "none"
    STAGE = "stage"  # pull and deploy the target for the next boot; never reboot
    REBOOT = "reboot"  # reboot into the staged target now
    # drop a staged deployment no reboot may boot (rpm-ostree cleanup -p): not the target, or
    # the target of a halted rollout, or one this host failed on
    UNSTAGE = "unstage"


class HostState(StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    STAGING = "staging"
    STAGED = "staged"
    UPDATING = "updating"
    # allowed to reboot; its agent holds the reboot back until its pre-reboot command passes
    DRAINING = "draining"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    STALE = "stale"
    UNEXPECTED = "unexpected"
    HELD = "held"  # held out of rollouts in the inventory


class GroupPhase(StrEnum):
    IN_SYNC = "in_sync"
    PROGRESSING = "progressing"
    SOAKING = "soaking"
    WAITING = "waiting"
    WAITING_WINDOW = "waiting_window"  # hosts are staged; reboots wait for a window
    FROZEN = "frozen"  # hosts are staged; reboots wait for a freeze to end
    PAUSED = "paused"
    HALTED = "halted"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class HostPlan:
    """A host's state in the rollout, what its agent should do, and why."""

    state: HostState
    action: Action
    reason: Reason


@dataclass(frozen=True, slots=True)
class GroupStatus:
    phase: GroupPhase
    reason: Reason
    wave: int  # waves opened so far
    waves_total: int


_NO_PROGRESS = HostProgress()
_IN_SYNC = HostPlan(
    HostState.IN_SYNC,
    Action.NONE,
    Reason(ReasonCode.IN_SYNC, "runs the desired commit, greenboot green"),
)


# -- hosts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scene:
    """What every host's explanation reads, gathered once per pass."""

    facts: PassFacts
    state: GroupState
    rollout: Rollout
    blocked: Reason | None
    plans: dict[tuple[object, ...], HostPlan] = field(default_factory=dict)

    def shared(
        self,
        key: tuple[object, ...],
        state: HostState,
        action: Action,
        code: ReasonCode,
        message: Callable[[], str],
    ) -> HostPlan:
        """One plan object for every host in the same situation: a pass over 100,000 hosts
        builds a few dozen sentences, not 100,000."""
        plan = self.plans.get(key)
        if plan is None:
            plan = self.plans[key] = HostPlan(state, action, Reason(code, message()))
        return plan


def host_plans(facts: PassFacts, state: GroupState) -> dict[str, HostPlan]:
    """What each host of the group should do now, and why, in rollout order."""
    scene = _Scene(facts, state, current_rollout(state), facts.blocked(state))
    observed = facts.observed
    plans = {}
    held = facts.spec.held
    for host in facts.spec.order:
        obs = observed.get(host)
        if host in held:
            plans[host] = _held(scene, obs, held[host])
            continue
        if obs is None and host in facts.spec.lock_clients:
            plans[host] = _lock_client(scene, host)
            continue
        plan = _without_unwanted_staging(scene, host, obs, _host_plan(scene, host, obs))
        plans[host] = _revoked_build(facts, obs, plan)
    return plans


def _held(scene: _Scene, obs: HostObservation | None, why: str) -> HostPlan:
    """A held host is told nothing but to drop a staged deployment, which any reboot (a
    repair, a power cut) would otherwise boot while it is out of the rollout."""
    if obs is not None and obs.staged_commit not in (None, obs.booted_commit):
        return scene.shared(
            ("held", "unstage", why),
            HostState.HELD,
            Action.UNSTAGE,
            ReasonCode.HELD,
            lambda: (
                f"held in the inventory: {why}; remove the staged deployment so that no "
                "reboot boots it"
            ),
        )
    return scene.shared(
        ("held", why),
        HostState.HELD,
        Action.NONE,
        ReasonCode.HELD,
        lambda: f"held in the inventory: {why}; not offered any target until the hold is removed",
    )


def _lock_client(scene: _Scene, host: str) -> HostPlan:
    """A host that reboots through FleetLock and runs no agent: all we know is its lock."""
    lock = scene.state.locks.get(host)
    if lock is not None:
        return HostPlan(
            HostState.UPDATING,
            Action.NONE,
            Reason(
                ReasonCode.LOCK_GRANTED,
                f"holds the FleetLock reboot lock since {lock.granted_at:%Y-%m-%d %H:%M}Z",
            ),
        )
    return scene.shared(
        ("fleetlock",),
        HostState.PENDING,
        Action.NONE,
        ReasonCode.NO_REPORT,
        lambda: "reboots through FleetLock and holds no reboot lock; no agent reports for it",
    )


def _revoked_build(facts: PassFacts, obs: HostObservation | None, plan: HostPlan) -> HostPlan:
    """A host that still runs a revoked build says so, whatever it waits for: it is drift
    with reason `revoked`, brought back through the normal budget and windows."""
    booted = obs.booted_commit if obs is not None else None
    if booted is None or booted == facts.target or booted not in facts.spec.revoked:
        return plan
    why = facts.spec.revoked[booted]
    return HostPlan(
        plan.state,
        plan.action,
        Reason(
            ReasonCode.REVOKED,
            f"runs {booted[:12]}, revoked in fleet.yaml ({why}); {plan.reason.message}",
        ),
    )


def _host_plan(scene: _Scene, host: str, obs: HostObservation | None) -> HostPlan:
    facts = scene.facts
    plan = _finished_or_silent(scene, host, obs)
    if plan is not None:
        return plan
    assert obs is not None  # a host that never reported is explained above
    progress = scene.rollout.hosts.get(host) or _NO_PROGRESS
    if progress.updating or obs.booted_commit == facts.target:
        return _updating(scene, host, obs, progress)
    if progress.failure is not None and progress.failure.code in HOST_SIDE_FAILURE_CODES:
        return _failed_to_drain(progress.failure)
    if progress.offered_at is None:
        return _not_offered(scene, host, progress)
    return _offered(scene, host, obs, progress)


def _finished_or_silent(scene: _Scene, host: str, obs: HostObservation | None) -> HostPlan | None:
    """Failed on the target before, in sync, or too long silent to be told anything."""
    facts = scene.facts
    failed = facts.failure_on_target(scene.state, host)
    if failed is not None:
        return _failed_before(failed)
    if obs is None:
        return _never_reported(scene, host)
    if obs.booted_commit == facts.target and obs.greenboot is Greenboot.GREEN:
        return _IN_SYNC
    if facts.stale(obs):
        code = ReasonCode.SKIPPED_STALE if facts.skipped(obs) else ReasonCode.STALE
        seen = f"last report {format_minutes(facts.now - obs.received_at)} ago"
        return HostPlan(HostState.STALE, Action.NONE, Reason(code, f"{host} {seen}"))
    return None


def _never_reported(scene: _Scene, host: str) -> HostPlan:
    """A host never heard from is silent since the rollout began: it holds its wave back until
    it is skipped, but it was never allowed to reboot, so it never counts against the budget
    (reason `no_report`, unlike a host that went silent, `stale`)."""
    facts = scene.facts
    skip_stale_after = facts.spec.policy.skip_stale_after
    if facts.skipped(None):
        return HostPlan(
            HostState.STALE,
            Action.NONE,
            Reason(
                ReasonCode.SKIPPED_STALE,
                f"{host} never reported; skipped after {format_minutes(skip_stale_after)}",
            ),
        )
    skip_at = facts.silent_since + skip_stale_after
    if not facts.stale(None):
        return scene.shared(
            ("no-report",),
            HostState.PENDING,
            Action.NONE,
            ReasonCode.NO_REPORT,
            lambda: f"has not reported yet; skipped if still silent at {skip_at:%Y-%m-%d %H:%MZ}",
        )
    return scene.shared(
        ("no-report", "stale"),
        HostState.STALE,
        Action.NONE,
        ReasonCode.NO_REPORT,
        lambda: (
            "never reported since the rollout began "
            f"{format_minutes(facts.now - facts.silent_since)} ago; not counted against the "
            f"reboot budget; skipped if still silent at {skip_at:%Y-%m-%d %H:%MZ}"
        ),
    )


def _failed_before(failed: FailureRecord) -> HostPlan:
    state = (
        HostState.ROLLED_BACK if failed.reason.code is ReasonCode.FELL_BACK else HostState.FAILED
    )
    return HostPlan(
        state,
        Action.NONE,
        Reason(
            ReasonCode.FAILED_BEFORE,
            f"failed on this commit and is not offered it again: {failed.reason.message}",
        ),
    )


def _updating(scene: _Scene, host: str, obs: HostObservation, progress: HostProgress) -> HostPlan:
    """Allowed to reboot, rebooted, or on the target without being told: not healthy yet."""
    facts = scene.facts
    if not progress.updating:
        return scene.shared(
            ("on-target",),
            HostState.UPDATING,
            Action.NONE,
            ReasonCode.WAITING_FOR_HEALTH,
            lambda: "runs the target; waiting for greenboot green",
        )
    if obs.boot_id == progress.boot_id_at_reboot and obs.booted_commit != facts.target:
        deferral = deferral_of(facts, progress, obs)
        if progress.draining_since is not None and deferral is not None:
            # Still told to reboot: the agent retries its pre-reboot command until it passes.
            return HostPlan(
                HostState.DRAINING,
                Action.REBOOT,
                Reason(ReasonCode.DRAINING, drain_text(facts, progress, deferral)),
            )
        window = facts.window_of(host)
        return scene.shared(
            ("reboot", facts.spec.window_set_of.get(host)),
            HostState.UPDATING,
            Action.REBOOT,
            ReasonCode.REBOOT_ALLOWED,
            lambda: "reboot into the target now; " + window.describe(facts.now),
        )
    return scene.shared(
        ("rebooted",),
        HostState.UPDATING,
        Action.NONE,
        ReasonCode.WAITING_FOR_HEALTH,
        lambda: "rebooted; waiting for greenboot to report the target healthy",
    )


def _failed_to_drain(failure: Reason) -> HostPlan:
    """Failed to drain in this rollout: told nothing more, it keeps the target staged (an
    operator may drain it by hand and reboot it; it then succeeds like any other host)."""
    return HostPlan(
        HostState.FAILED,
        Action.NONE,
        Reason(
            ReasonCode.DRAIN_TIMEOUT,
            f"{failure.message}; not allowed to reboot again in this rollout",
        ),
    )


def _not_offered(scene: _Scene, host: str, progress: HostProgress) -> HostPlan:
    """Not offered the target yet: something blocks the rollout, or its wave is not open."""
    state = HostState.UNEXPECTED if progress.drifted else HostState.PENDING
    blocked = scene.blocked
    if blocked is not None:
        return scene.shared(
            ("blocked", state), state, Action.NONE, blocked.code, lambda: blocked.message
        )
    wave, total = scene.facts.spec.wave_of[host], scene.facts.spec.waves_total
    return scene.shared(
        ("wave", state, wave),
        state,
        Action.NONE,
        ReasonCode.WAVE_NOT_OPEN,
        lambda: f"in wave {wave + 1}/{total}, not open yet",
    )


def _offered(scene: _Scene, host: str, obs: HostObservation, progress: HostProgress) -> HostPlan:
    """Offered the target: staging it, or staged and waiting to be allowed to reboot.

    While the rollout is halted or paused nothing is staged: a host that has not staged the
    target is told nothing, as if it had not been offered; one that has keeps it while
    paused (to reboot into it once the pause is lifted) and drops it while halted
    (:func:`_without_unwanted_staging`).
    """
    facts = scene.facts
    staged = obs.staged_commit == facts.target
    blocked = scene.blocked
    if blocked is not None and not staged:
        return _not_offered(scene, host, progress)
    freeze = facts.freeze
    if not staged:
        state = HostState.UNEXPECTED if progress.drifted else HostState.STAGING
        # Staging goes on during a freeze; the sentence says the reboot will wait.
        frozen = f" ({freeze.describe()})" if freeze.frozen else ""
        return scene.shared(
            ("staging", state),
            state,
            Action.STAGE,
            ReasonCode.WAITING_FOR_STAGE,
            lambda: f"download and stage the target; do not reboot{frozen}",
        )
    state = HostState.UNEXPECTED if progress.drifted else HostState.STAGED
    if blocked is not None:
        return scene.shared(
            ("blocked", state, "staged"),
            state,
            Action.NONE,
            blocked.code,
            lambda: f"{blocked.message}; keeps the staged target until the rollout goes on",
        )
    if freeze.frozen:
        return scene.shared(
            ("frozen", state),
            state,
            Action.STAGE,
            ReasonCode.FROZEN,
            lambda: f"staged; {freeze.describe()}; staging is still allowed",
        )
    window = facts.window_of(host)
    if not window.allowed:
        return scene.shared(
            ("window", state, facts.spec.window_set_of.get(host)),
            state,
            Action.STAGE,
            ReasonCode.WAITING_FOR_WINDOW,
            lambda: window.describe(facts.now),
        )
    key = facts.spec.budget_key[host]
    return scene.shared(
        ("budget", state, key),
        state,
        Action.STAGE,
        ReasonCode.WAITING_FOR_BUDGET,
        lambda: f"staged; waiting for the reboot budget ({_budget_text(facts.spec, key)})",
    )


def _without_unwanted_staging(
    scene: _Scene, host: str, obs: HostObservation | None, plan: HostPlan
) -> HostPlan:
    """A host with nothing to do is told to drop a staged deployment that no reboot may boot:
    rpm-ostree boots it at the next reboot of any kind (a power cut, a kernel panic), outside
    any budget or window. That is a commit Git no longer wants (after a revert, or the target
    of a superseded rollout), the target of a halted rollout, or a target this host failed on.
    """
    if plan.action is not Action.NONE or obs is None or obs.staged_commit is None:
        return plan
    staged, target = obs.staged_commit, scene.facts.target
    if staged != target:
        return scene.shared(
            ("unstage", plan.state, staged),
            plan.state,
            Action.UNSTAGE,
            ReasonCode.UNSTAGE,
            lambda: (
                f"{staged[:12]} is staged but is not the desired commit; "
                "remove the staged deployment"
            ),
        )
    if obs.booted_commit == target:
        return plan
    if scene.facts.failed_here(scene.state, host):
        return HostPlan(
            plan.state,
            Action.UNSTAGE,
            Reason(
                ReasonCode.FAILED_BEFORE,
                f"{plan.reason.message}; remove the staged deployment so that no reboot boots it",
            ),
        )
    halted = scene.blocked
    if scene.rollout.lifecycle is Lifecycle.HALTED and halted is not None:
        return scene.shared(
            ("unstage-halted", plan.state),
            plan.state,
            Action.UNSTAGE,
            ReasonCode.HALTED,
            lambda: (
                f"{halted.message}; remove the staged target so that no reboot boots it "
                "(it is staged again if the rollout resumes)"
            ),
        )
    return plan


def _budget_text(spec: GroupSpec, key: BudgetKey) -> str:
    limit = spec.budget_limit.get(key, 0)
    where = ", ".join(
        f"{label}={value}" for label, value in zip(spec.budget_labels, key, strict=True)
    )
    return f"at most {limit} updating at once" + (f" in {where}" if where else "")


# -- the group ------------------------------------------------------------------------------


def group_status(
    facts: PassFacts,
    state: GroupState,
    hosts: Mapping[str, HostPlan],
    soak_until: datetime | None,
    gate: WaveGate | None = None,
) -> GroupStatus:
    """Where the group's rollout stands, for status output and metrics.

    ``hosts`` are the plans of :func:`host_plans`; ``soak_until`` is when the last opened
    wave stops soaking, if it is soaking; ``gate``, the soaking wave's health gate.
    """
    spec, rollout = facts.spec, current_rollout(state)
    total = spec.waves_total
    opened = min(rollout.waves_opened, total)
    if not spec.order:
        return GroupStatus(GroupPhase.EMPTY, Reason(ReasonCode.NO_HOSTS, "no hosts"), opened, total)
    if rollout.lifecycle is Lifecycle.COMPLETED:
        return _completed_status(facts, opened)
    blocked = facts.blocked(state)
    if blocked is not None:
        if rollout.lifecycle is Lifecycle.HALTED:
            phase = GroupPhase.HALTED
        else:
            phase = GroupPhase.PAUSED if blocked.code is ReasonCode.PAUSED else GroupPhase.WAITING
        return GroupStatus(phase, blocked, opened, total)
    soaking = _soak_status(soak_until, gate, opened, total)
    if soaking is not None:
        return soaking
    waiting = _waiting_for_reboots(facts, hosts)
    if waiting is not None:
        return GroupStatus(*waiting, opened, total)
    end = spec.wave_ends[max(0, opened - 1)]
    done = sum(1 for h in spec.order[:end] if facts.settled(state, h))
    return GroupStatus(
        GroupPhase.PROGRESSING,
        Reason(
            ReasonCode.WAVE_OPENED,
            f"wave {opened}/{total} in progress: {done}/{end} hosts done",
        ),
        opened,
        total,
    )


def _soak_status(
    soak_until: datetime | None, gate: WaveGate | None, opened: int, total: int
) -> GroupStatus | None:
    """The last opened wave soaks, or has soaked and waits for its health checks to pass."""
    waiting = gate is not None and gate.blocking
    if soak_until is not None:
        checks = f"; {gate.waiting_sentence()}" if gate is not None and waiting else ""
        reason = Reason(
            ReasonCode.SOAKING,
            f"wave {opened}/{total} soaking until {soak_until:%Y-%m-%d %H:%MZ}{checks}",
        )
    elif gate is not None and waiting:
        reason = Reason(
            ReasonCode.WAITING_FOR_HEALTH_CHECKS,
            f"wave {opened}/{total} soaked; waiting for health checks: {gate.waiting_sentence()}",
        )
    else:
        return None
    return GroupStatus(GroupPhase.SOAKING, reason, opened, total)


def _waiting_for_reboots(
    facts: PassFacts, hosts: Mapping[str, HostPlan]
) -> tuple[GroupPhase, Reason] | None:
    """Staged hosts wait only for a freeze to end or a window to open, none updating."""
    if any(p.state in (HostState.UPDATING, HostState.DRAINING) for p in hosts.values()):
        return None
    codes = {p.reason.code for p in hosts.values()}
    if ReasonCode.FROZEN in codes:
        return GroupPhase.FROZEN, Reason(ReasonCode.FROZEN, facts.freeze.describe())
    window_wait = next(
        (p.reason for p in hosts.values() if p.reason.code is ReasonCode.WAITING_FOR_WINDOW),
        None,
    )
    return None if window_wait is None else (GroupPhase.WAITING_WINDOW, window_wait)


def _completed_status(facts: PassFacts, opened: int) -> GroupStatus:
    """A completed rollout is in sync while every host runs the target, green."""
    spec = facts.spec
    in_sync = sum(
        1
        for h in spec.order
        if (o := facts.observed.get(h)) is not None
        and o.booted_commit == facts.target
        and o.greenboot is Greenboot.GREEN
        and h not in spec.held
    )
    # Held hosts are out of the rollout: a group is in sync when all the others are.
    wanted = len(spec.order) - len(spec.held)
    everyone = in_sync == wanted
    held = f" ({len(spec.held)} held)" if spec.held else ""
    return GroupStatus(
        GroupPhase.IN_SYNC if everyone else GroupPhase.PROGRESSING,
        Reason(
            ReasonCode.ALL_HOSTS_DONE if everyone else ReasonCode.UNEXPECTED_DRIFT,
            f"{in_sync}/{wanted} hosts run {facts.target[:12]}{held}",
        ),
        opened,
        spec.waves_total,
    )
