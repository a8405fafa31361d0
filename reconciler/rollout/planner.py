"""The rollout planner: a pure function from desired, observed and durable state to decisions.

``plan_group(spec, state, observed, completed_elsewhere, now)`` reads no clock, disk, network
or metric. It returns the decisions to persist (each with its reason), what every host should
do now and why, and when to look again. Level-triggered: it decides from scratch on every
pass, so a missed event costs nothing and a restart decides the same as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from reconciler.durations import format_minutes
from reconciler.rollout.decisions import Decision, DecisionKind, apply_decision
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.spec import BudgetKey, GroupSpec
from reconciler.rollout.state import GroupState, HostProgress, Phase, Rollout
from reconciler.rollout.windows import RebootWindow, reboot_window


class Action(StrEnum):
    """What a host's agent is told to do."""

    NONE = "none"
    STAGE = "stage"  # pull and deploy the target for the next boot; never reboot
    REBOOT = "reboot"  # reboot into the staged target now
    UNSTAGE = "unstage"  # drop a staged deployment that is not the target (rpm-ostree cleanup -p)


class HostState(StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    STAGING = "staging"
    STAGED = "staged"
    UPDATING = "updating"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    STALE = "stale"
    UNEXPECTED = "unexpected"


class GroupPhase(StrEnum):
    IN_SYNC = "in_sync"
    PROGRESSING = "progressing"
    SOAKING = "soaking"
    WAITING = "waiting"
    WAITING_WINDOW = "waiting_window"  # hosts are staged; reboots wait for a window
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


@dataclass(frozen=True)
class GroupPlan:
    """The result of one planning pass over one group."""

    spec: GroupSpec
    state: GroupState  # the state after the decisions below
    decisions: tuple[Decision, ...]
    hosts: Mapping[str, HostPlan]
    status: GroupStatus
    requeue_at: datetime | None  # look again then at the latest, even if nothing happens

    def requeue_after(self, now: datetime) -> timedelta | None:
        return None if self.requeue_at is None else max(timedelta(0), self.requeue_at - now)


def plan_group(
    spec: GroupSpec,
    state: GroupState,
    observed: Mapping[str, HostObservation],
    completed_elsewhere: Mapping[str, Mapping[str, datetime]],
    now: datetime,
) -> GroupPlan:
    """Decide what ``spec``'s group does at ``now``.

    ``completed_elsewhere`` maps each group in ``spec.depends_on`` to the commits it has
    completed; ``state`` is not modified.
    """
    return _Pass(spec, state.copy(), observed, completed_elsewhere, now).run()


class _Pass:
    """One planning pass; a class only to share its inputs between the steps."""

    def __init__(
        self,
        spec: GroupSpec,
        state: GroupState,
        observed: Mapping[str, HostObservation],
        completed_elsewhere: Mapping[str, Mapping[str, datetime]],
        now: datetime,
    ) -> None:
        self.spec, self.state, self.observed, self.now = spec, state, observed, now
        self.completed_elsewhere = completed_elsewhere
        self.target = spec.target.commit
        self.policy = spec.policy
        self.decisions: list[Decision] = []
        self.next_look: datetime | None = None
        self._shared_plans: dict[tuple[object, ...], HostPlan] = {}
        self.failed_here = {h for h, commits in state.failed.items() if self.target in commits}
        self.window: RebootWindow = reboot_window(spec.windows, now, spec.policy.reboot_margin)
        self.soak_until: datetime | None = None
        self.stale_cutoff = now - spec.policy.stale_after
        self.skip_cutoff = now - spec.policy.skip_stale_after
        self._blocked: Reason | object | None = _UNKNOWN

    # -- plumbing ---------------------------------------------------------------------------

    def decide(self, kind: DecisionKind, reason: Reason, **fields: object) -> None:
        """Record a decision and apply it to the working state.

        It is stamped with the rollout it belongs to (number, target, and the fleet-repo
        revision that caused it): the new one for ``rollout_started``,
        the current one (e.g. the superseded one) for everything else.
        """
        current = self.state.rollout
        if kind is DecisionKind.ROLLOUT_STARTED or current is None:
            fields.setdefault("commit", self.target)
            fields.setdefault("rollout", self.state.rollouts_started + 1)
        else:
            fields.setdefault("commit", current.target)
            fields.setdefault("rollout", current.number)
            fields.setdefault("revision", current.revision)  # every event traces to a commit
        decision = Decision(kind, self.now, reason, **fields)  # type: ignore[arg-type]
        apply_decision(self.state, decision)
        self.decisions.append(decision)
        self._blocked = _UNKNOWN  # a decision may change what blocks the rollout
        if kind is DecisionKind.HOST_FAILED and decision.host is not None:
            self.failed_here.add(decision.host)

    def wake_at(self, when: datetime | None) -> None:
        """Ask for another pass at ``when`` (the earliest request wins)."""
        if when is None or when <= self.now:
            return
        if self.next_look is None or when < self.next_look:
            self.next_look = when

    @property
    def rollout(self) -> Rollout:
        assert self.state.rollout is not None
        return self.state.rollout

    def last_heard(self, obs: HostObservation | None) -> datetime:
        """When the host last reported; one that never did is silent since the rollout began."""
        return self.rollout.started_at if obs is None else obs.received_at

    def stale(self, obs: HostObservation | None) -> bool:
        return self.last_heard(obs) <= self.stale_cutoff

    def skipped(self, obs: HostObservation | None) -> bool:
        return self.last_heard(obs) <= self.skip_cutoff

    def settled(self, host: str) -> bool:
        """Finished for wave purposes: succeeded, failed on the target, or skipped as stale."""
        progress = self.rollout.hosts.get(host)
        if progress is not None and (progress.succeeded_at or progress.failed_at):
            return True
        if host in self.failed_here:
            return True
        return self.skipped(self.observed.get(host))

    # -- the pass ---------------------------------------------------------------------------

    def run(self) -> GroupPlan:
        self.ensure_rollout()
        self.resume_if_asked()
        self.settle_superseded_hosts()
        self.assess_hosts()
        self.halt_on_failures()
        self.advance_waves()
        self.offer_target()
        self.revoke_lapsed_reboots()
        self.grant_reboots()
        self.complete_if_done()
        hosts = {
            host: self.without_stray_staging(host, self.host_plan(host)) for host in self.spec.order
        }
        return GroupPlan(
            self.spec,
            self.state,
            tuple(self.decisions),
            hosts,
            self.status(hosts),
            self.next_look,
        )

    def ensure_rollout(self) -> None:
        """A new desired commit starts a rollout, superseding one still in progress."""
        current = self.state.rollout
        if current is not None and current.target == self.target:
            return
        previous = None
        if current is not None:
            previous = current.target
            # A completed rollout can still have a host mid-update (one brought back after
            # drifting); it must finish under the budget like any other.
            in_progress = current.phase in (Phase.ACTIVE, Phase.HALTED)
            if in_progress or any(p.updating for p in current.hosts.values()):
                self.decide(
                    DecisionKind.ROLLOUT_SUPERSEDED,
                    Reason(
                        ReasonCode.SUPERSEDED,
                        f"superseded by {self.target[:12]} before it was done",
                    ),
                )
        version = f" ({self.spec.target.version})" if self.spec.target.version else ""
        self.decide(
            DecisionKind.ROLLOUT_STARTED,
            Reason(
                ReasonCode.DESIRED_COMMIT_CHANGED,
                f"desired commit is now {self.target[:12]}{version}",
            ),
            previous=previous,
            revision=self.spec.revision,
            resume_token=self.spec.resume_token,
        )

    def resume_if_asked(self) -> None:
        halt = self.rollout.halt
        token = self.spec.resume_token
        if self.rollout.phase is Phase.HALTED and halt and token and token != halt.resume_token:
            self.decide(
                DecisionKind.ROLLOUT_RESUMED,
                Reason(ReasonCode.RESUMED, f"resumed from the fleet repo (`{token}`)"),
                resume_token=token,
            )

    def settle_superseded_hosts(self) -> None:
        """Hosts mid-update when their rollout was superseded finish before anything new.

        One that reports it has not rebooted yet is told not to (its permission lapses now);
        one that is silent may be rebooting and keeps its budget slot until it reports again
        or its health timeout passes.
        """
        for host, finishing in list(self.state.finishing.items()):
            obs = self.observed.get(host)
            deadline = finishing.reboot_allowed_at + self.policy.health_timeout
            if host not in self.spec.wave_of:
                outcome = "left the group"
            elif obs is not None and obs.boot_id != finishing.boot_id_at_reboot:
                outcome = f"rebooted (now on {(obs.booted_commit or 'unknown')[:12]})"
            elif obs is not None and not self.stale(obs):
                outcome = "had not rebooted yet; its permission was withdrawn"
            elif self.now >= deadline:
                outcome = "did not report back within the health timeout"
            else:
                self.wake_at(deadline)
                continue
            self.decide(
                DecisionKind.SUPERSEDED_HOST_FINISHED,
                Reason(
                    ReasonCode.SUPERSEDED_HOST_FINISHED,
                    f"{host}, updating to superseded {finishing.target[:12]}, {outcome}",
                ),
                host=host,
                commit=finishing.target,
                rollout=finishing.rollout,
            )

    def assess_hosts(self) -> None:
        """Record successes, failures and drift from what hosts report."""
        rollout, target = self.rollout, self.target
        failed_here = self.failed_here
        # Silence thresholds cost one comparison per host; the next look is taken from the
        # host that crosses one first.
        first_to_turn_stale: datetime | None = None
        first_to_be_skipped: datetime | None = None
        for host in self.spec.order:
            obs = self.observed.get(host)
            heard = self.last_heard(obs)
            if heard > self.stale_cutoff:
                if first_to_turn_stale is None or heard < first_to_turn_stale:
                    first_to_turn_stale = heard
            elif heard > self.skip_cutoff and (
                first_to_be_skipped is None or heard < first_to_be_skipped
            ):
                first_to_be_skipped = heard
            if host in failed_here:
                continue
            progress = rollout.hosts.get(host)
            on_target = obs is not None and obs.booted_commit == target
            if obs is not None and on_target:
                if obs.greenboot is Greenboot.RED:
                    self.fail(
                        host,
                        ReasonCode.GREENBOOT_RED,
                        f"{host} booted {self.version_of(obs)} and greenboot reports red",
                    )
                elif obs.greenboot is Greenboot.GREEN:
                    if progress is None or progress.succeeded_at is None:
                        self.decide(
                            DecisionKind.HOST_SUCCEEDED,
                            Reason(
                                ReasonCode.IN_SYNC,
                                f"{host} runs {self.version_of(obs)}, greenboot green",
                            ),
                            host=host,
                        )
                else:
                    self.await_health(host, progress)
                continue
            if progress is None or obs is None:
                self.check_health_deadline(host, progress)
                continue
            if progress.succeeded_at is not None:
                self.decide(
                    DecisionKind.HOST_DRIFTED,
                    Reason(
                        ReasonCode.UNEXPECTED_DRIFT,
                        f"{host} left the target on its own: it runs {self.version_of(obs)}",
                    ),
                    host=host,
                )
            elif (
                obs.apply_error is not None
                and progress.offered_at
                and obs.apply_error.commit == target
                and progress.failed_at is None
            ):
                self.fail(
                    host,
                    ReasonCode.DEPLOY_ERROR,
                    f"{host} could not stage the target: {obs.apply_error.message}",
                )
            elif progress.updating and (
                progress.on_target_since is not None or obs.boot_id != progress.boot_id_at_reboot
            ):
                # It rebooted (or had booted the target) and now runs something else.
                self.fail(
                    host,
                    ReasonCode.FELL_BACK,
                    f"{host} rebooted but booted {self.version_of(obs)} instead of the "
                    "target: greenboot fell back",
                )
            else:
                self.check_health_deadline(host, progress)
        if first_to_turn_stale is not None:
            self.wake_at(first_to_turn_stale + self.policy.stale_after)
        if first_to_be_skipped is not None:
            self.wake_at(first_to_be_skipped + self.policy.skip_stale_after)

    def await_health(self, host: str, progress: HostProgress | None) -> None:
        """A host on the target without a green verdict has the health timeout to get one,
        counted from its reboot permission or, if it got there on its own, from now."""
        if progress is None or (
            progress.reboot_allowed_at is None and progress.on_target_since is None
        ):
            self.decide(
                DecisionKind.HOST_ON_TARGET,
                Reason(
                    ReasonCode.WAITING_FOR_HEALTH,
                    f"{host} runs the target; waiting for greenboot green",
                ),
                host=host,
            )
            progress = self.rollout.hosts[host]
        self.check_health_deadline(host, progress)

    def check_health_deadline(self, host: str, progress: HostProgress | None) -> None:
        if progress is None or not progress.updating:
            return
        started = progress.reboot_allowed_at or progress.on_target_since
        assert started is not None
        deadline = started + self.policy.health_timeout
        if self.now >= deadline:
            self.fail(
                host,
                ReasonCode.HEALTH_TIMEOUT,
                f"{host} was not healthy on the target within "
                f"{format_minutes(self.policy.health_timeout)}",
            )
        else:
            self.wake_at(deadline)

    def version_of(self, obs: HostObservation) -> str:
        if obs.booted_commit == self.target and self.spec.target.version:
            return self.spec.target.version
        return obs.booted_version or (obs.booted_commit or "an unknown commit")[:12]

    def fail(self, host: str, code: ReasonCode, message: str) -> None:
        self.decide(DecisionKind.HOST_FAILED, Reason(code, message), host=host)

    def halt_on_failures(self) -> None:
        rollout = self.rollout
        if rollout.phase not in (Phase.ACTIVE, Phase.COMPLETED):
            return
        since = rollout.failures_counted_since or rollout.started_at
        failures = [
            (h, p)
            for h, p in rollout.hosts.items()
            if p.failed_at is not None and p.failed_at >= since and h in self.spec.wave_of
        ]
        if len(failures) < self.spec.failure_threshold:
            return
        first = "; ".join(p.failure.message for _, p in failures[:3] if p.failure)
        self.decide(
            DecisionKind.ROLLOUT_HALTED,
            Reason(
                ReasonCode.FAILURE_THRESHOLD,
                f"halted after {len(failures)} failure(s) (threshold "
                f"{self.spec.failure_threshold}): {first}",
            ),
            resume_token=self.spec.resume_token,
        )

    def blocked(self) -> Reason | None:
        """Why no new wave may open and no new host may be offered, if anything stops it."""
        if self._blocked is _UNKNOWN:
            self._blocked = self._find_block()
        return self._blocked  # type: ignore[return-value]

    def _find_block(self) -> Reason | None:
        rollout = self.rollout
        if rollout.phase is Phase.HALTED and rollout.halt is not None:
            return Reason(ReasonCode.HALTED, rollout.halt.reason.message)
        if self.spec.paused:
            return Reason(ReasonCode.PAUSED, "paused in the fleet repo")
        if rollout.waves_opened == 0:
            waiting = [
                g
                for g in self.spec.depends_on
                if self.target not in self.completed_elsewhere.get(g, {})
            ]
            if waiting:
                return Reason(
                    ReasonCode.WAITING_FOR_DEPENDENCY,
                    f"waiting for {', '.join(waiting)} to complete {self.target[:12]}",
                )
            if self.state.finishing:
                return Reason(
                    ReasonCode.WAITING_FOR_SUPERSEDED_HOSTS,
                    f"waiting for {len(self.state.finishing)} host(s) still updating "
                    "to a superseded commit",
                )
        return None

    def advance_waves(self) -> None:
        rollout, ends = self.rollout, self.spec.wave_ends
        if rollout.phase is not Phase.ACTIVE:
            return
        while True:
            # Capped: Git may have shrunk the waves (or the group) since they were opened.
            opened = min(rollout.waves_opened, len(ends))
            if opened > 0 and (opened - 1) not in rollout.wave_done_at:
                last = opened - 1
                if not all(self.settled(h) for h in self.spec.order[: ends[last]]):
                    return
                self.decide(
                    DecisionKind.WAVE_COMPLETED,
                    Reason(ReasonCode.WAVE_DONE, f"wave {opened}/{len(ends)} done"),
                    wave=last,
                )
            if opened >= len(ends) or self.blocked() is not None:
                return
            if opened > 0 and (opened - 1) in rollout.waves_updated:
                done = rollout.wave_done_at[opened - 1]
                soak_from = max(done, rollout.last_failure_at or done)
                soak_end = soak_from + self.spec.soak_time
                if self.now < soak_end:
                    self.soak_until = soak_end
                    self.wake_at(soak_end)
                    return
            self.decide(
                DecisionKind.WAVE_OPENED,
                Reason(
                    ReasonCode.WAVE_OPENED,
                    f"wave {opened + 1}/{len(ends)} opened: {ends[opened]} of {ends[-1]} hosts",
                ),
                wave=opened,
            )

    def may_offer(self) -> bool:
        return self.rollout.phase in (Phase.ACTIVE, Phase.COMPLETED) and self.blocked() is None

    def offer_target(self) -> None:
        if not self.may_offer():
            return
        rollout, opened = self.rollout, self.rollout.waves_opened
        for host in self.spec.order:
            wave = self.spec.wave_of[host]
            if wave >= opened and rollout.phase is Phase.ACTIVE:
                continue
            progress = rollout.hosts.get(host)
            if progress is not None and (
                progress.offered_at or progress.succeeded_at or progress.failed_at
            ):
                continue
            if host in self.failed_here:
                continue
            obs = self.observed.get(host)
            if obs is not None and obs.booted_commit == self.target:
                continue  # already there; waiting for greenboot, not for an update
            self.decide(
                DecisionKind.HOST_OFFERED,
                Reason(ReasonCode.STAGE_TARGET, f"{host} may stage the target"),
                host=host,
                wave=wave,
            )

    def revoke_lapsed_reboots(self) -> None:
        """A host told to reboot that has not, once reboots are no longer allowed, is told no."""
        if self.window.allowed and self.may_offer():
            return
        why = (
            self.window.describe(self.now)
            if not self.window.allowed
            else (self.blocked() or Reason(ReasonCode.HALTED, "halted")).message
        )
        for host, progress in list(self.rollout.hosts.items()):
            if not progress.updating:
                continue
            obs = self.observed.get(host)
            if (
                obs is not None
                and obs.boot_id == progress.boot_id_at_reboot
                and obs.booted_commit != self.target
            ):
                self.decide(
                    DecisionKind.REBOOT_REVOKED,
                    Reason(ReasonCode.REBOOT_REVOKED, f"{host} did not reboot in time; {why}"),
                    host=host,
                )

    def unavailable_by_bucket(self) -> dict[BudgetKey, int]:
        """Hosts that count against the reboot budget: updating, stale or still finishing."""
        counts: dict[BudgetKey, int] = {}
        rollout = self.rollout
        for host in self.spec.order:
            progress = rollout.hosts.get(host)
            busy = (progress is not None and progress.updating) or host in self.state.finishing
            obs = self.observed.get(host)
            # Silent hosts count until they are written off as skipped, so one dead server
            # does not hold its group's rollout forever.
            silent = self.stale(obs) and not self.skipped(obs) and host not in self.failed_here
            if busy or silent:
                key = self.spec.budget_key[host]
                counts[key] = counts.get(key, 0) + 1
        return counts

    def grant_reboots(self) -> None:
        if not (self.window.allowed and self.may_offer()):
            if self.window.changes_at is not None:
                self.wake_at(self.window.changes_at)
            return
        if self.window.changes_at is not None:
            self.wake_at(self.window.changes_at)
        unavailable = self.unavailable_by_bucket()
        rollout = self.rollout
        for host in self.spec.order:
            progress = rollout.hosts.get(host)
            if (
                progress is None
                or progress.offered_at is None
                or progress.reboot_allowed_at
                or progress.succeeded_at
                or progress.failed_at
            ):
                continue
            obs = self.observed.get(host)
            if obs is None or obs.staged_commit != self.target or obs.booted_commit == self.target:
                continue
            if self.stale(obs):
                continue
            key = self.spec.budget_key[host]
            if unavailable.get(key, 0) >= self.spec.budget_limit.get(key, 0):
                continue
            unavailable[key] = unavailable.get(key, 0) + 1
            self.decide(
                DecisionKind.REBOOT_ALLOWED,
                Reason(
                    ReasonCode.REBOOT_ALLOWED,
                    f"{host} may reboot into the target; {self.window.describe(self.now)}",
                ),
                host=host,
                boot_id=obs.boot_id,
            )
            self.wake_at(self.now + self.policy.health_timeout)

    def complete_if_done(self) -> None:
        rollout = self.rollout
        if rollout.phase is not Phase.ACTIVE or rollout.waves_opened < self.spec.waves_total:
            return
        if (self.spec.waves_total - 1) not in rollout.wave_done_at:
            return
        succeeded = sum(1 for p in rollout.hosts.values() if p.succeeded_at)
        self.decide(
            DecisionKind.ROLLOUT_COMPLETED,
            Reason(
                ReasonCode.ALL_HOSTS_DONE,
                f"rollout of {self.target[:12]} completed: {succeeded} of "
                f"{len(self.spec.order)} hosts on the target",
            ),
        )

    # -- explanations -----------------------------------------------------------------------

    def host_plan(self, host: str) -> HostPlan:
        target, rollout = self.target, self.rollout
        failed = self.state.failed_on(host, target) if host in self.failed_here else None
        if failed is not None:
            state = (
                HostState.ROLLED_BACK
                if failed.reason.code is ReasonCode.FELL_BACK
                else HostState.FAILED
            )
            return HostPlan(
                state,
                Action.NONE,
                Reason(
                    ReasonCode.FAILED_BEFORE,
                    f"failed on this commit and is not offered it again: {failed.reason.message}",
                ),
            )
        obs = self.observed.get(host)
        progress = rollout.hosts.get(host) or _NO_PROGRESS
        if obs is not None and obs.booted_commit == target and obs.greenboot is Greenboot.GREEN:
            return _IN_SYNC
        if self.stale(obs):
            seen = (
                "never reported"
                if obs is None
                else f"last report {format_minutes(self.now - obs.received_at)} ago"
            )
            code = ReasonCode.SKIPPED_STALE if self.skipped(obs) else ReasonCode.STALE
            return HostPlan(HostState.STALE, Action.NONE, Reason(code, f"{host} {seen}"))
        if obs is None:
            return self.shared(
                ("no-report",),
                HostState.PENDING,
                Action.NONE,
                ReasonCode.NO_REPORT,
                lambda: "has not reported yet",
            )
        if progress.updating:
            if obs.boot_id == progress.boot_id_at_reboot and obs.booted_commit != target:
                return self.shared(
                    ("reboot",),
                    HostState.UPDATING,
                    Action.REBOOT,
                    ReasonCode.REBOOT_ALLOWED,
                    lambda: "reboot into the target now; " + self.window.describe(self.now),
                )
            return self.shared(
                ("rebooted",),
                HostState.UPDATING,
                Action.NONE,
                ReasonCode.WAITING_FOR_HEALTH,
                lambda: "rebooted; waiting for greenboot to report the target healthy",
            )
        if obs.booted_commit == target:
            return self.shared(
                ("on-target",),
                HostState.UPDATING,
                Action.NONE,
                ReasonCode.WAITING_FOR_HEALTH,
                lambda: "runs the target; waiting for greenboot green",
            )
        drifted = progress.drifted
        blocked = self.blocked()
        if progress.offered_at is None:
            state = HostState.UNEXPECTED if drifted else HostState.PENDING
            if blocked is not None:
                return self.shared(
                    ("blocked", state), state, Action.NONE, blocked.code, lambda: blocked.message
                )
            wave = self.spec.wave_of[host]
            return self.shared(
                ("wave", state, wave),
                state,
                Action.NONE,
                ReasonCode.WAVE_NOT_OPEN,
                lambda: f"in wave {wave + 1}/{self.spec.waves_total}, not open yet",
            )
        if obs.staged_commit != target:
            state = HostState.UNEXPECTED if drifted else HostState.STAGING
            return self.shared(
                ("staging", state),
                state,
                Action.STAGE,
                ReasonCode.WAITING_FOR_STAGE,
                lambda: "download and stage the target; do not reboot",
            )
        state = HostState.UNEXPECTED if drifted else HostState.STAGED
        if blocked is not None:
            return self.shared(
                ("blocked", state, "staged"),
                state,
                Action.STAGE,
                blocked.code,
                lambda: blocked.message,
            )
        if not self.window.allowed:
            return self.shared(
                ("window", state),
                state,
                Action.STAGE,
                ReasonCode.WAITING_FOR_WINDOW,
                lambda: self.window.describe(self.now),
            )
        key = self.spec.budget_key[host]
        return self.shared(
            ("budget", state, key),
            state,
            Action.STAGE,
            ReasonCode.WAITING_FOR_BUDGET,
            lambda: f"staged; waiting for the reboot budget ({_budget_text(self.spec, key)})",
        )

    def without_stray_staging(self, host: str, plan: HostPlan) -> HostPlan:
        """A host with nothing to do but another commit staged is told to drop it: otherwise
        any reboot (a power cut) would boot a commit Git no longer wants."""
        obs = self.observed.get(host)
        if (
            plan.action is not Action.NONE
            or obs is None
            or obs.staged_commit in (None, self.target)
        ):
            return plan
        staged = obs.staged_commit or ""
        return self.shared(
            ("unstage", plan.state, staged),
            plan.state,
            Action.UNSTAGE,
            ReasonCode.UNSTAGE,
            lambda: (
                f"{staged[:12]} is staged but is not the desired commit; "
                "remove the staged deployment"
            ),
        )

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
        plan = self._shared_plans.get(key)
        if plan is None:
            plan = self._shared_plans[key] = HostPlan(state, action, Reason(code, message()))
        return plan

    def status(self, hosts: Mapping[str, HostPlan]) -> GroupStatus:
        rollout, spec = self.rollout, self.spec
        total = spec.waves_total
        opened = min(rollout.waves_opened, total)
        if not spec.order:
            return GroupStatus(
                GroupPhase.EMPTY, Reason(ReasonCode.NO_HOSTS, "no hosts"), opened, total
            )
        blocked = self.blocked()
        if rollout.phase is Phase.HALTED and blocked is not None:
            return GroupStatus(GroupPhase.HALTED, blocked, opened, total)
        if rollout.phase is Phase.COMPLETED:
            in_sync = sum(
                1
                for h in spec.order
                if (o := self.observed.get(h)) is not None
                and o.booted_commit == self.target
                and o.greenboot is Greenboot.GREEN
            )
            return GroupStatus(
                GroupPhase.IN_SYNC if in_sync == len(spec.order) else GroupPhase.PROGRESSING,
                Reason(
                    ReasonCode.ALL_HOSTS_DONE
                    if in_sync == len(spec.order)
                    else ReasonCode.UNEXPECTED_DRIFT,
                    f"{in_sync}/{len(spec.order)} hosts run {self.target[:12]}",
                ),
                opened,
                total,
            )
        if blocked is not None:
            phase = GroupPhase.PAUSED if blocked.code is ReasonCode.PAUSED else GroupPhase.WAITING
            return GroupStatus(phase, blocked, opened, total)
        if self.soak_until is not None:
            return GroupStatus(
                GroupPhase.SOAKING,
                Reason(
                    ReasonCode.SOAKING,
                    f"wave {opened}/{total} soaking until {self.soak_until:%Y-%m-%d %H:%MZ}",
                ),
                opened,
                total,
            )
        window_wait = next(
            (p.reason for p in hosts.values() if p.reason.code is ReasonCode.WAITING_FOR_WINDOW),
            None,
        )
        if window_wait is not None and not any(
            p.state is HostState.UPDATING for p in hosts.values()
        ):
            return GroupStatus(GroupPhase.WAITING_WINDOW, window_wait, opened, total)
        done = sum(1 for h in spec.order[: spec.wave_ends[max(0, opened - 1)]] if self.settled(h))
        return GroupStatus(
            GroupPhase.PROGRESSING,
            Reason(
                ReasonCode.WAVE_OPENED,
                f"wave {opened}/{total} in progress: {done}/{spec.wave_ends[max(0, opened - 1)]} "
                "hosts done",
            ),
            opened,
            total,
        )


_UNKNOWN = object()
_NO_PROGRESS = HostProgress()
_IN_SYNC = HostPlan(
    HostState.IN_SYNC,
    Action.NONE,
    Reason(ReasonCode.IN_SYNC, "runs the desired commit, greenboot green"),
)


def _budget_text(spec: GroupSpec, key: BudgetKey) -> str:
    limit = spec.budget_limit.get(key, 0)
    where = ", ".join(
        f"{label}={value}" for label, value in zip(spec.budget_labels, key, strict=True)
    )
    return f"at most {limit} updating at once" + (f" in {where}" if where else "")
