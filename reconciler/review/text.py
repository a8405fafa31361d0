"""The review as plain text, for a terminal: the same facts as the Markdown and the JSON
(groups, streams, promotion policies, fleet defaults, warnings, OSTree commit checks)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.review.model import ChangeReview, GroupReview
from reconciler.review.sentences import (
    check_line,
    commits,
    compared,
    default_change,
    fleet_title,
    hosts_text,
    moved,
    plural,
    problem_line,
    promotion_change,
    risk_line,
    shortened,
    site_windows_lines,
    stream_change,
    summary,
    windows_text,
)
from reconciler.review.timeline import timeline_text


def render_text(review: ChangeReview) -> str:
    lines = [f"reconciler plan{fleet_title(review, ': fleet `{}`')}: {compared(review)}"]
    lines.append(summary(review))
    if not review.valid:
        lines += [problem_line(p) for p in review.problems]
        return "\n".join(lines) + "\n"
    lines += [problem_line(p) for p in review.problems]  # warnings: the revision is valid
    lines += [f"note: {n}" for n in review.notes]
    lines += [f"REFUSED: {b.message}" for b in review.revision_blockers]
    lines += [f"WARNING ({r.code}): {risk_line(r)}" for r in review.risks]
    lines += _fleet_wide(review)
    for group in review.groups:
        lines += ["", *_group(group, review)]
    if review.checks:
        lines += ["", "OSTree commits:", *(f"  {check_line(c)}" for c in review.checks)]
    if review.unchanged:
        lines.append("")
        lines.append("unchanged: " + ", ".join(_unchanged(review)))
    if review.removed:
        lines.append("removed: " + ", ".join(review.removed))
    if review.prediction is not None:
        lines += timeline_text(review.prediction)
    return "\n".join(lines) + "\n"


def _fleet_wide(review: ChangeReview) -> list[str]:
    """The streams, promotion policies and fleet defaults that change, one line each."""
    lines = []
    for title, items in (
        ("streams:", [stream_change(s) for s in review.streams]),
        ("promotion policies:", [promotion_change(p) for p in review.promotions]),
        ("fleet defaults:", [default_change(d) for d in review.defaults]),
    ):
        if items:
            lines += ["", title, *(f"  {item}" for item in items)]
    return lines


def _group(group: GroupReview, review: ChangeReview) -> list[str]:
    follows = f"stream {group.stream}" if group.stream else "pinned"
    lines = [f"{group.name} ({follows}, {group.kind}): {commits(group)}"]
    lines.append(f"  hosts: {hosts_text(group)}")
    if group.waves:
        lines.append(
            "  waves: " + ", ".join(f"{w.number}: {plural(w.size, 'host')}" for w in group.waves)
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
        lines.append("  next windows: " + windows_text(group, review.now))
    if group.freeze:
        lines.append(f"  freeze: {group.freeze}")
    lines += [f"  health check: {sentence}" for sentence in group.health_checks]
    if group.settings_changed:
        lines.append(f"  also changes: {', '.join(group.settings_changed)}")
    if group.pin_reason:
        lines.append(f"  pinned because: {group.pin_reason}")
    if group.live_status:
        lines.append(f"  live: {group.live_status}")
    lines += [f"  note: {n}" for n in group.notes]
    for b in group.blockers:
        lines.append(f"  {'BLOCKED' if b.blocking else 'waits'} ({b.code}): {b.message}")
    return lines


def _unchanged(review: ChangeReview) -> Iterable[str]:
    for u in review.unchanged:
        yield f"{u.name} ({u.commit.label}, {plural(u.hosts, 'host')})"
