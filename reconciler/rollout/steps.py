"""The steps of a planning pass.

:func:`ensure_rollout` settles which rollout the pass is about. Every later step shares one
signature, ``step(facts, ledger) -> StepResult``, like Flux's sub-reconcilers: it reads the
pass's facts and the state the earlier steps' decisions left in the ledger, records its own
decisions there, and hands back when it needs the pass to run again. The planner runs them in
order and folds their results (:meth:`StepResult.then`: the earliest look-again wins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from reconciler.durations import format_minutes
from reconciler.rollout.decisions import Decision, DecisionKind
from reconciler.rollout.drains import follow_drain
from reconciler.rollout.facts import PassFacts
from reconciler.rollout.ledger import Ledger
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.reasons import HOST_SIDE_FAILURE_CODES, Reason, ReasonCode
from reconciler.rollout.spec import BudgetKey, GroupSpec
from reconciler.rollout.state import HostProgress, Lifecycle, Rollout
from reconciler.rollout.wavegate import WaveGate, wave_gate
from reconciler.rollout.windows import RebootWindow


def sooner(now: datetime, current: datetime | None, when: datetime | None) -> datetime | None:
    """The earlier of two look-again times; ``when`` counts only if it is after ``now``."""
    if when is None or when <= now:
        return current
    return when if current is None or when < current else current


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step hands on besides its decisions."""

    wake_at: datetime | None = None  # run the pass again then, even if nothing happens
    soak_until: datetime | None = None  # the last opened wave soaks until then
    gate: WaveGate | None = None  # the soaking wave's health gate, when the group has checks

    def then(self, later: StepResult) -> StepResult:
        """This result folded with the one of a later step."""
        wake = self.wake_at
        if later.wake_at is not None and (wake is None or later.wake_at < wake):
            wake = later.wake_at
        return StepResult(wake, later.soak_until or self.soak_until, later.gate or self.gate)


Step = Callable[[PassFacts, Ledger], StepResult]

_NOTHING = StepResult()


# -- the rollout --------------------------------------------------------------------------


def ensure_rollout(spec: GroupSpec, ledger: Ledger) -> Rollout:
    """A new desired commit starts a rollout, superseding one still in progress.

    Returns the rollout the rest of the pass works on.
    """
    target = spec.target.commit
    current = ledger.state.rollout
    if current is not None and current.target == target:
        return current
    previous = None
    if current is not None:
        previous = current.target
        # A completed rollout can still have a host mid-update (one brought back after
        # drifting); it must finish under the budget like any other.
        in_progress = current.lifecycle in (Lifecycle.ACTIVE, Lifecycle.HALTED)
        if in_progress or any(p.updating for p in current.hosts.values()):
            ledger.decide(
                DecisionKind.ROLLOUT_SUPERSEDED,
                Reason(ReasonCode.SUPERSEDED, f"superseded by {target[:12]} before it was done"),
                caused_by=spec.revision,  # the revision that changed the desired commit
            )
    version = f" ({spec.target.version})" if spec.target.version else ""
    ledger.record(
        Decision(
            DecisionKind.ROLLOUT_STARTED,
            ledger.now,
            Reason(
                ReasonCode.DESIRED_COMMIT_CHANGED, f"desired commit is now {target[:12]}{version}"
            ),
            rollout=ledger.state.rollouts_started + 1,
            commit=target,
            previous=previous,
            revision=spec.revision,
            resume_token=spec.resume_token,
        )
    )
    return ledger.rollout


def resume_if_asked(facts: PassFacts, ledger: Ledger) -> StepResult:
    """A halted rollout resumes when the group's `resume` value in Git changes."""
    rollout = ledger.rollout
    halt, token = rollout.halt, facts.spec.resume_token
    revoked = rollout.target in facts.spec.revoked  # a revoked build is never resumed
    halted = rollout.lifecycle is Lifecycle.HALTED
    if halted and halt and token and token != halt.resume_token and not revoked:
        ledger.decide(
            DecisionKind.ROLLOUT_RESUMED,
            Reason(ReasonCode.RESUMED, f"resumed from the fleet repo (`{token}`)"),
            resume_token=token,
            caused_by=facts.spec.revision,  # the revision that set the new `resume` value
        )
    return _NOTHING


def settle_superseded_hosts(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Hosts mid-update when their rollout was superseded finish before anything new.

    One that reports it has not rebooted yet is told not to (its permission lapses now);
    one that is silent may be rebooting and keeps its budget slot until it reports again
    or its health timeout passes.
    """
    wake = None
    for host, finishing in list(ledger.state.finishing.items()):
        obs = facts.observed.get(host)
        deadline = finishing.reboot_allowed_at + facts.spec.policy.health_timeout
        if host not in facts.spec.wave_of:
            outcome = "left the group"
        elif obs is not None and obs.boot_id != finishing.boot_id_at_reboot:
            outcome = f"rebooted (now on {(obs.booted_commit or 'unknown')[:12]})"
        elif (
            obs is not None
            and obs.received_at > finishing.reboot_allowed_at
            and not facts.stale(obs)
        ):
            # Only a report made after the permission says it has not rebooted: an older one
            # is from before it could act (it may be rebooting right now).
            outcome = "had not rebooted yet; its permission was withdrawn"
        elif facts.now >= deadline:
            outcome = "did not report back within the health timeout"
        else:
            wake = sooner(facts.now, wake, deadline)
            continue
        ledger.record(
            Decision(
                DecisionKind.SUPERSEDED_HOST_FINISHED,
                ledger.now,
                Reason(
                    ReasonCode.SUPERSEDED_HOST_FINISHED,
                    f"{host}, updating to superseded {finishing.target[:12]}, {outcome}",
                ),
                host=host,
                rollout=finishing.rollout,
                commit=finishing.target,
                revision=ledger.rollout.revision,
            )
        )
    return StepResult(wake)


# -- what hosts report ----------------------------------------------------------------------


def watch_silence(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Look again when the first host still heard from turns stale, or the first stale one is
    skipped. Costs one comparison per host."""
    first_to_turn_stale: datetime | None = None
    first_to_be_skipped: datetime | None = None
    stale_cutoff, skip_cutoff = facts.stale_cutoff, facts.skip_cutoff
    for host in facts.spec.order:
        heard = facts.last_heard(facts.observed.get(host))
        if heard > stale_cutoff:
            if first_to_turn_stale is None or heard < first_to_turn_stale:
                first_to_turn_stale = heard
        elif heard > skip_cutoff and (first_to_be_skipped is None or heard < first_to_be_skipped):
            first_to_be_skipped = heard
    policy, wake = facts.spec.policy, None
    if first_to_turn_stale is not None:
        wake = sooner(facts.now, wake, first_to_turn_stale + policy.stale_after)
    if first_to_be_skipped is not None:
        wake = sooner(facts.now, wake, first_to_be_skipped + policy.skip_stale_after)
    return StepResult(wake)


def assess_hosts(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Record successes, failures and drift from what hosts report."""
    wake, state, progress_of = None, ledger.state, ledger.rollout.hosts
    for host in facts.spec.order:
        # A held host is out of the rollout: nothing it does is judged until the hold goes.
        if host not in facts.spec.held and not facts.failed_here(state, host):
            deadline = _assess_host(facts, ledger, host, progress_of.get(host))
            wake = sooner(facts.now, wake, deadline)
    return StepResult(wake)


def _assess_host(
    facts: PassFacts, ledger: Ledger, host: str, progress: HostProgress | None
) -> datetime | None:
    """Judge one host's report; returns the health deadline it is waiting for, if any."""
    obs = facts.observed.get(host)
    if obs is not None and obs.booted_commit == facts.target:
        return _assess_on_target(facts, ledger, host, obs, progress)
    if progress is None or obs is None:
        return _health_deadline(facts, ledger, host, progress)
    if progress.succeeded_at is not None:
        ledger.decide(
            DecisionKind.HOST_DRIFTED,
            Reason(
                ReasonCode.UNEXPECTED_DRIFT,
                f"{host} left the target on its own: it runs {_version_of(facts, obs)}",
            ),
            host=host,
        )
    elif (
        obs.apply_error is not None
        and progress.offered_at
        and obs.apply_error.commit == facts.target
        and progress.failed_at is None
    ):
        _fail(
            ledger,
            host,
            ReasonCode.DEPLOY_ERROR,
            f"{host} could not stage the target: {obs.apply_error.message}",
        )
    elif progress.updating and (
        progress.on_target_since is not None or obs.boot_id != progress.boot_id_at_reboot
    ):
        # It rebooted (or had booted the target) and now runs something else.
        _fail(
            ledger,
            host,
            ReasonCode.FELL_BACK,
            f"{host} rebooted but booted {_version_of(facts, obs)} instead of the "
            "target: greenboot fell back",
        )
    else:
        return _health_deadline(facts, ledger, host, progress)
    return None


def _assess_on_target(
    facts: PassFacts,
    ledger: Ledger,
    host: str,
    obs: HostObservation,
    progress: HostProgress | None,
) -> datetime | None:
    """A host that booted the target succeeds on green, fails on red, and otherwise has the
    health timeout to get a verdict: counted from its reboot permission or, if it got there
    on its own, from now."""
    if obs.greenboot is Greenboot.RED:
        _fail(
            ledger,
            host,
            ReasonCode.GREENBOOT_RED,
            f"{host} booted {_version_of(facts, obs)} and greenboot reports red",
        )
        return None
    if obs.greenboot is Greenboot.GREEN:
        if progress is None or progress.succeeded_at is None:
            ledger.decide(
                DecisionKind.HOST_SUCCEEDED,
                Reason(
                    ReasonCode.IN_SYNC, f"{host} runs {_version_of(facts, obs)}, greenboot green"
                ),
                host=host,
            )
        return None
    if progress is None or (
        progress.reboot_allowed_at is None and progress.on_target_since is None
    ):
        ledger.decide(
            DecisionKind.HOST_ON_TARGET,
            Reason(
                ReasonCode.WAITING_FOR_HEALTH,
                f"{host} runs the target; waiting for greenboot green",
            ),
            host=host,
        )
        progress = ledger.rollout.hosts[host]
    return _health_deadline(facts, ledger, host, progress)


def _health_deadline(
    facts: PassFacts, ledger: Ledger, host: str, progress: HostProgress | None
) -> datetime | None:
    """An updating host fails once its health timeout has passed; until then, the deadline.

    A host whose agent holds its reboot back to drain it has the drain timeout instead, and
    its health timeout counts from when it was seen drained (rule 16).
    """
    if progress is None or not progress.updating:
        return None
    if progress.reboot_allowed_at is not None:
        drain_deadline = follow_drain(facts, ledger, host, progress)
        progress = ledger.rollout.hosts[host]
        if drain_deadline is not None or not progress.updating:
            return drain_deadline
    started = progress.drained_at or progress.reboot_allowed_at or progress.on_target_since
    assert started is not None
    timeout = facts.spec.policy.health_timeout
    deadline = started + timeout
    if facts.now < deadline:
        return deadline
    _fail(
        ledger,
        host,
        ReasonCode.HEALTH_TIMEOUT,
        f"{host} was not healthy on the target within {format_minutes(timeout)}",
    )
    return None


def _version_of(facts: PassFacts, obs: HostObservation) -> str:
    if obs.booted_commit == facts.target and facts.spec.target.version:
        return facts.spec.target.version
    return obs.booted_version or (obs.booted_commit or "an unknown commit")[:12]


def _fail(ledger: Ledger, host: str, code: ReasonCode, message: str) -> None:
    ledger.decide(DecisionKind.HOST_FAILED, Reason(code, message), host=host)


# -- the rollout's progress -----------------------------------------------------------------


def halt_if_revoked(facts: PassFacts, ledger: Ledger) -> StepResult:
    """A rollout whose target is revoked in fleet.yaml halts at once, with the reason given.

    Validation refuses a stream or pin that names a revoked build, so this is a second
    line: whatever the way a revoked target came to be desired, nothing more is offered.
    """
    rollout, spec = ledger.rollout, facts.spec
    why = spec.revoked.get(rollout.target)
    if why is None or rollout.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.COMPLETED):
        return _NOTHING
    ledger.decide(
        DecisionKind.ROLLOUT_HALTED,
        Reason(ReasonCode.REVOKED, f"{rollout.target[:12]} is revoked in fleet.yaml: {why}"),
        resume_token=spec.resume_token,
        caused_by=spec.revision,
    )
    return _NOTHING


def halt_on_failures(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Halt once the failures since the rollout began (or resumed) reach the threshold."""
    rollout, spec = ledger.rollout, facts.spec
    if rollout.lifecycle not in (Lifecycle.ACTIVE, Lifecycle.COMPLETED):
        return _NOTHING
    since = rollout.failures_counted_since or rollout.started_at
    failures = [
        (h, p)
        for h, p in rollout.hosts.items()
        if p.failed_at is not None
        and p.failed_at >= since
        and h in spec.wave_of
        # A host that could not be drained says nothing about the build (rule 16).
        and (p.failure is None or p.failure.code not in HOST_SIDE_FAILURE_CODES)
    ]
    if len(failures) < spec.failure_threshold:
        return _NOTHING
    first = "; ".join(p.failure.message for _, p in failures[:3] if p.failure)
    ledger.decide(
        DecisionKind.ROLLOUT_HALTED,
        Reason(
            ReasonCode.FAILURE_THRESHOLD,
            f"halted after {len(failures)} failure(s) (threshold "
            f"{spec.failure_threshold}): {first}",
        ),
        resume_token=spec.resume_token,
        caused_by=spec.revision,  # the revision in force when it halted
    )
    return _NOTHING


def advance_waves(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Complete the open wave once all its hosts settled; open the next once it has soaked."""
    rollout, ends = ledger.rollout, facts.spec.wave_ends
    if rollout.lifecycle is not Lifecycle.ACTIVE:
        return _NOTHING
    while True:
        # Capped: Git may have shrunk the waves (or the group) since they were opened.
        opened = min(rollout.waves_opened, len(ends))
        if opened > 0 and (opened - 1) not in rollout.wave_done_at:
            last = opened - 1
            if not all(facts.settled(ledger.state, h) for h in facts.spec.order[: ends[last]]):
                return _NOTHING
            ledger.decide(
                DecisionKind.WAVE_COMPLETED,
                Reason(ReasonCode.WAVE_DONE, f"wave {opened}/{len(ends)} done"),
                wave=last,
            )
        if opened >= len(ends) or facts.blocked(ledger.state) is not None:
            return _NOTHING
        passed = ""
        if opened > 0 and (opened - 1) in rollout.waves_updated:
            done = rollout.wave_done_at[opened - 1]
            soak_from = max(done, rollout.last_failure_at or done)
            soak_end = soak_from + facts.spec.soak_time
            gate = wave_gate(facts, rollout, opened - 1, soak_from)
            if gate is not None and gate.halting:
                _halt_on_gate(facts, ledger, gate, opened)
                return _NOTHING
            if facts.now < soak_end:
                return StepResult(wake_at=soak_end, soak_until=soak_end, gate=gate)
            if gate is not None and gate.blocking:
                # No wake-up time: each new evaluation the daemon stores asks for a pass.
                return StepResult(gate=gate)
            if gate is not None and gate.passed_sentence():
                passed = f"; {gate.passed_sentence()}"  # a gate verdict that moved the rollout
        ledger.decide(
            DecisionKind.WAVE_OPENED,
            Reason(
                ReasonCode.WAVE_OPENED,
                f"wave {opened + 1}/{len(ends)} opened: {ends[opened]} of {ends[-1]} hosts{passed}",
            ),
            wave=opened,
        )


def _halt_on_gate(facts: PassFacts, ledger: Ledger, gate: WaveGate, opened: int) -> None:
    """A health check failed over the soak: halt as a greenboot failure would."""
    failed = gate.halting[0]
    ledger.decide(
        DecisionKind.ROLLOUT_HALTED,
        Reason(
            ReasonCode.HEALTH_CHECK_FAILED,
            f"halted in the soak of wave {opened}/{facts.spec.waves_total}: {failed.reason}",
        ),
        resume_token=facts.spec.resume_token,
        caused_by=facts.spec.revision,
    )


def _may_offer(facts: PassFacts, ledger: Ledger) -> bool:
    lifecycle = ledger.rollout.lifecycle
    return (
        lifecycle in (Lifecycle.ACTIVE, Lifecycle.COMPLETED) and facts.blocked(ledger.state) is None
    )


def offer_target(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Every host of an open wave (any host, once the rollout completed) may stage the target."""
    if not _may_offer(facts, ledger):
        return _NOTHING
    rollout, spec = ledger.rollout, facts.spec
    opened = rollout.waves_opened
    for host in spec.order:
        wave = spec.wave_of[host]
        if wave >= opened and rollout.lifecycle is Lifecycle.ACTIVE:
            continue
        progress = rollout.hosts.get(host)
        if progress is not None and (
            progress.offered_at or progress.succeeded_at or progress.failed_at
        ):
            continue
        if facts.failed_here(ledger.state, host) or host in spec.held:
            continue
        obs = facts.observed.get(host)
        if obs is None:
            # Never heard from: it cannot be told anything before it reports, and the pass its
            # first report causes offers it the target if it needs it. Offering it blind would
            # mark its wave as updated, so a wave whose hosts already ran the target would soak.
            continue
        if obs.booted_commit == facts.target:
            continue  # already there; waiting for greenboot, not for an update
        ledger.decide(
            DecisionKind.HOST_OFFERED,
            Reason(ReasonCode.STAGE_TARGET, f"{host} may stage the target"),
            host=host,
            wave=wave,
        )
    return _NOTHING


# -- reboots ----------------------------------------------------------------------------------


def revoke_lapsed_reboots(facts: PassFacts, ledger: Ledger) -> StepResult:
    """A host told to reboot that has not, once reboots are no longer allowed (or the host
    is held), is told no."""
    held, freeze = facts.spec.held, facts.freeze
    # Lapsed for every host alike (a freeze, a halt, a pause), or only for the hosts whose
    # own windows are closed. The group's windows count even when no member uses them: a
    # host that left the group mid-update is judged by them.
    all_lapsed = freeze.frozen or not _may_offer(facts, ledger)
    some_closed = not all(w.allowed for w in (facts.window, *facts.host_windows))
    if not all_lapsed and not some_closed and not held:
        return _NOTHING
    for host, progress in list(ledger.rollout.hosts.items()):
        if not progress.updating:
            continue
        window = facts.window_of(host)
        lapsed = all_lapsed or not window.allowed
        if not (lapsed or host in held):
            continue
        obs = facts.observed.get(host)
        if (
            obs is not None
            and obs.boot_id == progress.boot_id_at_reboot
            and obs.booted_commit != facts.target
        ):
            reason = (
                Reason(ReasonCode.HELD, f"{host} is held in the inventory: {held[host]}")
                if host in held
                else Reason(
                    ReasonCode.REBOOT_REVOKED,
                    f"{host} did not reboot in time; {_lapse_reason(facts, ledger, window)}",
                )
            )
            ledger.decide(DecisionKind.REBOOT_REVOKED, reason, host=host)
    return _NOTHING


def _lapse_reason(facts: PassFacts, ledger: Ledger, window: RebootWindow) -> str:
    """Why a host's reboot permission lapsed: a freeze, its window closing, or a block."""
    if facts.freeze.frozen:
        return facts.freeze.describe()
    if not window.allowed:
        return window.describe(facts.now)
    return (facts.blocked(ledger.state) or Reason(ReasonCode.HALTED, "halted")).message


def unavailable_by_bucket(facts: PassFacts, ledger: Ledger) -> dict[BudgetKey, int]:
    """Hosts that count against the reboot budget: updating, holding a FleetLock reboot
    lock, stale or still finishing; each once, whichever way it reboots.

    A host that has never reported is not stale for the budget: it was never allowed to
    reboot, so it cannot be down because of us, and counting it would let one server that was
    never switched on hold its bucket's budget until it is skipped.
    """
    counts: dict[BudgetKey, int] = {}
    rollout, state, spec = ledger.rollout, ledger.state, facts.spec
    for host in spec.order:
        if host in state.locks:
            # A lock is a reboot its client may be doing now, held or not.
            key = spec.budget_key[host]
            counts[key] = counts.get(key, 0) + 1
            continue
        if host in spec.held:
            continue  # out of the rollout: held hosts do not use the budget
        progress = rollout.hosts.get(host)
        busy = (progress is not None and progress.updating) or host in state.finishing
        obs = facts.observed.get(host)
        # Silent hosts count until they are written off as skipped, so one dead server
        # does not hold its group's rollout forever.
        silent = (
            obs is not None
            and facts.stale(obs)
            and not facts.skipped(obs)
            and not facts.failed_here(state, host)
        )
        if busy or silent:
            key = spec.budget_key[host]
            counts[key] = counts.get(key, 0) + 1
    return counts


def grant_reboots(facts: PassFacts, ledger: Ledger) -> StepResult:
    """Staged hosts may reboot inside a window and outside a freeze, as far as the reboot
    budget allows."""
    spec, now = facts.spec, facts.now
    wake = sooner(now, sooner(now, None, facts.windows_change_at()), facts.freeze.changes_at)
    if facts.freeze.frozen or not _may_offer(facts, ledger):
        return StepResult(wake)
    if not any(w.allowed for w in facts.windows_in_use()):
        return StepResult(wake)
    unavailable = unavailable_by_bucket(facts, ledger)
    rollout = ledger.rollout
    for host in spec.order:
        progress = rollout.hosts.get(host)
        if (
            progress is None
            or progress.offered_at is None
            or progress.reboot_allowed_at
            or progress.succeeded_at
            or progress.failed_at
            or host in spec.held
        ):
            continue
        window = facts.window_of(host)
        if not window.allowed:
            continue
        obs = facts.observed.get(host)
        if obs is None or obs.staged_commit != facts.target or obs.booted_commit == facts.target:
            continue
        if facts.stale(obs):
            continue
        key = spec.budget_key[host]
        if unavailable.get(key, 0) >= spec.budget_limit.get(key, 0):
            continue
        unavailable[key] = unavailable.get(key, 0) + 1
        ledger.decide(
            DecisionKind.REBOOT_ALLOWED,
            Reason(
                ReasonCode.REBOOT_ALLOWED,
                f"{host} may reboot into the target; {window.describe(now)}",
            ),
            host=host,
            boot_id=obs.boot_id,
        )
        wake = sooner(now, wake, now + spec.policy.health_timeout)
    return StepResult(wake)


def complete_if_done(facts: PassFacts, ledger: Ledger) -> StepResult:
    """The rollout completes when its last wave is done."""
    rollout, spec = ledger.rollout, facts.spec
    if rollout.lifecycle is not Lifecycle.ACTIVE or rollout.waves_opened < spec.waves_total:
        return _NOTHING
    if (spec.waves_total - 1) not in rollout.wave_done_at:
        return _NOTHING
    succeeded = sum(1 for p in rollout.hosts.values() if p.succeeded_at)
    ledger.decide(
        DecisionKind.ROLLOUT_COMPLETED,
        Reason(
            ReasonCode.ALL_HOSTS_DONE,
            f"rollout of {facts.target[:12]} completed: {succeeded} of "
            f"{len(spec.order)} hosts on the target",
        ),
    )
    return _NOTHING
