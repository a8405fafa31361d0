"""The wire format between agents and the reconciler: reports in, assignments out.

Field names are camelCase on the wire. Reports tolerate fields they do not know (a newer
agent must still be able to report to an older server) but reject wrong types and values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from reconciler.agent import rules as ostree_rules

# The agent's own rule for a commit, as the fleet-repo schema uses it too.
Checksum = Annotated[str, StringConstraints(pattern=ostree_rules.COMMIT_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=256)]


class Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        frozen=True,
    )


class DeploymentReport(Wire):
    """One deployment as the agent saw it."""

    checksum: Checksum
    base_checksum: Checksum = Field(
        description="Commit from the remote; differs from `checksum` when packages are layered."
    )
    version: ShortText | None = None
    origin: ShortText | None = Field(
        default=None, description="Origin refspec, e.g. `callos:callos/9/x86_64/production`."
    )
    pinned: bool = False


class LastApply(Wire):
    """The outcome of the agent's last attempt to change the host."""

    action: Literal["stage", "reboot", "unstage"]
    commit: Checksum
    ok: bool
    error: Annotated[str, StringConstraints(max_length=4000)] | None = None
    at: datetime


class RebootDeferred(Wire):
    """The agent holds back a reboot it was allowed: its pre-reboot command (a drain)
    failed or timed out. Present in every report while it does."""

    since: AwareDatetime = Field(
        description="When the agent first deferred this reboot (the same across retries)."
    )
    message: ShortText = Field(
        description="The command's last non-empty output line, or why it did not finish."
    )
    exit_code: int | None = Field(
        default=None,
        description="The command's exit status; null when it timed out or could not start.",
    )
    timed_out: bool = False


class AgentReport(Wire):
    """What an agent reports. The host is identified by its token; `host` is optional and,
    when given, must match."""

    agent_version: ShortText
    host: ShortText | None = None
    backend: Literal["rpm-ostree", "ostree"] = "rpm-ostree"
    boot_id: ShortText | None = None
    booted: DeploymentReport | None = None
    staged: DeploymentReport | None = None
    rollback: DeploymentReport | None = None
    transaction_running: bool = False
    status_error: Annotated[str, StringConstraints(max_length=4000)] | None = None
    greenboot: Literal["green", "red", "unknown"] = "unknown"
    last_apply: LastApply | None = None
    known_assignment: ShortText | None = Field(
        default=None, description="`assignmentId` of the last answer, for long-polling."
    )
    reboot_deferred: RebootDeferred | None = None


class TargetOut(Wire):
    commit: str
    remote: str | None
    ref: str | None
    version: str | None


class ReasonOut(Wire):
    code: str
    message: str


class Assignment(Wire):
    """What the host should do now, and why."""

    host: str
    group: str | None
    action: Literal["none", "stage", "reboot", "unstage"]
    state: str
    target: TargetOut | None
    reason: ReasonOut
    report_after_seconds: int = Field(description="When to report next at the latest.")
    assignment_id: str = Field(description="Changes whenever the assignment changes.")


class HostOut(Wire):
    name: str
    group: str | None
    labels: dict[str, str]
    last_report_at: datetime | None
    booted_commit: str | None
    booted_version: str | None = Field(
        default=None, description="The booted deployment's version, as the host reported it."
    )
    staged_commit: str | None
    greenboot: str | None
    state: str | None
    action: str | None
    reason: ReasonOut | None
    lock_granted_at: datetime | None = Field(
        default=None, description="Since when the host holds a FleetLock reboot lock, if it does."
    )
    reboot_deferred: RebootDeferred | None = Field(
        default=None,
        description="The reboot its agent holds back to drain the host, as last reported.",
    )


class HealthCheckOut(Wire):
    """Where one health check's gate stands (docs/health-gates.md)."""

    name: str
    status: str = Field(description="`pending`, `passed`, `failed` or `stalled`.")
    dry_run: bool = Field(description="Evaluated and shown, never blocks.")
    failures: int = Field(description="Failures among the evaluations that count.")
    consecutive_successes: int = Field(description="Successes in a row, up to the last one.")
    consecutive_successes_needed: int = Field(
        description="Successes in a row the check needs to pass (its `consecutiveSuccesses`)."
    )
    last_value: float | None = Field(
        description="The last evaluation's value; null when it had none (inconclusive)."
    )
    last_at: datetime | None = Field(description="When the check was last evaluated.")
    last_outcome: str | None = Field(
        description="`success`, `failure`, `neutral` or `inconclusive`; null before the first."
    )
    reason: str


class GroupOut(Wire):
    name: str
    target: TargetOut
    phase: str
    reason: ReasonOut
    wave: int
    waves_total: int
    hosts: int
    hosts_by_state: dict[str, int]
    completed_commits: list[str] = Field(
        default_factory=list,
        description="Commits this group has completed a rollout of (what `dependsOn` waits for).",
    )
    halt_resume_token: str | None = Field(
        default=None,
        description="While halted: the group's `resume` value at the halt; a new value lifts it.",
    )
    freeze: str | None = Field(
        default=None,
        description="The freeze in force (no reboots until it ends), else the next one to begin.",
    )
    health_checks: list[HealthCheckOut] = Field(
        default_factory=list,
        description="The soaking wave's health gates; empty when no wave soaks or no checks.",
    )


class PromotionOut(Wire):
    """Where one stream's automatic promotion stands."""

    stream: str
    source: str
    commit: str = Field(description="The source stream's commit, the one to be promoted.")
    version: str | None
    state: str = Field(
        description="`due`, `soaking`, `waiting_for_hosts`, `blocked_by_failure`, "
        "`waiting_for_health_checks`, `up_to_date` or `already_promoted`."
    )
    message: str
    healthy_hosts: list[str]
    soaked_seconds: float
    due_at: datetime | None = Field(description="When a soaking promotion becomes due.")
    source_revision: str | None
    health_checks: list[HealthCheckOut] = Field(
        default_factory=list, description="The promotion's health gates, if it has checks."
    )


class LockOut(Wire):
    """A FleetLock reboot lock: who holds it, since when, and whether it is stale."""

    group: str
    host: str
    granted_at: datetime
    age_seconds: float
    stale: bool = Field(description="Held longer than `--fleetlock-stale-after`.")


class VerdictOut(Wire):
    """The gate's verdict on one fleet-repo revision."""

    revision: str
    at: datetime = Field(
        description="When the verdict was reached; for the revision in force, "
        "when it was first applied."
    )
    code: str = Field(description="`applied`, `invalid`, `signature`, `history_rewrite`, ...")
    message: str


class RefusalOut(VerdictOut):
    """The newest refused revision."""

    pending: bool = Field(
        description="True while nothing newer was applied: the branch's tip is refused and "
        "the revision in force is older than what was merged."
    )
    errors: list[str] = Field(description="The first lines of the verdict (at most ten).")


class FetchOut(Wire):
    """How fetching the fleet repo goes, since the daemon started."""

    last_attempt_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    last_error: str | None = Field(description="Credentials are redacted.")


class FleetRevisionOut(Wire):
    """The fleet repo as the daemon follows it: what is in force, what was refused, and
    whether fetching works."""

    in_force: VerdictOut | None
    last_refused: RefusalOut | None
    fetch: FetchOut | None = Field(
        description="Absent when the API runs without a daemon following a repository."
    )
