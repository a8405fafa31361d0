"""The review as a pull-request comment in Markdown: a heading, the summary, warnings, the
streams, promotion policies and fleet defaults that change, a table of the groups that
change, then details per group and the OSTree commit checks.

Markdown is posted where anyone can read it, and much of the review is free text from the
fleet repo or the server (pin reasons, versions, halt reasons): it is escaped, so it cannot
close a `<details>`, mention a team or start a code span. A comment also has a size limit
(GitHub: 65,536 characters), so host lists are cut short and, past a budget, left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import IntEnum

from reconciler.review.model import ChangeReview, CommitRef, GroupReview
from reconciler.review.sentences import (
    blocker_mark,
    commits,
    compared,
    default_change,
    fleet_title,
    hosts_text,
    moved,
    next_window,
    opening,
    plural,
    problem_line,
    promotion_change,
    risk_line,
    shortened,
    site_windows_lines,
    stream_change,
    summary,
)
from reconciler.review.timeline import (
    timeline_assumptions,
    timeline_groups,
    timeline_mermaid,
    timeline_summary,
)
from reconciler.rollout.prediction import Prediction

#: Host lists longer than this are folded into `<details>` in Markdown.
_FOLD_HOSTS = 8
#: At most this many names or problems are listed in one place in Markdown.
_LIST_ITEMS = 100
#: The longest Markdown comment rendered by default: GitHub refuses more than 65,536
#: characters, and CI may add a line or two around it.
MARKDOWN_BUDGET = 60_000
_FULL_PLAN = "full plan: `reconciler plan --format json`"


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
    out = [f"### `reconciler plan`{fleet_title(review, ': fleet `{}`')}", ""]
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
    for r in review.risks:
        out += [f"> ⚠️ **Warning** (`{r.code}`): {risk_line(r, _text)}", ""]
    out += _fleet_wide(review)
    if review.groups:
        out += [
            "| group | from → to | hosts | waves | next window | blockers |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for g in review.groups:
            blockers = " ".join(f"{blocker_mark(b)} {b.code}" for b in g.blockers) or "—"
            out.append(
                f"| `{g.name}` | {_text(commits(g))} | {hosts_text(g)} | "
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
            f"`{u.name}` ({_text(u.commit.label)}, {plural(u.hosts, 'host')})"
            for u in review.unchanged
        ]
        out += ["Unchanged: " + shortened(unchanged, _LIST_ITEMS) + ".", ""]
    if review.removed:
        removed = shortened([f"`{n}`" for n in review.removed], _LIST_ITEMS)
        out += [
            f"Removed groups: {removed} (hosts that no other group selects are no longer managed).",
            "",
        ]
    if review.prediction is not None:
        out += prediction_markdown(review.prediction)
        out.append("")
    if review.problems:
        out += [f"<details><summary>{plural(len(review.problems), 'warning')}</summary>", ""]
        out += [*_fenced([problem_line(p) for p in review.problems]), "", "</details>", ""]
    return "\n".join(out)


def _fleet_wide(review: ChangeReview) -> list[str]:
    """The streams, promotion policies and fleet defaults that change, a section each."""
    out = []
    for title, items in (
        ("Streams", [stream_change(s, _code) for s in review.streams]),
        ("Promotion policies", [promotion_change(p, _code) for p in review.promotions]),
        ("Fleet defaults", [default_change(d, _code) for d in review.defaults]),
    ):
        if items:
            out += [f"#### {title}", "", *(f"- {item}" for item in items[:_LIST_ITEMS])]
            out += [*_more(len(items), "change"), ""]
    return out


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
        waves = ", ".join(f"{w.number}: {plural(w.size, 'host')}" for w in g.waves)
        out.append(f"- **Waves** ({plural(g.hosts, 'host')}): {waves}")
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
    out += [f"- **Health check**: {_text(sentence)}" for sentence in g.health_checks]
    if g.settings_changed:
        out.append("- **Also changes**: " + ", ".join(_code(s) for s in g.settings_changed))
    if g.pin_reason:
        out.append(f"- **Pinned because**: {_text(g.pin_reason)}")
    if g.live_status:
        out.append(f"- **Live**: {_text(g.live_status)}")
    out += [f"- Note: {_text(n)}" for n in g.notes]
    out += [f"- {blocker_mark(b)} **{b.code}**: {_text(b.message)}" for b in g.blockers]
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


def prediction_markdown(prediction: Prediction) -> list[str]:
    """The summary first (it must survive any cut), then the chart, then each group's waves
    folded away."""
    out = ["#### Predicted rollout", "", _text(_sentence(timeline_assumptions(prediction))), ""]
    summary = timeline_summary(prediction)
    groups = timeline_groups(prediction)
    if not groups:
        summary = ["nothing to roll out", *summary]
    out += [*(f"- {_text(line)}" for line in summary), ""]
    chart = timeline_mermaid(prediction)
    if chart:
        out += [*chart, ""]
    if groups:
        out += ["<details><summary>Each group's waves</summary>", ""]
        out += [*_fenced([line[2:] for line in groups]), "", "</details>", ""]
    return out


def _more(total: int, word: str) -> list[str]:
    return [f"- … and {plural(total - _LIST_ITEMS, word)} more"] if total > _LIST_ITEMS else []


def _cut(text: str, budget: int) -> str:
    """The first lines of ``text`` that fit ``budget``, and a line saying where the rest is."""
    tail = f"\n\n… cut to fit a comment; {_FULL_PLAN}.\n"
    kept: list[str] = []
    size = len(tail)
    fence: str | None = None  # the fence of the code block the kept lines are in
    for line in text.split("\n"):
        closing = len(fence) + 1 if fence else 0
        if size + len(line) + 1 + closing > budget:
            break
        kept.append(line)
        size += len(line) + 1
        if match := re.match(r"^(`{3,})", line):
            if fence is None:
                fence = match.group(1)
            elif line.strip() == fence:
                fence = None
    if fence is not None:  # cut inside a code block or a chart: close it
        kept.append(fence)
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
