"""The fleet-repo file format: pydantic models, the single definition of every field.

The JSON Schema in ``fleet-repo-schema/`` and the reference in ``docs/fleet-repo.md`` are
generated from these models (``make schema``); field descriptions here are the docs.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.agent import rules as ostree_rules
from reconciler.durations import Duration
from reconciler.fleetrepo.healthchecks import HealthCheck, HealthChecks
from reconciler.fleetrepo.quantities import CountOrPercent, CountOrPercentField
from reconciler.fleetrepo.selectors import (
    LABEL_KEY_PATTERN,
    LabelKey,
    Labels,
    LabelSelector,
    LabelSelectorRequirement,
)
from reconciler.fleetrepo.spec import Spec, with_model_error
from reconciler.fleetrepo.spec import located as _located
from reconciler.fleetrepo.suggestions import closest
from reconciler.fleetrepo.timezones import check_time_zone

API_VERSION = "ostree-fleet/v1alpha1"

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
HOST_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
HEX64_PATTERN = r"^[0-9a-f]{64}$"

#: What each pattern means, so a mismatch reads as a sentence rather than a regex.
PATTERN_MEANINGS = {
    NAME_PATTERN: "a name of lowercase letters, digits and `-` (at most 63 characters)",
    HOST_NAME_PATTERN: "a host name (letters, digits, `.` and `-`)",
    LABEL_KEY_PATTERN: "a label key (letters, digits, `.`, `_`, `/`, `-`)",
    HEX64_PATTERN: "64 lowercase hex characters",
    **ostree_rules.MEANINGS,
}

Name = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN),
    Field(description="Lowercase letters, digits and `-`; at most 63 characters."),
]
HostName = Annotated[
    str,
    StringConstraints(pattern=HOST_NAME_PATTERN),
    Field(description="The host's name as ops know it (usually its FQDN or short hostname)."),
]
# Commits, remotes and refs follow the agent's own rules, so that a revision this schema
# accepts is one every host will apply (the agent refuses anything else).
Commit = Annotated[
    str,
    StringConstraints(pattern=ostree_rules.COMMIT_PATTERN),
    Field(description="An OSTree commit checksum: 64 lowercase hex characters."),
]
OstreeRemote = Annotated[str, StringConstraints(pattern=ostree_rules.REMOTE_PATTERN)]
OstreeRef = Annotated[str, StringConstraints(pattern=ostree_rules.REF_PATTERN)]
Sha256Hex = Annotated[
    str,
    StringConstraints(pattern=HEX64_PATTERN),
    Field(
        description="sha256 of the agent's token, 64 lowercase hex characters "
        '(`printf %s "$TOKEN" | sha256sum`).'
    ),
]


def _check_cron(expression: str) -> str:
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression `{expression}`: {exc}") from None
    return expression


TimeZoneName = Annotated[
    str,
    AfterValidator(check_time_zone),
    Field(
        description="An IANA time zone name `Area/Location` such as `Europe/Dublin`, so that "
        "windows follow the place's summer time; or `UTC` (also `Etc/UTC`). Abbreviations "
        "(`EST`, `CET`, `IST`, `SGT`…), POSIX-style names (`EST5EDT`), fixed offsets "
        "(`Etc/GMT+5`) and legacy aliases (`US/Eastern`, `Singapore`) are refused: `EST` is "
        "a fixed UTC-5 that ignores summer time and `IST` is three places. The error names "
        "the zones meant (`EST` → `America/New_York` or `America/Toronto`).",
        json_schema_extra={"examples": ["Europe/Dublin", "America/New_York"]},
    ),
]


def _local_time(value: object) -> object:
    """A wall-clock time in the freeze's own zone: `2026-12-24`, `2026-12-24 18:00` or
    `2026-12-24T18:00:00` (YAML reads the last as a timestamp); never with an offset."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"`{value}` is not a date and time such as `2026-12-24 18:00`"
            ) from None
    else:
        return value  # pydantic reports the wrong type
    if parsed.tzinfo is not None:
        raise ValueError("write the local time without an offset; `timeZone` says where it is")
    return parsed


LocalTime = Annotated[
    datetime,
    BeforeValidator(_local_time),
    # A local wall-clock time, not an RFC 3339 instant: say so to editors.
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$",
            "examples": ["2026-12-20", "2026-12-20 18:00"],
        }
    ),
]
CronExpression = Annotated[
    str,
    AfterValidator(_check_cron),
    Field(
        description="Five-field cron expression (minute hour day-of-month month "
        "day-of-week; 0 or 7 is Sunday), evaluated in `timeZone`.",
        json_schema_extra={"examples": ["0 2 * * *", "30 1 * * 6,0"]},
    ),
]


class Document(Spec):
    """Fields every fleet-repo file starts with."""

    api_version: Literal["ostree-fleet/v1alpha1"] = Field(
        description="Version of this file format. Always `ostree-fleet/v1alpha1` for now."
    )


# ---------------------------------------------------------------------------------------------
# Rollout policy and maintenance windows


class RebootBudget(Spec):
    """How many hosts may be updating (assigned, not yet healthy on the target) at once."""

    max_unavailable: CountOrPercentField = Field(
        default=CountOrPercent(1),
        description="Hosts of the group that may be updating at the same time, as a count or "
        "a percent of the group. Hosts that are down or not reporting count "
        "against it.",
    )

    @model_validator(mode="after")
    def _allows_a_reboot(self) -> RebootBudget:
        if self.max_unavailable.value == 0:
            raise _located(
                ("maxUnavailable",),
                "a budget of 0 never allows a reboot and the rollout would wait forever; "
                "use `paused: true` to stop a group",
            )
        return self

    group_by: list[LabelKey] = Field(
        default_factory=list,
        description="Inventory label keys that split the budget: with `[site]`, "
        "`maxUnavailable` applies per site instead of to the whole group.",
    )


class RolloutPolicy(Spec):
    """How a new commit is rolled out to a group.

    In a group, only the fields written there override the fleet defaults
    (`fleet.yaml` → `defaults.rollout`), which override the built-in defaults shown here.
    """

    waves: list[CountOrPercentField] = Field(
        default_factory=lambda: [CountOrPercent(1), CountOrPercent(25, is_percent=True)],
        min_length=1,
        description="Cumulative size of each wave, as a count or percent of the group; each "
        "must be larger than the one before. Canaries fill the first waves. A last "
        "wave of 100% is implied.",
    )
    soak_time: Duration = Field(
        default=timedelta(hours=1),
        description="How long a completed wave must run with no new failure before the next "
        "wave opens.",
    )
    reboot_budget: RebootBudget = Field(
        default_factory=RebootBudget, description="Limits on how many hosts update at once."
    )
    failure_threshold: CountOrPercentField = Field(
        default=CountOrPercent(1),
        description="Failed hosts (count or percent of the group) at which the rollout halts. "
        "A halt holds until the fleet repo changes.",
    )
    health_timeout: Duration = Field(
        default=timedelta(minutes=30),
        description="Time a host has, from being allowed to reboot, to report the target "
        "booted and healthy before it counts as failed.",
    )
    drain_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="Time a host's agent may hold back a reboot it was allowed while its "
        "pre-reboot command (a drain) fails or times out; the host keeps its reboot-budget "
        "slot meanwhile. After that it is failed with reason `drain_timeout`, its slot "
        "goes to the next host, and the rollout goes on without it (not counted toward "
        "`failureThreshold`).",
    )
    reboot_margin: Duration = Field(
        default=timedelta(minutes=15),
        description="A reboot starts only when at least this much of the maintenance window "
        "is left.",
    )
    stale_after: Duration = Field(
        default=timedelta(minutes=10),
        description="A host that has not reported for this long is stale: it counts against "
        "the reboot budget as unavailable.",
    )
    skip_stale_after: Duration = Field(
        default=timedelta(hours=2),
        description="A stale host silent for this long no longer holds its wave back; it is "
        "skipped, and updated through the normal budget and windows when it returns.",
    )

    @model_validator(mode="after")
    def _waves_grow(self) -> RolloutPolicy:
        for index in range(1, len(self.waves)):
            before, wave = self.waves[index - 1], self.waves[index]
            if before.is_percent == wave.is_percent and wave.value <= before.value:
                raise _located(
                    ("waves", index),
                    f"waves must grow: wave {index + 1} ({wave}) is not larger "
                    f"than wave {index} ({before}); waves are cumulative",
                )
        return self


class MaintenanceWindow(Spec):
    """A recurring window in which hosts may reboot. Staging happens any time."""

    schedule: CronExpression
    duration: Duration = Field(description="How long each window stays open, e.g. `3h`.")
    time_zone: TimeZoneName

    @model_validator(mode="after")
    def _duration_is_positive(self) -> MaintenanceWindow:
        if not timedelta(0) < self.duration <= timedelta(days=7):
            raise _located(
                ("duration",), "a window's duration must be more than 0 and at most 7 days"
            )
        return self


class Freeze(Spec):
    """A period in which no host reboots (staging goes on), e.g. a holiday change freeze."""

    name: Name
    start: LocalTime = Field(
        description="When the freeze begins, local time in `timeZone`: `2026-12-20` "
        "(midnight) or `2026-12-20 18:00`."
    )
    end: LocalTime = Field(description="When the freeze ends, local time in `timeZone`.")
    time_zone: TimeZoneName
    reason: str = Field(
        min_length=1, description="Why reboots are frozen; shown on every host that waits."
    )

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Freeze:
        if self.end <= self.start:
            raise _located(("end",), "a freeze must end after it starts")
        return self

    @property
    def starts_at(self) -> datetime:
        """The start as an aware instant."""
        return self.start.replace(tzinfo=ZoneInfo(self.time_zone))

    @property
    def ends_at(self) -> datetime:
        """The end as an aware instant."""
        return self.end.replace(tzinfo=ZoneInfo(self.time_zone))


# ---------------------------------------------------------------------------------------------
# fleet.yaml


class FleetDefaults(Spec):
    """Settings every group inherits unless it sets its own."""

    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="Windows for groups that declare none. Empty means reboots are allowed "
        "at any time.",
    )
    health_checks: HealthChecks = Field(
        default_factory=list,
        description="Checks every group's waves must pass, besides the group's own "
        "`healthChecks` (a group's check of the same name replaces the default).",
    )


class Revocation(Spec):
    """A build withdrawn fleet-wide: no group is offered it again, a rollout to it halts, and
    hosts that run it are brought back to their group's desired commit."""

    commit: Commit
    version: str | None = Field(default=None, description="Human version of `commit`.")
    reason: str = Field(
        min_length=1,
        description="Why the build is withdrawn; shown on every host that still runs it, "
        "to reviewers and to auditors.",
    )


class FleetConfig(Document):
    """`fleet.yaml`: the fleet's name and defaults. Exactly one per repo, at its root."""

    kind: Literal["Fleet"] = Field(description="Always `Fleet` in `fleet.yaml`.")
    name: Name
    description: str | None = Field(default=None, description="Free text for humans.")
    defaults: FleetDefaults = Field(default_factory=FleetDefaults)
    revoked: list[Revocation] = Field(
        default_factory=list,
        description="Builds withdrawn fleet-wide. A stream or pin may not name one; hosts "
        "that run one show as drifted with reason `revoked` until they are brought back.",
    )
    freezes: list[Freeze] = Field(
        default_factory=list,
        description="Periods in which no host of any group reboots; staging goes on.",
    )


# ---------------------------------------------------------------------------------------------
# streams/<name>.yaml


class Promotion(Spec):
    """Promote this stream automatically from another once its commit has proven itself."""

    from_stream: Name = Field(alias="from", description="The stream promoted from.")
    soak_time: Duration = Field(
        description="How long the source commit must have run on healthy hosts, e.g. `48h`."
    )
    min_healthy_hosts: int = Field(
        ge=1, description="Hosts that must run the source commit and be healthy."
    )
    branch: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="Push each promotion for review to a new branch named "
        "`<branch>-<first 12 characters of the commit>` instead of the watched branch.",
    )
    health_checks: HealthChecks = Field(
        default_factory=list,
        description="Checks the source commit must pass, on the hosts that run it, before it "
        "is promoted; a later failure blocks the promotion until the check passes again.",
    )


class Stream(Document):
    """`streams/<name>.yaml`: one OSTree stream and the commit it should run."""

    kind: Literal["Stream"] = Field(description="Always `Stream` under `streams/`.")
    name: Name
    description: str | None = Field(default=None, description="Free text for humans.")
    remote: OstreeRemote = Field(
        description="Name of the OSTree remote as configured on the hosts: "
        f"{ostree_rules.REMOTE_RULE}.",
    )
    url: str | None = Field(
        default=None,
        pattern=r"^(https?|file)://",
        description="URL of the OSTree repository, used to check that a "
        "commit exists before a rollout starts.",
    )
    ref: OstreeRef = Field(
        description="OSTree ref (branch) of the stream, e.g. `callos/x86_64/production`: "
        f"{ostree_rules.REF_RULE}.",
    )
    commit: Commit
    version: str | None = Field(
        default=None, description="Human version of `commit`, for reviewers and dashboards."
    )
    promotion: Promotion | None = None


# ---------------------------------------------------------------------------------------------
# groups/<name>.yaml


class Pin(Spec):
    """Hold a group on a fixed commit (e.g. a kernel that out-of-tree drivers are built for)."""

    commit: Commit
    version: str | None = Field(default=None, description="Human version of `commit`.")
    reason: str = Field(
        min_length=1, description="Why the group is pinned; shown to reviewers and auditors."
    )
    remote: OstreeRemote | None = Field(
        default=None,
        description="OSTree remote to deploy from (rules as for a stream's `remote`); "
        "unset keeps the host's origin.",
    )
    ref: OstreeRef | None = Field(
        default=None,
        description="OSTree ref to deploy from (rules as for a stream's `ref`); "
        "unset keeps the host's origin.",
    )


class Group(Document):
    """`groups/<name>.yaml`: a set of hosts that run the same commit and roll out together."""

    kind: Literal["Group"] = Field(description="Always `Group` under `groups/`.")
    name: Name
    description: str | None = Field(default=None, description="Free text for humans.")
    hosts: list[HostName] = Field(default_factory=list, description="Hosts named explicitly.")
    selector: LabelSelector | None = Field(
        default=None, description="Hosts selected by inventory labels."
    )
    stream: Name | None = Field(
        default=None, description="The stream whose commit the group follows."
    )
    pin: Pin | None = None
    canaries: list[HostName] = Field(
        default_factory=list, description="Hosts of the group that go first, in this order."
    )
    paused: bool = Field(
        default=False,
        description="Stop offering the target to more hosts; set back to false to resume.",
    )
    resume: str | None = Field(
        default=None,
        description="Lift a halted rollout: set or change this to any new text (a date, a "
        "ticket) once the cause of the failures is understood. The failures stay recorded "
        "and failed hosts are not offered the commit again.",
    )
    depends_on: list[Name] = Field(
        default_factory=list,
        description="Groups that must have completed a commit before this group starts it.",
    )
    rollout: RolloutPolicy = Field(
        default_factory=RolloutPolicy,
        description="Overrides of the fleet's rollout defaults; "
        "only the fields written here apply.",
    )
    maintenance_windows: list[MaintenanceWindow] | None = Field(
        default=None,
        description="When hosts may reboot. Unset: the fleet default. `[]`: at any time.",
    )
    freezes: list[Freeze] = Field(
        default_factory=list,
        description="Periods in which no host of this group reboots, in addition to the "
        "fleet's `freezes`; staging goes on.",
    )
    health_checks: HealthChecks = Field(
        default_factory=list,
        description="Checks a completed wave must pass before the next wave opens, in "
        "addition to the fleet's `defaults.healthChecks`; one with the name of a default "
        "replaces it.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _stream_xor_pin(cls, data: Any, handler: ModelWrapValidatorHandler[Group]) -> Group:
        shape = _group_shape_error(cls, data)
        try:
            group = handler(data)
        except ValidationError as exc:
            if shape is None:
                raise
            raise with_model_error(cls.__name__, exc, shape, data) from None
        if shape is not None:
            raise shape
        return group


def _group_shape_error(model: type[Spec], data: Any) -> PydanticCustomError | None:
    """What is wrong with which of `stream`, `pin`, `hosts` and `selector` a group has.

    A misspelt key (`steam:`) explains a missing one: it is reported as an unknown field with
    a did-you-mean at its own line, so the missing key is not reported as well.
    """
    if not isinstance(data, dict):
        return None
    meant = _misspelt_keys(data, model, ("stream", "pin", "hosts", "selector"))
    has_stream, has_pin = data.get("stream") is not None, data.get("pin") is not None
    if has_stream and has_pin:
        return _located(("pin",), _STREAM_XOR_PIN)
    if not has_stream and not has_pin and not {"stream", "pin"} & meant:
        return _located((), _STREAM_XOR_PIN)
    if not data.get("hosts") and data.get("selector") is None and not {"hosts", "selector"} & meant:
        return _located((), "a group needs `hosts`, a `selector`, or both")
    return None


_STREAM_XOR_PIN = "set exactly one of `stream` (follow a stream) or `pin` (hold a fixed commit)"


def _misspelt_keys(data: dict[Any, Any], model: type[Spec], wanted: tuple[str, ...]) -> set[str]:
    """Which of ``wanted`` the unknown keys of ``data`` look like misspellings of."""
    known = {field.alias or name for name, field in model.model_fields.items()}
    meant = (closest(str(key), wanted, cutoff=0.7) for key in data if key not in known)
    return {name for name in meant if name is not None}


# ---------------------------------------------------------------------------------------------
# hosts/<site>.yaml


#: What a FleetLock client may send as its id: Zincati sends 32 lowercase hex digits, a
#: reboot script often /etc/machine-id; kept to characters no log or URL needs to escape.
FleetLockId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]


class Hold(Spec):
    """Keeps one host out of rollouts until the hold is removed."""

    reason: str = Field(
        min_length=1,
        description="Why the host is held (a repair, an investigation, a ticket); shown in "
        "status, to reviewers and to auditors.",
    )


class Host(Spec):
    """One server in the inventory."""

    name: HostName
    labels: Labels = Field(
        default_factory=dict, description="Labels of this host, added to the file's `labels`."
    )
    token_sha256: Sha256Hex
    description: str | None = Field(default=None, description="Free text for humans.")
    hold: Hold | None = Field(
        default=None,
        description="Hold the host out of rollouts: it is offered no target, told to drop a "
        "staged one, not counted against the reboot budget and does not hold its wave back. "
        "Remove the hold to bring it back through the normal budget and windows.",
    )
    fleet_lock_id: FleetLockId | None = Field(
        default=None,
        description="The id this host's FleetLock client sends as `client_params.id` (for "
        "Zincati, its app-specific node UUID, not /etc/machine-id; the server logs the id of "
        "every client it does not know). Only a host with one may take a FleetLock reboot "
        "lock, granted by the same rules and budget as the agent's reboots.",
    )
    maintenance_windows: list[MaintenanceWindow] | None = Field(
        default=None,
        description="When this host may reboot, over its file's and its group's windows. "
        "Unset: its file's windows, else its group's. `[]`: at any time.",
    )


class HostInventory(Document):
    """`hosts/<file>.yaml`: hosts of one site (or any split that keeps files small)."""

    kind: Literal["HostInventory"] = Field(description="Always `HostInventory` under `hosts/`.")
    labels: Labels = Field(
        default_factory=dict,
        description="Labels given to every host in this file, e.g. `site` and `timezone`.",
    )
    maintenance_windows: list[MaintenanceWindow] | None = Field(
        default=None,
        description="When the hosts of this file (a site) may reboot, over their groups' "
        "windows; a host's own `maintenanceWindows` win. Unset: each group's windows. "
        "`[]`: at any time.",
    )
    hosts: list[Host] = Field(default_factory=list, description="The hosts of this file.")


DOCUMENT_KINDS: dict[str, type[Document]] = {
    "Fleet": FleetConfig,
    "Stream": Stream,
    "Group": Group,
    "HostInventory": HostInventory,
}

ALL_MODELS: tuple[type[Spec], ...] = (
    *DOCUMENT_KINDS.values(),
    FleetDefaults,
    RolloutPolicy,
    RebootBudget,
    MaintenanceWindow,
    Promotion,
    LabelSelector,
    LabelSelectorRequirement,
    Pin,
    Host,
    Hold,
    Revocation,
    Freeze,
    HealthCheck,
)


def known_field_names() -> set[str]:
    """Every key a fleet-repo file may contain, for "did you mean" hints on unknown fields."""
    return {
        field.alias or name for model in ALL_MODELS for name, field in model.model_fields.items()
    }
