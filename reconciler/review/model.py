"""What a review of a fleet-repo change says, as data: per group, the commit it moves from
and to, its waves, canaries and next windows, and what blocks it; the streams, promotion
policies and fleet defaults that change; and the risky values it holds. Computed by
:mod:`reconciler.review.change`, shown by :mod:`reconciler.review.render`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reconciler.fleetrepo.models import MaintenanceWindow
from reconciler.ostree.commits import CommitCheck
from reconciler.problems import Problem
from reconciler.rollout.prediction import Prediction


class BlockerCode(StrEnum):
    """Why a group's rollout would not start or finish; a stable interface (JSON output)."""

    PAUSED = "paused"
    HALTED = "halted"
    DEPENDS_ON_PENDING = "depends_on_pending"
    COMMIT_MISSING = "commit_missing"
    COMMIT_UNCHECKABLE = "commit_uncheckable"
    NO_USABLE_WINDOW = "no_usable_window"


@dataclass(frozen=True)
class Blocker:
    code: BlockerCode
    message: str
    blocking: bool = True  # False: a wait that ends by itself


class ChangeKind(StrEnum):
    NEW = "new"  # the group is not in the base (nor on the live server): it starts a rollout
    COMMIT = "commit"  # its desired commit changes: a rollout starts
    SETTINGS = "settings"  # same commit; hosts, policy, windows, pause... change
    CONTINUES = "continues"  # same commit and settings; the live rollout is not done yet


@dataclass(frozen=True)
class CommitRef:
    commit: str
    version: str | None

    @property
    def label(self) -> str:
        """The version when there is one, else the short commit."""
        return self.version or self.commit[:12]


@dataclass(frozen=True)
class HostMove:
    """A host that joins a group from another commit: the planner offers it the target."""

    host: str
    from_group: str | None  # its group in the base (or on the live server), if any
    from_: CommitRef  # its commit there (with --against, the commit it booted)


@dataclass(frozen=True)
class Wave:
    number: int  # 1-based, as status output counts them
    hosts: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.hosts)


@dataclass(frozen=True)
class WindowOpening:
    """One occurrence of a maintenance window in which a reboot may start."""

    window: MaintenanceWindow
    starts_at: datetime
    reboot_deadline: datetime  # reboots start until then: the end minus the reboot margin
    open_now: bool

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.window.duration


@dataclass(frozen=True)
class SiteWindows:
    """The windows of some of a group's hosts, where hosts of one group reboot in different
    windows (their inventory file's or their own): where they come from and their next
    openings, in the windows' own time zones."""

    source: str  # "hosts/dub.yaml", or "the group" for hosts in the group's own windows
    hosts: int
    any_time: bool  # `[]`: these hosts may reboot at any time
    windows: tuple[WindowOpening, ...]


@dataclass(frozen=True)
class GroupReview:
    """What the change does to one group."""

    name: str
    kind: ChangeKind
    stream: str | None  # None for a pinned group
    pin_reason: str | None
    from_: CommitRef | None  # None for a new group
    to: CommitRef
    waves: tuple[Wave, ...]
    canaries: tuple[str, ...]
    any_time: bool  # no maintenance windows: reboots at any time
    windows: tuple[WindowOpening, ...]  # the next openings, the first may be open now
    settings_changed: tuple[str, ...]
    blockers: tuple[Blocker, ...]
    notes: tuple[str, ...] = ()
    live_status: str | None = None  # the running rollout's phase and reason, with --against
    hosts_on_target: int | None = None  # hosts already booted on the target, with --against
    moved_in: tuple[HostMove, ...] = ()  # hosts that join the group and change commit
    #: Hosts whose commit changes. With --against, only hosts whose booted commit is known;
    #: without, a host no group of the base held counts when the group rolls out.
    hosts_changing: int = 0
    #: With --against: hosts of a group that rolls out that have reported no booted commit.
    hosts_unreported: int = 0
    freeze: str | None = None  # the freeze in force now, else the next one, as a sentence
    #: Per window set, when the group's hosts do not all share its windows; else empty.
    site_windows: tuple[SiteWindows, ...] = ()
    #: The health checks each wave's soak must pass (docs/health-gates.md), one sentence each.
    health_checks: tuple[str, ...] = ()

    @property
    def hosts(self) -> int:
        return sum(w.size for w in self.waves)

    @property
    def blocked(self) -> bool:
        return any(b.blocking for b in self.blockers)


@dataclass(frozen=True)
class UnchangedGroup:
    name: str
    commit: CommitRef
    hosts: int


@dataclass(frozen=True)
class FieldChange:
    """One field of the fleet repo that changes, as written in YAML (`soakTime`,
    `rebootBudget.maxUnavailable`), with its values as text; None where it is not set."""

    field: str
    before: str | None
    after: str | None


class StreamChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class StreamChange:
    """A stream the change adds, removes, or whose commit, version, remote, ref, URL or
    description changes (its promotion policy is a :class:`PromotionChange`)."""

    name: str
    kind: StreamChangeKind
    fields: tuple[FieldChange, ...]  # empty when only the promotion policy changes
    groups: tuple[str, ...]  # the groups that follow it (in the base, for a removed stream)


@dataclass(frozen=True)
class PromotionChange:
    """A stream whose automatic promotion is added, removed or changed: every field that
    changes (`from`, `soakTime`, `minHealthyHosts`, `branch`), old and new."""

    stream: str
    fields: tuple[FieldChange, ...]
    groups: tuple[str, ...]  # the groups that follow the stream, which promoted builds reach


@dataclass(frozen=True)
class DefaultChange:
    """A fleet-wide setting of `fleet.yaml` that changes (`defaults.rollout.soakTime`,
    `defaults.maintenanceWindows`, `freezes`, `revoked`...), and the groups that take the new
    value because they do not set their own."""

    change: FieldChange
    inherited_by: tuple[str, ...]


class RiskCode(StrEnum):
    """A value the fleet repo may hold but that a reviewer should look at twice; a stable
    interface (JSON output)."""

    SOAK_SHORTER_THAN_HEALTH_TIMEOUT = "soak_shorter_than_health_timeout"
    PROMOTION_ONE_HEALTHY_HOST = "promotion_one_healthy_host"
    PROMOTION_SOAK_SHORT = "promotion_soak_short"
    MAX_UNAVAILABLE_WHOLE_GROUP = "max_unavailable_whole_group"


@dataclass(frozen=True)
class RiskWarning:
    """A risky value in the proposed revision: it blocks nothing (the exit code stays)."""

    code: RiskCode
    subject: str  # "group staging-lab", "stream production"
    message: str


@dataclass(frozen=True)
class ChangeReview:
    """The whole review. ``problems`` are the proposed revision's validation findings; with an
    error among them the revision is invalid and nothing else is filled in."""

    now: datetime
    fleet: str | None
    revision: str | None  # the proposed Git commit; None for a working directory
    base_revision: str | None
    has_base: bool
    live_server: str | None
    problems: tuple[Problem, ...] = ()
    groups: tuple[GroupReview, ...] = ()
    unchanged: tuple[UnchangedGroup, ...] = ()
    removed: tuple[str, ...] = ()
    checks: tuple[CommitCheck, ...] = ()
    revision_blockers: tuple[Blocker, ...] = ()  # the daemon would refuse the whole revision
    notes: tuple[str, ...] = ()
    streams: tuple[StreamChange, ...] = ()
    promotions: tuple[PromotionChange, ...] = ()
    defaults: tuple[DefaultChange, ...] = ()
    risks: tuple[RiskWarning, ...] = ()
    #: `plan --predict`: the rollout run in virtual time (reconciler/rollout/prediction.py).
    prediction: Prediction | None = None

    @property
    def valid(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def blocked(self) -> bool:
        return bool(self.revision_blockers) or any(g.blocked for g in self.groups)
