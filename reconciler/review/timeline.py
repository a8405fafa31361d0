"""The predicted rollout (:mod:`reconciler.rollout.prediction`) as text, JSON and a Mermaid
``gantt`` chart for the pull request.

Times are shown in UTC and in each group's own time zone (its maintenance windows'), since
"when will Sydney be done" is asked in Sydney time. The summary (the promotions, the end, the
critical path: the chain of groups, each starting after the one before it, that sets the end)
comes first in a comment, so no cut loses it. The chart has one section per group, one bar
per wave and one per wait (a soak, a window, a freeze, a dependency: the planner's own phase,
the longest :data:`MAX_WAIT_BARS` of each group), and the reconciler's promotions as
milestones. It is kept under :data:`MERMAID_BUDGET` characters (Mermaid renders at most
50,000; GitHub's comments hold 65,536): past that, one bar per group, then fewer groups (the
last to finish; the rest are counted).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.durations import format_minutes
from reconciler.fleetrepo.fleet import Fleet
from reconciler.promotion.ahead import PredictedPromotions
from reconciler.review.live import LiveState
from reconciler.rollout.prediction import (
    Assumptions,
    GroupTimeline,
    Prediction,
    Stretch,
    no_fleet_changes,
    predict,
)

#: Above this many groups the chart has one bar per group, not per wave.
WAVE_BARS_UP_TO = 30
#: At most this many groups in the chart (the ones that finish last).
MAX_CHART_GROUPS = 120
#: The longest chart: Mermaid refuses to render more than 50,000 characters (its
#: `maxTextSize`), and the comment around it needs room too.
MERMAID_BUDGET = 30_000
#: At most this many wait bars per group (the longest), so a wave that waits for a window
#: every night for a month stays readable.
MAX_WAIT_BARS = 6
#: How a wait shows in the chart, by the planner's phase.
WAIT_BARS = {
    "soaking": "soak",
    "waiting": "waits",
    "waiting_window": "window",
    "frozen": "freeze",
    "paused": "paused",
    "halted": "halted",
}


#: What a host whose current commit is unknown is taken to run: something older than any
#: target, so the prediction rolls the target out to it.
UNKNOWN_COMMIT = "0" * 64


def predict_change(
    proposed: Fleet,
    base: Fleet | None,
    live: LiveState | None,
    now: datetime,
    assumptions: Assumptions,
) -> Prediction:
    """The proposed revision's rollouts from ``now``: each host starting on what the running
    reconciler says it booted (``live``, with `--against`), else on its group's commit in
    the base revision, else on an unknown older commit. The reconciler's own promotions
    (streams with a `promotion` policy) happen in the prediction when they are due."""
    booted: dict[str, str | None] = {}
    for host in proposed.hosts:
        seen = live.hosts.get(host) if live is not None else None
        if seen is not None and seen.booted_commit:
            booted[host] = seen.booted_commit
        elif base is not None and (group := base.group_of(host)) is not None:
            booted[host] = base.target(group).commit
        else:
            booted[host] = UNKNOWN_COMMIT
    promotes = any(stream.promotion is not None for stream in proposed.streams.values())
    changes = PredictedPromotions() if promotes else no_fleet_changes
    return predict(
        proposed,
        now,
        booted,
        assumptions,
        changes,
        completed=_completed(proposed, base, live),
        stopped=_halted_live(proposed, live),
    )


def _completed(proposed: Fleet, base: Fleet | None, live: LiveState | None) -> dict[str, set[str]]:
    """The commits each group completed before the change, as the review assumes them: from
    the running reconciler; else a group whose commit the change keeps is taken as done."""
    if live is not None:
        return {name: set(group.completed_commits) for name, group in live.groups.items()}
    if base is None:
        return {}
    return {
        name: {base.target(name).commit}
        for name in base.groups
        if name in proposed.groups and base.target(name).commit == proposed.target(name).commit
    }


def _halted_live(proposed: Fleet, live: LiveState | None) -> dict[str, str]:
    """Groups halted on the running reconciler that the change neither moves nor resumes:
    they stay halted (the planner's own test, as the review's `halted` blocker makes it)."""
    if live is None:
        return {}
    stopped = {}
    for name, group in live.groups.items():
        if name not in proposed.groups or group.phase != "halted":
            continue
        resume = proposed.groups[name].resume
        moved = proposed.target(name).commit != group.commit
        if not moved and not (resume and resume != group.halt_resume_token):
            stopped[name] = f"halted on the running reconciler: {group.reason}"
    return stopped


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _local(at: datetime, zone: str | None) -> str:
    if zone is None or zone in ("UTC", "Etc/UTC"):
        return ""  # UTC already: shown once
    local = at.astimezone(ZoneInfo(zone))
    return f" ({local:%Y-%m-%d %H:%M %Z} {zone})"


def timeline_assumptions(prediction: Prediction) -> str:
    a = prediction.assumptions
    return (
        f"assuming every host succeeds, staging takes {format_minutes(a.stage)} and a reboot "
        f"with greenboot {format_minutes(a.reboot)}; looking {format_minutes(a.horizon)} ahead"
        + (f"; what if {', '.join(sorted(a.failing))} fail" if a.failing else "")
    )


def timeline_text(prediction: Prediction) -> list[str]:
    """The prediction for the terminal: each group's waves, then the summary."""
    lines = ["", timeline_heading(prediction)]
    groups = timeline_groups(prediction)
    if not groups:
        return [*lines, "  nothing to roll out", *(f"  {s}" for s in timeline_summary(prediction))]
    return lines + groups + [f"  {line}" for line in timeline_summary(prediction)]


def timeline_heading(prediction: Prediction) -> str:
    return f"Predicted rollout ({timeline_assumptions(prediction)})"


def timeline_groups(prediction: Prediction) -> list[str]:
    """Each group that rolls out, by start: its span, its waves, its longest wait."""
    lines: list[str] = []
    rolling = sorted(
        (g for g in prediction.groups if g.rolls_out),
        key=lambda g: (g.started is None, g.started or prediction.start, g.group),
    )
    for group in rolling:
        if group.started is None:
            lines.append(f"  {group.group}: does not start: {group.unfinished}")
            continue
        end = (
            _utc(group.finished) + _local(group.finished, group.time_zone)
            if group.finished
            else "does not finish"
        )
        lines.append(
            f"  {group.group}: {_utc(group.started)}{_local(group.started, group.time_zone)} "
            f"-> {end}"
        )
        for wave in group.waves:
            opened = _utc(wave.opened) if wave.opened else "not opened"
            done = _utc(wave.done) if wave.done else "not done"
            lines.append(f"    wave {wave.number} ({wave.hosts} host(s)): {opened} -> {done}")
        if group.unfinished:
            lines.append(f"    does not finish: {group.unfinished}")
        elif (wait := group.longest_wait()) is not None:
            lines.append(f"    longest wait: {format_minutes(wait[0])} {wait[1]}")
    return lines


def timeline_summary(prediction: Prediction) -> list[str]:
    """The promotions, when everything is done (or what does not finish), the critical path
    and its longest wait: what a reviewer reads first."""
    lines = [f"promotion {_utc(m.at)}: {m.what}" for m in prediction.milestones]
    lines += list(prediction.pending)
    if not any(g.rolls_out for g in prediction.groups):
        return lines
    if prediction.end is None:
        unfinished = [g.group for g in prediction.groups if g.rolls_out and g.finished is None]
        return [*lines, f"not every group finishes within the horizon: {', '.join(unfinished)}"]
    took = format_minutes(prediction.end - prediction.start)
    lines.append(f"all done {_utc(prediction.end)} ({took} after the merge)")
    path = prediction.critical_path()
    if path:
        lines.append(f"critical path: {' -> '.join(g.group for g in path)}")
    waits = [(wait, g.group) for g in path if (wait := g.longest_wait())]
    if waits:
        (longest, why), group = max(waits, key=lambda found: found[0][0])
        phase = why.split(":", 1)[0]
        lines.append(f"its longest wait: {group}, {format_minutes(longest)} ({phase})")
    return lines


def timeline_json(prediction: Prediction) -> dict[str, Any]:
    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    def stretch(s: Stretch) -> dict[str, Any]:
        return {"start": at(s.start), "end": at(s.end), "phase": s.phase, "why": s.why}

    critical = prediction.critical_group()
    return {
        "start": at(prediction.start),
        "end": at(prediction.end),
        "criticalGroup": critical.group if critical else None,
        "criticalPath": [g.group for g in prediction.critical_path()],
        "assumptions": {
            "stageMinutes": prediction.assumptions.stage.total_seconds() / 60,
            "rebootMinutes": prediction.assumptions.reboot.total_seconds() / 60,
            "horizonDays": prediction.assumptions.horizon.total_seconds() / 86400,
            "failing": sorted(prediction.assumptions.failing),
        },
        "promotions": [
            {"at": at(m.at), "stream": m.stream, "from": m.source, "what": m.what}
            for m in prediction.milestones
        ],
        "pending": list(prediction.pending),
        "groups": [
            {
                "name": g.group,
                "timeZone": g.time_zone,
                "start": at(g.started),
                "end": at(g.finished),
                "unfinished": g.unfinished,
                "dependsOn": list(g.depends_on),
                "after": list(g.after),
                "promoted": at(g.promoted),
                "waves": [
                    {
                        "number": w.number,
                        "hosts": w.hosts,
                        "opened": at(w.opened),
                        "done": at(w.done),
                    }
                    for w in g.waves
                ],
                "waits": [stretch(s) for s in g.stretches],
            }
            for g in prediction.groups
            if g.rolls_out
        ],
    }


def _name(text: str) -> str:
    """A task or section name Mermaid reads as text: one line, no colon, hash or semicolon."""
    return " ".join(re.sub(r"[:#;]", " ", text).split()) or "-"


def _when(at: datetime) -> str:
    return f"{at.astimezone(ZoneInfo('UTC')):%Y-%m-%dT%H:%M}"


def timeline_mermaid(prediction: Prediction, budget: int = MERMAID_BUDGET) -> list[str]:
    """A Mermaid `gantt` chart of the prediction, in UTC, of at most ``budget`` characters:
    one bar per wave and wait while that fits, else one bar per group, for as many of the
    groups that finish last as fit."""
    rolling = [g for g in prediction.groups if g.rolls_out and g.started is not None]
    if not rolling:
        return []
    last_first = sorted(
        rolling, key=lambda g: (g.finished is None, g.finished or g.started), reverse=True
    )
    count = min(len(rolling), MAX_CHART_GROUPS)
    per_wave = count <= WAVE_BARS_UP_TO
    while True:
        shown = sorted(last_first[:count], key=lambda g: (g.started, g.group))
        lines = _chart(prediction, shown, per_wave)
        if count < len(rolling):
            lines.append(f"{len(rolling) - count} more group(s) finish earlier; see the text.")
        if sum(len(line) + 1 for line in lines) <= budget or count == 1:
            return lines
        if per_wave:
            per_wave = False
        else:
            count = max(1, count // 2)


def _chart(prediction: Prediction, shown: list[GroupTimeline], per_wave: bool) -> list[str]:
    lines = [
        "```mermaid",
        "gantt",
        "    title Predicted rollout (UTC)",
        "    dateFormat YYYY-MM-DDTHH:mm",
        "    axisFormat %d %b %H:%M",
    ]
    horizon_end = prediction.start + prediction.assumptions.horizon
    if prediction.milestones:
        lines.append("    section promotions")
        lines += [
            f"    {_name('promotion - ' + m.what)} :milestone, {_when(m.at)}, 0m"
            for m in prediction.milestones
        ]
    for group in shown:
        lines.append(f"    section {_name(group.group)}")
        if per_wave:
            lines += _wave_bars(group, prediction.start, horizon_end)
        else:
            assert group.started is not None
            end = group.finished or horizon_end
            tag = "" if group.finished else "crit, "
            lines.append(f"    rollout :{tag}{_when(group.started)}, {_when(end)}")
    lines.append("```")
    return lines


def _wave_bars(group: GroupTimeline, merged: datetime, horizon_end: datetime) -> list[str]:
    """One bar per wave, and one per wait (the longest few, and for its stream's promotion),
    in time order."""
    bars: list[tuple[datetime, str]] = []
    idle, promoted = group.idle_since, group.promoted
    if idle is not None and promoted is not None and _when(promoted) != _when(idle):
        bars.append((idle, f"    awaits promotion :{_when(idle)}, {_when(promoted)}"))
    for wave in group.waves:
        if wave.opened is None:
            break
        done = wave.done or horizon_end
        tag = "" if wave.done else "crit, "
        label = f"wave {wave.number} ({wave.hosts})"
        bars.append((wave.opened, f"    {label} :{tag}{_when(wave.opened)}, {_when(done)}"))
    waits = [s for s in group.stretches if _when(s.start) != _when(s.end)]
    for wait in sorted(waits, key=lambda s: s.length, reverse=True)[:MAX_WAIT_BARS]:
        tag = {"halted": "crit, ", "soaking": "active, "}.get(wait.phase, "")
        label = WAIT_BARS.get(wait.phase, _name(wait.phase))
        bars.append((wait.start, f"    {label} :{tag}{_when(wait.start)}, {_when(wait.end)}"))
    return [bar for _, bar in sorted(bars, key=lambda bar: bar[0])]
