"""Why the engine did or did not do something, as a code for machines and a sentence for people.

Codes are part of the public interface (status output, events, metrics labels): rename none.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    # rollout lifecycle
    DESIRED_COMMIT_CHANGED = "desired_commit_changed"
    SUPERSEDED = "superseded"
    RESUMED = "resumed"
    FAILURE_THRESHOLD = "failure_threshold"
    HEALTH_CHECK_FAILED = "health_check_failed"  # a wave's gate on a Prometheus query failed
    ALL_HOSTS_DONE = "all_hosts_done"
    WAVE_OPENED = "wave_opened"
    WAVE_DONE = "wave_done"
    # waiting
    WAVE_NOT_OPEN = "wave_not_open"
    SOAKING = "soaking"
    PAUSED = "paused"
    HALTED = "halted"
    WAITING_FOR_DEPENDENCY = "waiting_for_dependency"
    WAITING_FOR_SUPERSEDED_HOSTS = "waiting_for_superseded_hosts"
    WAITING_FOR_WINDOW = "waiting_for_window"
    FROZEN = "frozen"  # a freeze in the fleet repo stops reboots; staging goes on
    WAITING_FOR_BUDGET = "waiting_for_budget"
    WAITING_FOR_STAGE = "waiting_for_stage"
    WAITING_FOR_HEALTH = "waiting_for_health"
    WAITING_FOR_HEALTH_CHECKS = "waiting_for_health_checks"  # soaked; a gate has not passed
    # host actions and outcomes
    STAGE_TARGET = "stage_target"
    REBOOT_ALLOWED = "reboot_allowed"
    REBOOT_REVOKED = "reboot_revoked"
    UNSTAGE = "unstage"
    REBOOTED = "rebooted"
    # the agent holds back an allowed reboot: its pre-reboot command (a drain) has not passed
    DRAINING = "draining"
    DRAINED = "drained"  # ... and then passed: the host reboots
    IN_SYNC = "in_sync"
    UNEXPECTED_DRIFT = "unexpected"
    REVOKED = "revoked"  # the build is withdrawn fleet-wide in fleet.yaml
    HELD = "held"  # the host is held out of rollouts in the inventory
    STALE = "stale"
    NO_REPORT = "no_report"
    SKIPPED_STALE = "skipped_stale"
    SUPERSEDED_HOST_FINISHED = "superseded_host_finished"
    # FleetLock: a client asked for a reboot lock, holds one, or gave it back
    LOCK_REQUESTED = "lock_requested"
    LOCK_GRANTED = "lock_granted"
    LOCK_RELEASED = "lock_released"
    # failures
    GREENBOOT_RED = "greenboot_red"
    FELL_BACK = "fell_back"
    DEPLOY_ERROR = "deploy_error"
    HEALTH_TIMEOUT = "health_timeout"
    DRAIN_TIMEOUT = "drain_timeout"  # still draining after `drainTimeout`
    FAILED_BEFORE = "failed_before"
    NOT_A_MEMBER = "not_a_member"
    NO_HOSTS = "no_hosts"


FAILURE_CODES = frozenset(
    {
        ReasonCode.GREENBOOT_RED,
        ReasonCode.FELL_BACK,
        ReasonCode.DEPLOY_ERROR,
        ReasonCode.HEALTH_TIMEOUT,
        ReasonCode.DRAIN_TIMEOUT,
    }
)

#: Failures of the host, not of the build: the host could not be drained for its reboot, so
#: it never ran the target. They free the host's budget slot and settle it for its wave, but
#: do not count toward `failureThreshold`, restart the soak, follow the host, or stop the
#: commit being offered to it in a later rollout (docs/rollouts.md, rule 16).
HOST_SIDE_FAILURE_CODES = frozenset({ReasonCode.DRAIN_TIMEOUT})


@dataclass(frozen=True, slots=True)
class Reason:
    """A machine-readable code and the human sentence that goes with it."""

    code: ReasonCode
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
