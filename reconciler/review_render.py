"""A :class:`ChangeReview` for people and machines: plain text, a pull-request comment in
Markdown, and JSON. Pure functions of the review; the same review always renders the same."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.durations import format_minutes
from reconciler.fleetrepo.problems import Problem
from reconciler.review import (
    Blocker,
    ChangeKind,
    ChangeReview,
    CommitRef,
    GroupReview,
    WindowOpening,
)

#: Host lists longer than this are folded into `<details>` in Markdown.
_FOLD_HOSTS = 8


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
    if not changed:
        text = "no group changes"
    else:
        hosts = sum(g.hosts for g in changed)
        text = f"{len(changed)} group(s) change ({hosts} host(s))"
        blocked = sum(1 for g in changed if g.blocked)
        waiting = sum(1 for g in changed if not g.blocked and g.blockers)
        text += f"; {blocked} blocked" if blocked else "; nothing blocks"
        text += f", {waiting} waiting for a dependency" if waiting else ""
    if review.revision_blockers:
        text += "; the reconciler would refuse this revision"
    return text + f"; {len(review.unchanged)} unchanged"


def compared(review: ChangeReview) -> str:
    """What is compared with what, and when."""
    proposed = f"`{review.revision[:12]}`" if review.revision else "the working tree"
    if review.live_server:
        base = f"what {review.live_server} runs"
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
        return f"{group.to.label} (same commit)"
    return f"{_label(group.from_, group.to)} → {_label(group.to, group.from_)}"


def next_window(group: GroupReview, now: datetime) -> str:
    if group.any_time:
        return "any time (no windows)"
    if not group.windows:
        return "never"
    return opening(group.windows[0], now)


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
    lines += [f"note: {n}" for n in review.notes]
    lines += [f"REFUSED: {b.message}" for b in review.revision_blockers]
    for group in review.groups:
        lines.append("")
        follows = f"stream {group.stream}" if group.stream else "pinned"
        lines.append(f"{group.name} ({follows}, {group.kind}): {commits(group)}")
        lines.append(f"  hosts: {_hosts(group)}")
        lines.append(
            "  waves: " + ", ".join(f"{w.number}: {_plural(w.size, 'host')}" for w in group.waves)
        )
        if group.canaries:
            lines.append(f"  canaries: {', '.join(group.canaries)}")
        lines.append("  next windows: " + _windows_text(group, review.now))
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
        lines.append("unchanged: " + ", ".join(_unchanged(review, "{}")))
    if review.removed:
        lines.append("removed: " + ", ".join(review.removed))
    return "\n".join(lines) + "\n"


def _hosts(group: GroupReview) -> str:
    on_target = group.hosts_on_target
    return str(group.hosts) + (f" ({on_target} already on the target)" if on_target else "")


def _windows_text(group: GroupReview, now: datetime) -> str:
    if group.any_time or not group.windows:
        return next_window(group, now)
    return "; ".join(opening(w, now) for w in group.windows)


def _unchanged(review: ChangeReview, name_format: str) -> Iterable[str]:
    for u in review.unchanged:
        yield f"{name_format.format(u.name)} ({u.commit.label}, {_plural(u.hosts, 'host')})"


# -- Markdown -----------------------------------------------------------------------------------


def render_markdown(review: ChangeReview) -> str:
    """A pull-request comment: heading, summary, a table of changed groups, then details."""
    out = [f"### `reconciler plan`{_fleet(review, ': fleet `{}`')}", ""]
    out += [f"**{_sentence(summary(review))}**", "", f"Compared: {compared(review)}.", ""]
    if not review.valid:
        out += ["```", *(problem_line(p) for p in review.problems), "```", ""]
        return "\n".join(out)
    for note in review.notes:
        out += [f"> Note: {_cell(note)}", ""]
    for b in review.revision_blockers:
        out += [f"> ⛔ **Refused** (`{b.code}`): {_cell(b.message)}", ""]
    if review.groups:
        out += [
            "| group | from → to | hosts | waves | next window | blockers |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for g in review.groups:
            blockers = " ".join(f"{_blocker_mark(b)} {b.code}" for b in g.blockers) or "—"
            out.append(
                f"| `{g.name}` | {_cell(commits(g))} | {_hosts(g)} | "
                f"{' · '.join(str(w.size) for w in g.waves)} | "
                f"{_cell(next_window(g, review.now))} | {blockers} |"
            )
        out.append("")
    for g in review.groups:
        out += _group_markdown(g, review.now)
    if review.checks:
        out += ["#### OSTree commits", ""]
        out += [
            f"- {c.subject}: `{c.commit[:12]}` {c.result}: {_cell(c.detail)}" for c in review.checks
        ]
        out.append("")
    if review.unchanged:
        out += ["Unchanged: " + ", ".join(_unchanged(review, "`{}`")) + ".", ""]
    if review.removed:
        removed = ", ".join(f"`{n}`" for n in review.removed)
        out += [f"Removed groups: {removed} (their hosts are no longer managed).", ""]
    return "\n".join(out)


def _group_markdown(g: GroupReview, now: datetime) -> list[str]:
    follows = f"stream `{g.stream}`" if g.stream else "pinned"
    out = [f"#### `{g.name}` · {follows} · {g.kind}", ""]
    if g.from_ is not None and g.from_.commit != g.to.commit:
        out += [f"{_ref_md(g.from_)} → {_ref_md(g.to)}", ""]
    elif g.from_ is None:
        out += [f"new group → {_ref_md(g.to)}", ""]
    else:
        out += [f"stays on {_ref_md(g.to)}", ""]
    waves = ", ".join(f"{w.number}: {_plural(w.size, 'host')}" for w in g.waves)
    out.append(f"- **Waves** ({_plural(g.hosts, 'host')}): {waves}")
    if g.canaries:
        out.append("- **Canaries**: " + ", ".join(f"`{c}`" for c in g.canaries))
    if g.any_time or not g.windows:
        out.append(f"- **Next windows**: {next_window(g, now)}")
    else:
        out.append("- **Next windows**: " + "; ".join(opening(w, now) for w in g.windows))
    if g.settings_changed:
        out.append("- **Also changes**: " + ", ".join(f"`{s}`" for s in g.settings_changed))
    if g.pin_reason:
        out.append(f"- **Pinned because**: {_cell(g.pin_reason)}")
    if g.live_status:
        out.append(f"- **Live**: {_cell(g.live_status)}")
    out += [f"- Note: {_cell(n)}" for n in g.notes]
    out += [f"- {_blocker_mark(b)} **{b.code}**: {_cell(b.message)}" for b in g.blockers]
    out.append("")
    if g.hosts > _FOLD_HOSTS:
        out += ["<details><summary>Hosts by wave</summary>", ""]
    out += ["| wave | hosts |", "| --- | --- |"]
    canaries = set(g.canaries)
    for w in g.waves:
        hosts = ", ".join(f"`{h}`" + (" (canary)" if h in canaries else "") for h in w.hosts)
        out.append(f"| {w.number} | {hosts} |")
    out.append("")
    if g.hosts > _FOLD_HOSTS:
        out += ["</details>", ""]
    return out


def _ref_md(ref: CommitRef) -> str:
    return f"`{ref.commit[:12]}`" + (f" ({ref.version})" if ref.version else "")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return text.replace("|", "\\|").replace("\n", " ")


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
        "now": review.now.isoformat(),
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
        "waves": [{"number": w.number, "size": w.size, "hosts": list(w.hosts)} for w in g.waves],
        "canaries": list(g.canaries),
        "rebootsAnyTime": g.any_time,
        "nextWindows": [
            {
                "schedule": w.window.schedule,
                "timeZone": w.window.time_zone,
                "startsAt": w.starts_at.isoformat(),
                "endsAt": w.ends_at.isoformat(),
                "rebootDeadline": w.reboot_deadline.isoformat(),
                "openNow": w.open_now,
                "local": f"{_local(w.starts_at, w.window.time_zone).isoformat()}",
            }
            for w in g.windows
        ],
        "settingsChanged": list(g.settings_changed),
        "blocked": g.blocked,
        "blockers": [_blocker_json(b) for b in g.blockers],
        "notes": list(g.notes),
        "liveStatus": g.live_status,
    }


def _ref_json(ref: CommitRef) -> dict[str, Any]:
    return {"commit": ref.commit, "version": ref.version}


def _blocker_json(b: Blocker) -> dict[str, Any]:
    return {"code": b.code.value, "message": b.message, "blocking": b.blocking}
