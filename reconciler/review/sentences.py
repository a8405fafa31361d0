"""Sentences every output of the review shares (text, Markdown, JSON's summary), so the three
say the same thing in the same words: the summary line, what is compared, commits, windows,
moved hosts, and the changes to streams, promotion policies and fleet defaults.

Functions that put free text from the fleet repo or the server into a sentence take a
``text`` (or ``code``) function, which Markdown uses to make it inert.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from reconciler.durations import format_minutes
from reconciler.ostree.commits import CommitCheck
from reconciler.problems import Problem
from reconciler.review.model import (
    Blocker,
    ChangeReview,
    CommitRef,
    DefaultChange,
    FieldChange,
    GroupReview,
    HostMove,
    PromotionChange,
    RiskWarning,
    StreamChange,
    WindowOpening,
)

#: At most this many hosts are named per wave or list; the rest are counted.
LIST_HOSTS = 20
_COMMIT = re.compile(r"^[0-9a-f]{64}$")


def summary(review: ChangeReview) -> str:
    """One line: how many groups change and how many are blocked, the streams, promotion
    policies and fleet defaults that change, and the warnings."""
    if not review.valid:
        errors = sum(1 for p in review.problems if p.is_error)
        warnings = len(review.problems) - errors
        return (
            f"the proposed revision is INVALID ({errors} error(s), {warnings} warning(s)): "
            "the reconciler would refuse it and nothing in it takes effect"
        )
    changed = review.groups
    parts = []
    if changed:
        parts.append(f"{len(changed)} group(s) change; {_hosts_changing(changed)}")
        blocked = sum(1 for g in changed if g.blocked)
        waiting = sum(1 for g in changed if not g.blocked and g.blockers)
        parts.append(f"{blocked} blocked" if blocked else "nothing blocks")
        parts[-1] += f", {waiting} waiting for a dependency" if waiting else ""
    for count, what in (
        (len(review.streams), "stream change(s)"),
        (len(review.promotions), "promotion policy change(s)"),
        (len(review.defaults), "fleet default change(s)"),
    ):
        if count:
            parts.append(f"{count} {what}")
    if review.removed:
        parts.append(f"{plural(len(review.removed), 'group')} removed")
    if not parts:
        parts.append("no group changes")
    if review.revision_blockers:
        parts.append("the reconciler would refuse this revision")
    if review.risks:
        parts.append(f"{len(review.risks)} risk warning(s)")
    parts.append(f"{len(review.unchanged)} unchanged")
    if review.problems:
        parts.append(plural(len(review.problems), "warning"))
    return "; ".join(parts)


def _hosts_changing(groups: Sequence[GroupReview]) -> str:
    hosts = sum(g.hosts_changing for g in groups)
    unreported = sum(g.hosts_unreported for g in groups)
    more = f" ({unreported} more have reported no booted commit)" if unreported else ""
    return f"{hosts} host(s) change commit{more}"


def compared(review: ChangeReview, text: Callable[[str], str] = str) -> str:
    """What is compared with what, and when (``text`` makes the server's address safe)."""
    proposed = f"`{review.revision[:12]}`" if review.revision else "the working tree"
    if review.live_server:
        base = f"what {text(review.live_server)} runs"
    elif review.has_base:
        base = f"`{review.base_revision[:12]}`" if review.base_revision else "the base"
    else:
        base = "nothing (no base revision: every group is new)"
    return f"{proposed} against {base}, at {utc(review.now)}"


def commits(group: GroupReview) -> str:
    """`9.20261117.0 → 9.20261124.1`, `new → ...`, or the commit alone when it stays."""
    if group.from_ is None:
        return f"new → {group.to.label}"
    if group.from_.commit == group.to.commit:
        if group.moved_in:
            return f"{group.to.label} (same commit; {len(group.moved_in)} host(s) move in)"
        return f"{group.to.label} (same commit)"
    return f"{label(group.from_, group.to)} → {label(group.to, group.from_)}"


def next_window(group: GroupReview, now: datetime) -> str:
    if group.site_windows:
        return _first_site_window(group, now)
    if group.any_time:
        return "any time (no windows)"
    if not group.windows:
        return "never"
    return opening(group.windows[0], now)


def _first_site_window(group: GroupReview, now: datetime) -> str:
    """The earliest next opening over the sites of a group whose hosts have their own windows."""
    if any(site.any_time for site in group.site_windows):
        return "any time for some hosts (no windows)"
    firsts = [site.windows[0] for site in group.site_windows if site.windows]
    if not firsts:
        return "never"
    first = min(firsts, key=lambda w: w.starts_at)
    return f"{opening(first, now)}, first of {len(group.site_windows)} sites"


def site_windows_lines(group: GroupReview, now: datetime) -> list[tuple[str, str, str]]:
    """Per site (window set): where its windows come from, its host count, and its next
    openings in local time."""
    lines = []
    for site in group.site_windows:
        if site.any_time:
            when = "any time (no windows)"
        elif not site.windows:
            when = "never"
        else:
            when = "; ".join(opening(w, now) for w in site.windows)
        lines.append((site.source, plural(site.hosts, "host"), when))
    return lines


def opening(item: WindowOpening, now: datetime) -> str:
    """An opening in its window's own zone, with the time until it opens (or how long it stays
    usable, when open now)."""
    zone = item.window.time_zone
    start, end = local_time(item.starts_at, zone), local_time(item.ends_at, zone)
    span = f"{start:%a %Y-%m-%d %H:%M}–{end:%H:%M} {zone}"
    if item.open_now:
        return f"{span} (open now; reboots start for {format_minutes(item.reboot_deadline - now)})"
    return f"{span} (in {format_minutes(item.starts_at - now)})"


def problem_line(p: Problem) -> str:
    """As `reconciler validate` prints it."""
    field = f"{p.field}: " if p.field else ""
    severity = "" if p.is_error else "warning: "
    return f"{p.location()}: {field}{severity}{p.message}" + (
        f" (hint: {p.hint})" if p.hint else ""
    )


def moved(
    move: HostMove, to: CommitRef, name_format: str = "{}", text: Callable[[str], str] = str
) -> str:
    """`fra-call-05 from callservers-fra-dsp (9.20260915.2 → 9.20261117.0)`."""
    where = f" from {name_format.format(move.from_group)}" if move.from_group else ""
    return (
        f"{name_format.format(move.host)}{where} "
        f"({text(label(move.from_, to))} → {text(label(to, move.from_))})"
    )


def shortened(items: Sequence[str], limit: int = LIST_HOSTS) -> str:
    """The first ``limit`` items, then how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f", … and {len(items) - limit} more" if len(items) > limit else "")


def label(ref: CommitRef, other: CommitRef) -> str:
    # Two commits with the same version (a rebuild) are told apart by their checksums.
    return ref.commit[:12] if ref.version and ref.version == other.version else ref.label


def utc(when: datetime) -> str:
    return f"{local_time(when, 'UTC'):%Y-%m-%d %H:%M} UTC"


def local_time(when: datetime, zone: str) -> datetime:
    return when.astimezone(ZoneInfo(zone))


def fleet_title(review: ChangeReview, template: str) -> str:
    return template.format(review.fleet) if review.fleet else ""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def blocker_mark(blocker: Blocker) -> str:
    return "⛔" if blocker.blocking else "⏳"


def hosts_text(group: GroupReview) -> str:
    """`10 (1 already on the target, 9 not reporting)`."""
    if not group.hosts:
        return "none"
    on_target = group.hosts_on_target
    known = [f"{on_target} already on the target"] if on_target else []
    known += [f"{group.hosts_unreported} not reporting"] if group.hosts_unreported else []
    return str(group.hosts) + (f" ({', '.join(known)})" if known else "")


def windows_text(group: GroupReview, now: datetime) -> str:
    if group.any_time or not group.windows:
        return next_window(group, now)
    return "; ".join(opening(w, now) for w in group.windows)


# -- streams, promotion policies, fleet defaults, warnings, checks --------------------------------


def field_change(change: FieldChange, code: Callable[[str], str] = str) -> str:
    """`soakTime: 2d → 1s`; `unset` for a field not written; commits to 12 characters."""
    return f"{change.field}: {_value(change.before, code)} → {_value(change.after, code)}"


def _value(value: str | None, code: Callable[[str], str]) -> str:
    if value is None:
        return "unset"
    return code(value[:12] if _COMMIT.match(value) else value)


def stream_change(change: StreamChange, code: Callable[[str], str] = str) -> str:
    """`production (changed): commit: 3f9a0c2e6b1d → 8e1b4d5f2a7c; followed by ...`."""
    fields = "; ".join(field_change(f, code) for f in change.fields)
    return f"{code(change.name)} ({change.kind}): {fields}; {_reach(change.groups, code)}"


def promotion_change(change: PromotionChange, code: Callable[[str], str] = str) -> str:
    """`production: soakTime: 2d → 1s; minHealthyHosts: 3 → 1; followed by ...`."""
    fields = "; ".join(field_change(f, code) for f in change.fields)
    return f"{code(change.stream)}: {fields}; {_reach(change.groups, code)}"


def default_change(change: DefaultChange, code: Callable[[str], str] = str) -> str:
    """`defaults.rollout.soakTime: 2h → 1h; inherited by ...` (the groups without their own)."""
    if change.inherited_by:
        who = "inherited by " + shortened([code(g) for g in change.inherited_by])
    else:
        who = "no group inherits it (each sets its own)"
    return f"{field_change(change.change, code)}; {who}"


def _reach(groups: Sequence[str], code: Callable[[str], str]) -> str:
    if not groups:
        return "no group follows it"
    return "followed by " + shortened([code(g) for g in groups])


def risk_line(risk: RiskWarning, text: Callable[[str], str] = str) -> str:
    return f"{text(risk.subject)}: {text(risk.message)}"


def check_line(check: CommitCheck, text: Callable[[str], str] = str) -> str:
    """`stream production: 8e1b4d5f2a7c present: ...`, as the daemon's preflight sees it."""
    return f"{text(check.subject)}: {check.commit[:12]} {check.result}: {text(check.detail)}"
