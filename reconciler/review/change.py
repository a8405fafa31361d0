"""What a fleet-repo change would do, for review before it is merged (`reconciler plan`).

:func:`review_change` is pure: from the proposed fleet, the fleet it replaces (the base
revision), optionally what a running reconciler observes, a ``now`` and a commit checker, it
says per group which commit it moves from and to, how its hosts split into waves and which
are canaries (the rollout engine's own :func:`group_spec`), when its next maintenance windows
open (:func:`reboot_window`, as the planner sees them), and what blocks it, as data.

A host that moves into a group from another commit changes commit too: the planner offers
the group's target to it (even when the group's rollout is complete), so such a group rolls
out, and pauses and windows apply to it as to a new commit.

A blocker either *blocks* (nothing happens until someone acts: paused, halted, a commit the
OSTree repository does not hold) or *waits* (it ends by itself: a dependency that this same
change moves to the commit first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.durations import format_duration, format_minutes
from reconciler.fleetrepo.fleet import Fleet, Target
from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.fleetrepo.models import MaintenanceWindow
from reconciler.ostree.commits import (
    CommitCheck,
    CommitChecker,
    commit_checks,
    pin_subject,
    stream_subject,
)
from reconciler.problems import Problem
from reconciler.review.blockers import (
    TROUBLE,
    check_blocker,
    commit_blockers,
    dependency_blockers,
    halt_blockers,
)
from reconciler.review.fleetwide import (
    default_changes,
    promotion_changes,
    promotion_notes,
    stream_changes,
)
from reconciler.review.live import LiveState
from reconciler.review.model import (
    Blocker,
    BlockerCode,
    ChangeKind,
    ChangeReview,
    CommitRef,
    GroupReview,
    HostMove,
    SiteWindows,
    UnchangedGroup,
    Wave,
    WindowOpening,
)
from reconciler.review.risks import risk_warnings
from reconciler.rollout.freezes import freeze_at
from reconciler.rollout.spec import GroupSpec, dependency_order, group_spec
from reconciler.rollout.windows import reboot_window

#: Phases of a live group with nothing left to do for its target.
_SETTLED_PHASES = frozenset({"in_sync", "empty"})


def invalid_review(
    problems: Sequence[Problem],
    revision: str | None,
    now: datetime,
    base_revision: str | None = None,
    live_server: str | None = None,
) -> ChangeReview:
    """The review of a revision that does not validate: only its problems."""
    return ChangeReview(
        now=now,
        fleet=None,
        revision=revision,
        base_revision=base_revision,
        has_base=base_revision is not None,
        live_server=live_server,
        problems=tuple(problems),
    )


def review_change(
    proposed: Fleet,
    base: Fleet | None,
    now: datetime,
    *,
    live: LiveState | None = None,
    commit_checker: CommitChecker | None = None,
    problems: Sequence[Problem] = (),
    notes: Sequence[str] = (),
) -> ChangeReview:
    """Review ``proposed`` against ``base`` (and ``live``, the running reconciler) at ``now``.

    The "from" commit of a group is the live server's target with ``live``, else the base's.
    Without ``commit_checker`` no OSTree repository is asked (checks say `skipped`).
    """
    checks = commit_checks(proposed, base, commit_checker)
    trouble = {c.subject: c for c in checks if c.result in TROUBLE}
    before = _Before(base, live, _versions(proposed, base, live))
    reviews: dict[str, GroupReview] = {}
    unchanged: list[UnchangedGroup] = []
    for name in dependency_order({n: g.depends_on for n, g in proposed.groups.items()}):
        spec = group_spec(proposed, name)
        review = _review_group(proposed, before, spec, now, trouble, reviews)
        if review is None:
            unchanged.append(UnchangedGroup(name, _ref(spec.target), len(spec.order)))
        else:
            reviews[name] = review
    known = set(base.groups if base else ()) | set(live.groups if live else ())
    promotions = promotion_changes(proposed, base)
    # Without a base every stream is new, so every promotion is the change's.
    promoting = proposed.streams if base is None else [p.stream for p in promotions]
    return ChangeReview(
        now=now,
        fleet=proposed.config.name,
        revision=proposed.revision,
        base_revision=base.revision if base else None,
        has_base=base is not None,
        live_server=live.server if live else None,
        problems=tuple(problems),
        groups=tuple(reviews[n] for n in sorted(reviews)),
        unchanged=tuple(sorted(unchanged, key=lambda u: u.name)),
        removed=tuple(sorted(known - set(proposed.groups))),
        checks=checks,
        revision_blockers=tuple(check_blocker(c) for c in checks if c.result in TROUBLE),
        notes=(*notes, *promotion_notes(proposed, base)),
        streams=stream_changes(proposed, base),
        promotions=promotions,
        defaults=default_changes(proposed, base),
        risks=risk_warnings(proposed, reviews, promoting),
    )


@dataclass(frozen=True)
class _Before:
    """Where each host stands before the change: its group and that group's commit in the
    base revision, or with live state, its group on the server and the commit it booted (none
    known before it reports)."""

    base: Fleet | None
    live: LiveState | None
    versions: Mapping[str, str]  # commit -> version, from every target known

    def host(self, name: str) -> tuple[str | None, CommitRef | None]:
        group = self.base.group_of(name) if self.base is not None else None
        if self.live is not None:
            seen = self.live.hosts.get(name)
            if seen is None or not seen.booted_commit:
                return (seen.group if seen else None) or group, None
            booted = CommitRef(seen.booted_commit, self.versions.get(seen.booted_commit))
            return seen.group or group, booted
        if self.base is None or group is None:
            return None, None
        return group, _ref(self.base.target(group))


def _versions(proposed: Fleet, base: Fleet | None, live: LiveState | None) -> dict[str, str]:
    versions: dict[str, str] = {}
    for fleet in (f for f in (base, proposed) if f is not None):
        for group in fleet.groups:
            if (target := fleet.target(group)).version:
                versions[target.commit] = target.version
    for seen in live.groups.values() if live else ():
        if seen.version:
            versions[seen.commit] = seen.version
    return versions


def _review_group(
    proposed: Fleet,
    before: _Before,
    spec: GroupSpec,
    now: datetime,
    trouble: Mapping[str, CommitCheck],
    earlier: Mapping[str, GroupReview],
) -> GroupReview | None:
    base, live = before.base, before.live
    name, to = spec.name, _ref(spec.target)
    live_group = live.groups.get(name) if live else None
    if live is not None:
        from_ = CommitRef(live_group.commit, live_group.version) if live_group else None
    else:
        from_ = _ref(base.target(name)) if base and name in base.groups else None
    settings = settings_changed(base, proposed, name) if base and name in base.groups else ()
    unfinished = live_group is not None and live_group.phase not in _SETTLED_PHASES
    hosts_before = {h: before.host(h) for h in spec.order}
    moved_in = tuple(
        HostMove(h, group, commit)
        for h, (group, commit) in hosts_before.items()
        if group != name and commit is not None and commit.commit != to.commit
    )
    if from_ is None:
        kind = ChangeKind.NEW
    elif from_.commit != to.commit:
        kind = ChangeKind.COMMIT
    elif settings:
        kind = ChangeKind.SETTINGS
    elif unfinished:
        kind = ChangeKind.CONTINUES
    elif moved_in:  # only on the live server: a host it still places in another group
        kind = ChangeKind.SETTINGS
    else:
        return None
    starts_fresh = kind in (ChangeKind.NEW, ChangeKind.COMMIT)
    # The planner offers the target to every host of the group not on it, a completed
    # rollout included: hosts moving in from another commit make a rollout of their own.
    rolls_out = starts_fresh or unfinished or bool(moved_in)
    blockers: list[Blocker] = []
    notes: list[str] = []
    if rolls_out:
        subject = stream_subject(spec.target.stream) if spec.target.stream else pin_subject(name)
        blockers += commit_blockers(to, trouble.get(subject))
        if spec.paused:
            blockers.append(
                Blocker(
                    BlockerCode.PAUSED,
                    f"paused in the fleet repo: no host is offered {to.label} "
                    "until `paused` is set back to false",
                )
            )
        if live_group is not None and live_group.phase == "halted":
            halt_blockers(live_group, spec, to, blockers, notes)
        if starts_fresh or (live_group is not None and live_group.waves_opened == 0):
            blockers += dependency_blockers(proposed, base, live, spec, earlier)
        in_use = [*((spec.windows,) if spec.uses_group_windows else ()), *spec.window_sets]
        if any(
            windows and reboot_window(windows, now, spec.policy.reboot_margin).starts_at is None
            for windows in in_use
        ):
            blockers.append(
                Blocker(
                    BlockerCode.NO_USABLE_WINDOW,
                    "no maintenance window is longer than the reboot margin "
                    f"({format_minutes(spec.policy.reboot_margin)}): reboots never start",
                )
            )
    canaries = set(proposed.groups[name].canaries)
    changing, unreported = _hosts_changing(
        (commit for _, commit in hosts_before.values()), to, rolls_out, live is not None
    )
    return GroupReview(
        name=name,
        kind=kind,
        stream=spec.target.stream,
        pin_reason=pin.reason if (pin := proposed.groups[name].pin) else None,
        from_=from_,
        to=to,
        waves=waves(spec),
        canaries=tuple(h for h in spec.order if h in canaries),
        any_time=not spec.windows,
        windows=next_openings(spec.windows, now, spec.policy.reboot_margin),
        freeze=_freeze_text(spec, now),
        site_windows=site_windows(proposed, spec, now),
        health_checks=tuple(gate_sentence(check) for check in spec.health_checks),
        settings_changed=settings,
        blockers=tuple(blockers),
        notes=tuple(notes),
        live_status=f"{live_group.phase}: {live_group.reason}" if live_group else None,
        hosts_on_target=(
            sum(
                1
                for h in spec.order
                if (seen := live.hosts.get(h)) is not None and seen.booted_commit == to.commit
            )
            if live is not None
            else None
        ),
        moved_in=moved_in,
        hosts_changing=changing,
        hosts_unreported=unreported,
    )


def _hosts_changing(
    before: Iterable[CommitRef | None], to: CommitRef, rolls_out: bool, live: bool
) -> tuple[int, int]:
    """How many hosts change commit, and with live state how many have reported none.

    With live state only a booted commit the server knows is compared: a host that never
    reported is counted apart, not as a change (a fresh server, whose groups all still roll
    out, would otherwise count every host of the fleet). Without it, a host no group of the
    base held is assumed to need the target when its group rolls out."""
    commits = list(before)
    known = sum(1 for commit in commits if commit is not None and commit.commit != to.commit)
    unknown = sum(1 for commit in commits if commit is None) if rolls_out else 0
    return (known, unknown) if live else (known + unknown, 0)


def _freeze_text(spec: GroupSpec, now: datetime) -> str | None:
    """The freeze in force at ``now``, else the next one, as the planner will see it."""
    freeze = freeze_at(spec.freezes, now)
    return freeze.describe() if freeze.active or freeze.upcoming else None


def site_windows(fleet: Fleet, spec: GroupSpec, now: datetime) -> tuple[SiteWindows, ...]:
    """Each window set of the group's hosts, named by the inventory files its hosts come from,
    with its next openings; empty when every host reboots in the group's windows."""
    if not spec.window_sets:
        return ()
    margin = spec.policy.reboot_margin
    files: dict[int | None, dict[str, int]] = {}
    for host in spec.order:
        counts = files.setdefault(spec.window_set_of.get(host), {})
        file = fleet.hosts[host].file
        counts[file] = counts.get(file, 0) + 1
    sets: list[SiteWindows] = []
    for index, counts in files.items():
        windows = spec.windows if index is None else spec.window_sets[index]
        source = "the group" if index is None else ", ".join(sorted(counts))
        sets.append(
            SiteWindows(
                source,
                sum(counts.values()),
                any_time=not windows,
                windows=next_openings(windows, now, margin),
            )
        )
    return tuple(sorted(sets, key=lambda site: (site.source == "the group", site.source)))


def waves(spec: GroupSpec) -> tuple[Wave, ...]:
    """The group's waves with their hosts, from the same boundaries the planner opens."""
    starts = (0, *spec.wave_ends[:-1])
    return tuple(
        Wave(number, spec.order[start:end])
        for number, (start, end) in enumerate(zip(starts, spec.wave_ends, strict=True), 1)
        if end > start
    )


def next_openings(
    windows: Sequence[MaintenanceWindow], now: datetime, margin: timedelta, count: int = 3
) -> tuple[WindowOpening, ...]:
    """The next ``count`` window occurrences in which a reboot may start, as the planner
    decides it (a window counts only while ``margin`` is left); the first may be open now."""
    openings: list[WindowOpening] = []
    at = now
    while len(openings) < count:
        answer = reboot_window(windows, at, margin)
        if answer.window is None or answer.starts_at is None or answer.reboot_deadline is None:
            break
        openings.append(
            WindowOpening(
                answer.window,
                answer.starts_at,
                answer.reboot_deadline,
                open_now=answer.allowed and answer.starts_at <= now,
            )
        )
        at = answer.reboot_deadline  # always later than `at`: the loop moves on
    return tuple(openings)


def settings_changed(base: Fleet, proposed: Fleet, name: str) -> tuple[str, ...]:
    """What else than the commit changes for group ``name``, for people (`paused: false →
    true`, a count of hosts added and removed, `rollout.soakTime`...)."""
    old, new = base.groups[name], proposed.groups[name]
    changes: list[str] = []
    old_follows = f"stream {old.stream}" if old.stream else "pin"
    new_follows = f"stream {new.stream}" if new.stream else "pin"
    if old_follows != new_follows:
        changes.append(f"follows: {old_follows} → {new_follows}")
    before, after = set(base.members[name]), set(proposed.members[name])
    if before != after:
        changes.append(f"hosts: +{len(after - before)} −{len(before - after)}")
    if old.paused != new.paused:
        changes.append(f"paused: {str(old.paused).lower()} → {str(new.paused).lower()}")
    for field, label in (
        ("canaries", "canaries"),
        ("depends_on", "dependsOn"),
        ("resume", "resume"),
    ):
        if getattr(old, field) != getattr(new, field):
            changes.append(label)
    old_policy, new_policy = base.rollout_policy(name), proposed.rollout_policy(name)
    for field, info in type(new_policy).model_fields.items():
        if getattr(old_policy, field) != getattr(new_policy, field):
            changes.append(f"rollout.{info.alias or field}")
    if base.maintenance_windows(name) != proposed.maintenance_windows(name):
        changes.append("maintenanceWindows")
    if any(
        h in base.hosts and base.hosts[h].windows != proposed.hosts[h].windows
        for h in proposed.members[name]
    ):
        changes.append("hosts' maintenanceWindows")
    if base.freezes(name) != proposed.freezes(name):
        changes.append("freezes")
    return tuple(changes)


# -- small pieces -------------------------------------------------------------------------------


def _ref(target: Target) -> CommitRef:
    return CommitRef(target.commit, target.version)


def gate_sentence(check: HealthCheck) -> str:
    """What a wave's soak must pass, in one line: the reviewer sees the gate before it bites."""
    conditions = [
        f"{what} {condition}"
        for what, condition in (
            ("fails if", check.failure_condition),
            ("passes if", check.success_condition),
        )
        if condition is not None
    ]
    mode = " (dry run: recorded, never blocks)" if check.dry_run else ""
    return (
        f"{check.name}{mode}: {'; '.join(conditions)}, every {format_duration(check.interval)}, "
        f"{check.consecutive_successes} success(es) in a row; query {check.query.strip()}"
    )
