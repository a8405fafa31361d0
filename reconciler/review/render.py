"""A :class:`ChangeReview` for people and machines: plain text, a pull-request comment in
Markdown, and JSON. Pure functions of the review; the same review always renders the same.

Markdown is posted where anyone can read it, and much of the review is free text from the
fleet repo or the server (pin reasons, versions, halt reasons): it is escaped, so it cannot
close a `<details>`, mention a team or start a code span. A comment also has a size limit
(GitHub: 65,536 characters), so host lists are cut short and, past a budget, left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.durations import format_minutes
from reconciler.problems import Problem
from reconciler.review.model import (
    Blocker,
    ChangeKind,
    ChangeReview,
    CommitRef,
    GroupReview,
    HostMove,
    WindowOpening,
)

#: Host lists longer than this are folded into `<details>` in Markdown.
_FOLD_HOSTS = 8
#: At most this many hosts are named per wave or list; the rest are counted.
_LIST_HOSTS = 20
#: At most this many names or problems are listed in one place in Markdown.
_LIST_ITEMS = 100
#: The longest Markdown comment rendered by default: GitHub refuses more than 65,536
#: characters, and CI may add a line or two around it.
MARKDOWN_BUDGET = 60_000
_FULL_PLAN = "full plan: `reconciler plan --format json`"


# -- shared sentences ---------------------------------------------------------------------------


def summary(review: ChangeReview) -> str:
    """One line: how many groups change and how many are blocked."""
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
        hosts = sum(g.hosts_changing for g in changed)
        parts.append(f"{len(changed)} group(s) change; {hosts} host(s) change commit")
        blocked = sum(1 for g in changed if g.blocked)
        waiting = sum(1 for g in changed if not g.blocked and g.blockers)
        parts.append(f"{blocked} blocked" if blocked else "nothing blocks")
        parts[-1] += f", {waiting} waiting for a dependency" if waiting else ""
    if review.removed:
        parts.append(f"{_plural(len(review.removed), 'group')} removed")
    if not parts:
        parts.append("no group changes")
    if review.revision_blockers:
        parts.append("the reconciler would refuse this revision")
    parts.append(f"{len(review.unchanged)} unchanged")
    if review.problems:
        parts.append(_plural(len(review.problems), "warning"))
    return "; ".join(parts)


def compared(review: ChangeReview, text: Callable[[str], str] = str) -> str:
    """What is compared with what, and when (``text`` makes the server's address safe)."""
    proposed = f"`{review.revision[:12]}`" if review.revision else "the working tree"
    if review.live_server:
        base = f"what {text(review.live_server)} runs"
    elif review.has_base:
        base = f"`{review.base_revision[:12]}`" if review.base_revision else "the base"
    else:
        base = "nothing (no base revision: every group is new)"
    return f"{proposed} against {base}, at {_utc(review.now)}"


def commits(group: GroupReview) -> str:
    """`9.20261117.0 → 9.20261124.1`, `new → ...`, or the commit alone when it stays."""
    if group.from_ is None:
        return f"new → {group.to.label}"
    if group.from_.commit == group.to.commit:
        if group.moved_in:
            return f"{group.to.label} (same commit; {len(group.moved_in)} host(s) move in)"
        return f"{group.to.label} (same commit)"
    return f"{_label(group.from_, group.to)} → {_label(group.to, group.from_)}"


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
        lines.append((site.source, _plural(site.hosts, "host"), when))
    return lines


def opening(item: WindowOpening, now: datetime) -> str:
    """An opening in its window's own zone, with the time until it opens (or how long it stays
    usable, when open now)."""
    zone = item.window.time_zone
    start, end = _local(item.starts_at, zone), _local(item.ends_at, zone)
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
        f"({text(_label(move.from_, to))} → {text(_label(to, move.from_))})"
    )


def shortened(items: Sequence[str], limit: int = _LIST_HOSTS) -> str:
    """The first ``limit`` items, then how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f", … and {len(items) - limit} more" if len(items) > limit else "")


def _label(ref: CommitRef, other: CommitRef) -> str:
    # Two commits with the same version (a rebuild) are told apart by their checksums.
    return ref.commit[:12] if ref.version and ref.version == other.version else ref.label


def _utc(when: datetime) -> str:
    return f"{_local(when, 'UTC'):%Y-%m-%d %H:%M} UTC"


def _local(when: datetime, zone: str) -> datetime:
    return when.astimezone(ZoneInfo(zone))


def _fleet(review: ChangeReview, template: str) -> str:
    return template.format(review.fleet) if review.fleet else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _blocker_mark(blocker: Blocker) -> str:
    return "⛔" if blocker.blocking else "⏳"


# -- text ---------------------------------------------------------------------------------------


def render_text(review: ChangeReview) -> str:
    lines = [f"reconciler plan{_fleet(review, ': fleet `{}`')}: {compared(review)}"]
    lines.append(summary(review))
    if not review.valid:
        lines += [problem_line(p) for p in review.problems]
        return "\n".join(lines) + "\n"
    lines += [problem_line(p) for p in review.problems]  # warnings: the revision is valid
    lines += [f"note: {n}" for n in review.notes]
    lines += [f"REFUSED: {b.message}" for b in review.revision_blockers]
    for group in review.groups:
        lines.append("")
        follows = f"stream {group.stream}" if group.stream else "pinned"
        lines.append(f"{group.name} ({follows}, {group.kind}): {commits(group)}")
        lines.append(f"  hosts: {_hosts(group)}")
        if group.waves:
            lines.append(
                "  waves: "
                + ", ".join(f"{w.number}: {_plural(w.size, 'host')}" for w in group.waves)
            )
        if group.moved_in:
            changing = [moved(m, group.to) for m in group.moved_in]
            lines.append(f"  hosts changing commit: {shortened(changing)}")
        if group.canaries:
            lines.append(f"  canaries: {shortened(group.canaries)}")
        if group.site_windows:
            lines.append("  next windows, by site:")
            lines += [
                f"    {where} ({hosts}): {when}"
                for where, hosts, when in site_windows_lines(group, review.now)
            ]
        else:
            lines.append("  next windows: " + _windows_text(group, review.now))
        if group.freeze:
            lines.append(f"  freeze: {group.freeze}")
        if group.settings_changed:
            lines.append(f"  also changes: {', '.join(group.settings_changed)}")
        if group.pin_reason:
            lines.append(f"  pinned because: {group.pin_reason}")
        if group.live_status:
            lines.append(f"  live: {group.live_status}")
        lines += [f"  note: {n}" for n in group.notes]
        for b in group.blockers:
            lines.append(f"  {'BLOCKED' if b.blocking else 'waits'} ({b.code}): {b.message}")
    if review.unchanged:
        lines.append("")
        lines.append("unchanged: " + ", ".join(_unchanged(review)))
    if review.removed:
        lines.append("removed: " + ", ".join(review.removed))
    return "\n".join(lines) + "\n"


def _hosts(group: GroupReview) -> str:
    if not group.hosts:
        return "none"
    on_target = group.hosts_on_target
    return str(group.hosts) + (f" ({on_target} already on the target)" if on_target else "")


def _windows_text(group: GroupReview, now: datetime) -> str:
    if group.any_time or not group.windows:
        return next_window(group, now)
    return "; ".join(opening(w, now) for w in group.windows)


def _unchanged(review: ChangeReview) -> Iterable[str]:
    for u in review.unchanged:
        yield f"{u.name} ({u.commit.label}, {_plural(u.hosts, 'host')})"


# -- Markdown ---------------------------------------------------------------------------------


class _Detail(IntEnum):
    """How much of the review a comment holds; less when the whole would be too long."""

    FULL = 3  # everything, host lists cut short
    NO_HOST_TABLES = 2  # without the hosts of each wave
    TABLE = 1  # the summary table without the details of each group


def render_markdown(review: ChangeReview, budget: int = MARKDOWN_BUDGET) -> str:
    """A pull-request comment: heading, summary, a table of changed groups, then details;
    with less detail when the whole would be longer than ``budget`` characters."""
    for detail in _Detail.__members__.values():
        text = _markdown(review, detail)
        if len(text) <= budget:
            return text
    return _cut(text, budget)


def _markdown(review: ChangeReview, detail: _Detail) -> str:
    out = [f"### `reconciler plan`{_fleet(review, ': fleet `{}`')}", ""]
    out += [f"**{_text(_sentence(summary(review)))}**", ""]
    out += [f"Compared: {compared(review, _text)}.", ""]
    if not review.valid:
        out += [*_fenced([problem_line(p) for p in review.problems]), ""]
        return "\n".join(out)
    if detail < _Detail.FULL:
        left_out = "host lists" if detail is _Detail.NO_HOST_TABLES else "group details"
        out += [f"> The {left_out} are left out to fit a comment; {_FULL_PLAN}.", ""]
    for note in review.notes:
        out += [f"> Note: {_text(note)}", ""]
    for b in review.revision_blockers:
        out += [f"> ⛔ **Refused** (`{b.code}`): {_text(b.message)}", ""]
    if review.groups:
        out += [
            "| group | from → to | hosts | waves | next window | blockers |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for g in review.groups:
            blockers = " ".join(f"{_blocker_mark(b)} {b.code}" for b in g.blockers) or "—"
            out.append(
                f"| `{g.name}` | {_text(commits(g))} | {_hosts(g)} | "
                f"{' · '.join(str(w.size) for w in g.waves) or '—'} | "
                f"{_text(next_window(g, review.now))} | {blockers} |"
            )
        out.append("")
    if detail > _Detail.TABLE:
        for g in review.groups:
            out += _group_markdown(g, review.now, host_tables=detail is _Detail.FULL)
    if review.checks:
        out += ["#### OSTree commits", ""]
        out += [
            f"- {_text(c.subject)}: `{c.commit[:12]}` {c.result}: {_text(c.detail)}"
            for c in review.checks[:_LIST_ITEMS]
        ]
        out += _more(len(review.checks), "commit")
        out.append("")
    if review.unchanged:
        unchanged = [
            f"`{u.name}` ({_text(u.commit.label)}, {_plural(u.hosts, 'host')})"
            for u in review.unchanged
        ]
        out += ["Unchanged: " + shortened(unchanged, _LIST_ITEMS) + ".", ""]
    if review.removed:
        removed = shortened([f"`{n}`" for n in review.removed], _LIST_ITEMS)
        out += [
            f"Removed groups: {removed} (hosts that no other group selects are no longer managed).",
            "",
        ]
    if review.problems:
        out += [f"<details><summary>{_plural(len(review.problems), 'warning')}</summary>", ""]
        out += [*_fenced([problem_line(p) for p in review.problems]), "", "</details>", ""]
    return "\n".join(out)


def _group_markdown(g: GroupReview, now: datetime, host_tables: bool) -> list[str]:
    follows = f"stream `{g.stream}`" if g.stream else "pinned"
    out = [f"#### `{g.name}` · {follows} · {g.kind}", ""]
    if g.from_ is not None and g.from_.commit != g.to.commit:
        out += [f"{_ref_md(g.from_)} → {_ref_md(g.to)}", ""]
    elif g.from_ is None:
        out += [f"new group → {_ref_md(g.to)}", ""]
    else:
        out += [f"stays on {_ref_md(g.to)}", ""]
    if g.waves:
        waves = ", ".join(f"{w.number}: {_plural(w.size, 'host')}" for w in g.waves)
        out.append(f"- **Waves** ({_plural(g.hosts, 'host')}): {waves}")
    else:
        out.append("- **Hosts**: none")
    if g.moved_in:
        changing = [moved(m, g.to, "`{}`", _text) for m in g.moved_in]
        out.append(f"- **Hosts changing commit**: {shortened(changing)}")
    if g.canaries:
        out.append("- **Canaries**: " + shortened([f"`{c}`" for c in g.canaries]))
    if g.site_windows:
        out.append("- **Next windows, by site**:")
        out += [
            f"  - {where if where == 'the group' else _code(where)} ({hosts}): {_text(when)}"
            for where, hosts, when in site_windows_lines(g, now)
        ]
    elif g.any_time or not g.windows:
        out.append(f"- **Next windows**: {_text(next_window(g, now))}")
    else:
        out.append("- **Next windows**: " + _text("; ".join(opening(w, now) for w in g.windows)))
    if g.freeze:
        out.append(f"- **Freeze**: {_text(g.freeze)}")
    if g.settings_changed:
        out.append("- **Also changes**: " + ", ".join(_code(s) for s in g.settings_changed))
    if g.pin_reason:
        out.append(f"- **Pinned because**: {_text(g.pin_reason)}")
    if g.live_status:
        out.append(f"- **Live**: {_text(g.live_status)}")
    out += [f"- Note: {_text(n)}" for n in g.notes]
    out += [f"- {_blocker_mark(b)} **{b.code}**: {_text(b.message)}" for b in g.blockers]
    out.append("")
    if not g.waves or not host_tables:
        return out
    if g.hosts > _FOLD_HOSTS:
        out += ["<details><summary>Hosts by wave</summary>", ""]
    out += ["| wave | hosts |", "| --- | --- |"]
    canaries = set(g.canaries)
    for w in g.waves:
        hosts = [f"`{h}`" + (" (canary)" if h in canaries else "") for h in w.hosts]
        out.append(f"| {w.number} | {shortened(hosts)} |")
    out.append("")
    if g.hosts > _FOLD_HOSTS:
        out += ["</details>", ""]
    return out


def _ref_md(ref: CommitRef) -> str:
    return f"`{ref.commit[:12]}`" + (f" ({_text(ref.version)})" if ref.version else "")


def _more(total: int, word: str) -> list[str]:
    return [f"- … and {_plural(total - _LIST_ITEMS, word)} more"] if total > _LIST_ITEMS else []


def _cut(text: str, budget: int) -> str:
    """The first lines of ``text`` that fit ``budget``, and a line saying where the rest is."""
    tail = f"\n\n… cut to fit a comment; {_FULL_PLAN}.\n"
    kept: list[str] = []
    size = len(tail)
    for line in text.split("\n"):
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + tail


#: Characters that start Markdown syntax inline: escaped with a backslash in free text. An
#: underscore inside a word (`America/New_York`) cannot start emphasis and is left alone.
_MARKDOWN_SYNTAX = re.compile(r"([\\`*\[\]~|]|(?<!\w)_|_(?!\w))")


def _text(text: str) -> str:
    """Free text made inert in a Markdown table cell, list item or paragraph: no HTML, no
    emphasis, links or code spans, no @mention (a zero-width space after the @), one line."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SYNTAX.sub(r"\\\1", text)
    return " ".join(text.replace("@", "@\u200b").splitlines())


def _code(text: str) -> str:
    """``text`` as a code span: fenced by more backticks than it holds in a row."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{' '.join(text.splitlines())}{pad}{fence}"


def _fenced(lines: Sequence[str]) -> list[str]:
    """A code block that none of ``lines`` can close, cut short after many lines."""
    shown = list(lines[:_LIST_ITEMS])
    if len(lines) > _LIST_ITEMS:
        shown.append(f"… and {len(lines) - _LIST_ITEMS} more")
    longest = max((len(run) for line in shown for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *shown, fence]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


# -- JSON ---------------------------------------------------------------------------------------


def render_json(review: ChangeReview) -> str:
    return json.dumps(review_json(review), indent=2) + "\n"


def review_json(review: ChangeReview) -> dict[str, Any]:
    """The review as JSON-ready data (camelCase keys; times in UTC ISO 8601)."""
    return {
        "valid": review.valid,
        "blocked": review.blocked,
        "summary": summary(review),
        "now": review.now.astimezone(UTC).isoformat(),
        "fleet": review.fleet,
        "revision": review.revision,
        "baseRevision": review.base_revision,
        "hasBase": review.has_base,
        "liveServer": review.live_server,
        "notes": list(review.notes),
        "problems": [p.to_json() for p in review.problems],
        "revisionBlockers": [_blocker_json(b) for b in review.revision_blockers],
        "commitChecks": [
            {
                "subject": c.subject,
                "commit": c.commit,
                "urls": list(c.urls),
                "result": c.result.value,
                "detail": c.detail,
            }
            for c in review.checks
        ],
        "groups": [_group_json(g) for g in review.groups],
        "unchanged": [
            {"name": u.name, **_ref_json(u.commit), "hosts": u.hosts} for u in review.unchanged
        ],
        "removed": list(review.removed),
    }


def _group_json(g: GroupReview) -> dict[str, Any]:
    return {
        "name": g.name,
        "kind": g.kind.value,
        "changesCommit": g.kind in (ChangeKind.NEW, ChangeKind.COMMIT),
        "stream": g.stream,
        "pinReason": g.pin_reason,
        "from": _ref_json(g.from_) if g.from_ else None,
        "to": _ref_json(g.to),
        "hosts": g.hosts,
        "hostsOnTarget": g.hosts_on_target,
        "hostsChangingCommit": g.hosts_changing,
        "movedIn": [
            {"host": m.host, "fromGroup": m.from_group, "from": _ref_json(m.from_)}
            for m in g.moved_in
        ],
        "waves": [{"number": w.number, "size": w.size, "hosts": list(w.hosts)} for w in g.waves],
        "canaries": list(g.canaries),
        "rebootsAnyTime": g.any_time,
        "nextWindows": [_opening_json(w) for w in g.windows],
        "siteWindows": [
            {
                "source": site.source,
                "hosts": site.hosts,
                "rebootsAnyTime": site.any_time,
                "nextWindows": [_opening_json(w) for w in site.windows],
            }
            for site in g.site_windows
        ],
        "freeze": g.freeze,
        "settingsChanged": list(g.settings_changed),
        "blocked": g.blocked,
        "blockers": [_blocker_json(b) for b in g.blockers],
        "notes": list(g.notes),
        "liveStatus": g.live_status,
    }


def _opening_json(w: WindowOpening) -> dict[str, Any]:
    return {
        "schedule": w.window.schedule,
        "timeZone": w.window.time_zone,
        "startsAt": w.starts_at.isoformat(),
        "endsAt": w.ends_at.isoformat(),
        "rebootDeadline": w.reboot_deadline.isoformat(),
        "openNow": w.open_now,
        "local": f"{_local(w.starts_at, w.window.time_zone).isoformat()}",
    }


def _ref_json(ref: CommitRef) -> dict[str, Any]:
    return {"commit": ref.commit, "version": ref.version}


def _blocker_json(b: Blocker) -> dict[str, Any]:
    return {"code": b.code.value, "message": b.message, "blocking": b.blocking}
