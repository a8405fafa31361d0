"""The text of `reconciler status`, from the JSON of the operator API.

Fits the terminal without cutting a name: each group, promotion and host is one line of
aligned fields (names are never shortened), and its reason goes on the lines below, wrapped
and indented. ``--wide`` puts everything on one line per entry, with full commit ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from reconciler.durations import format_minutes

SHORT_COMMIT = 12
STATE_STYLES = {
    "in_sync": "green",
    "failed": "red",
    "rolled_back": "red",
    "stale": "yellow",
    "updating": "cyan",
    "draining": "bright_cyan",
    "staged": "blue",
    "staging": "blue",
    "unexpected": "magenta",
    "held": "dim",
    "halted": "red",
    "paused": "yellow",
}
REASON_INDENT = 4


@dataclass(frozen=True)
class StatusView:
    """What the operator API says, verbatim (camelCase JSON)."""

    revision: dict[str, Any]
    groups: list[dict[str, Any]]
    hosts: list[dict[str, Any]]
    promotions: list[dict[str, Any]]

    def only_group(self, name: str) -> StatusView:
        return replace(
            self,
            groups=[g for g in self.groups if g["name"] == name],
            hosts=[h for h in self.hosts if h["group"] == name],
            promotions=[],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "groups": self.groups,
            "hosts": self.hosts,
            "promotions": self.promotions,
        }


def render_status(
    view: StatusView, console: Console, wide: bool = False, now: datetime | None = None
) -> None:
    now = now or datetime.now(UTC)
    printer = _Printer(console, wide)
    console.print(Text("Fleet repo", style="bold"))
    for row, detail in _revision_rows(view.revision, now, wide):
        printer.entry(row, detail)
    printer.section("Groups", [_group_row(g, wide) for g in view.groups])
    if view.promotions:
        printer.section("Promotions", [_promotion_row(p, wide) for p in view.promotions])
    for group in view.groups:
        hosts = [h for h in view.hosts if h["group"] == group["name"]]
        printer.section(f"Hosts of {group['name']}", [_host_row(h, wide) for h in hosts])


@dataclass(frozen=True)
class _Row:
    fields: Sequence[Text]  # aligned across the rows of a section
    details: Sequence[str]  # the reason(s), below (or after, with --wide)


class _Printer:
    def __init__(self, console: Console, wide: bool) -> None:
        self.console, self.wide = console, wide

    def section(self, title: str, rows: Sequence[_Row]) -> None:
        self.console.print()
        self.console.print(Text(title, style="bold"))
        if not rows:
            self.console.print(Text("  (none)", style="dim"))
        widths = [max(len(row.fields[i]) for row in rows) for i in range(_columns(rows))]
        for row in rows:
            line = Text("  ")
            for i, field in enumerate(row.fields):
                line.append_text(field)
                if i < len(row.fields) - 1:
                    line.append(" " * (widths[i] - len(field) + 2))
            self.entry(line, row.details)

    def entry(self, line: Text, details: Sequence[str]) -> None:
        if self.wide:
            for detail in details:
                line.append("  " + detail)
            self.console.print(line, overflow="ignore", crop=False)
            return
        self.console.print(line)
        for detail in details:
            self.console.print(Padding(Text(detail), (0, 0, 0, REASON_INDENT), expand=False))


def _columns(rows: Sequence[_Row]) -> int:
    return max((len(row.fields) for row in rows), default=0)


def _revision_rows(
    revision: dict[str, Any], now: datetime, wide: bool
) -> list[tuple[Text, list[str]]]:
    rows: list[tuple[Text, list[str]]] = []
    in_force = revision.get("inForce")
    if in_force is None:
        rows.append((Text("  in force   none yet", style="red"), []))
    else:
        rows.append(
            (
                Text(
                    f"  in force   {_commit(in_force['revision'], wide)}, applied "
                    f"{_when(in_force['at'], now)}"
                ),
                [],
            )
        )
    refused = revision.get("lastRefused")
    if refused is not None:
        label = Text("  REFUSED    " if refused["pending"] else "  refused    ")
        label.stylize("bold red" if refused["pending"] else "yellow", 0, len(label))
        label.append(
            f"{_commit(refused['revision'], wide)} at {_when(refused['at'], now)}: "
            f"{refused['code']}"
        )
        where = (
            "still the branch's tip: what was merged is not in force"
            if refused["pending"]
            else "a later revision was applied"
        )
        rows.append((label, [where, *refused["errors"]]))
    fetch = revision.get("fetch")
    if fetch is not None:
        rows.append(_fetch_row(fetch, now))
    return rows


def _fetch_row(fetch: dict[str, Any], now: datetime) -> tuple[Text, list[str]]:
    success = fetch["lastSuccessAt"]
    last_success = f"last success {_when(success, now)}" if success else "never succeeded"
    failures = fetch["consecutiveFailures"]
    if failures == 0 and success:
        return Text(f"  fetch      ok, {last_success}"), []
    if failures == 0:
        return Text("  fetch      not tried yet"), []
    text = Text("  fetch      ")
    text.append(f"FAILING, {failures} in a row", style="bold red")
    text.append(f"; {last_success}")
    return text, [f"last error: {fetch['lastError']}"] if fetch["lastError"] else []


def _group_row(group: dict[str, Any], wide: bool) -> _Row:
    target = group["target"]
    build = target.get("version") or _commit(target["commit"], wide)
    if wide:
        build = f"{target.get('version') or '-'} {target['commit']}"
    counts = ", ".join(f"{n} {state}" for state, n in sorted(group["hostsByState"].items()))
    details = [group["reason"]["message"]]
    if group.get("freeze"):
        details.append(f"freeze: {group['freeze']}")
    details.extend(_gate_lines(group.get("healthChecks", [])))
    return _Row(
        [
            Text(group["name"], style="bold"),
            Text(build),
            Text(f"wave {group['wave']}/{group['wavesTotal']}"),
            _styled(group["phase"]),
            Text(counts or "no hosts"),
        ],
        details,
    )


def _promotion_row(promotion: dict[str, Any], wide: bool) -> _Row:
    hours = promotion["soakedSeconds"] / 3600
    return _Row(
        [
            Text(f"{promotion['source']} → {promotion['stream']}", style="bold"),
            Text(promotion["version"] or _commit(promotion["commit"], wide)),
            _styled(promotion["state"]),
            Text(f"{len(promotion['healthyHosts'])} healthy, {hours:.1f} h soaked"),
        ],
        [promotion["message"], *_gate_lines(promotion.get("healthChecks", []))],
    )


def _gate_lines(checks: Sequence[dict[str, Any]]) -> list[str]:
    """One line per health gate, names and statuses aligned among the entry's gates:
    ``gate call-failures  pending  1/3 successes, last 0.001 at 2026-…``."""
    if not checks:
        return []
    name_width = max(len(check["name"]) for check in checks)
    status_width = max(len(_gate_status(check)) for check in checks)
    lines = []
    for check in checks:
        progress = (
            f"{check['consecutiveSuccesses']}/{check['consecutiveSuccessesNeeded']} successes"
        )
        if check["failures"]:
            progress += f", {check['failures']} failed"
        if check["lastAt"] is None:
            last = "not evaluated yet"
        elif check["lastValue"] is None:
            last = f"last {check['lastOutcome']} at {check['lastAt']}"
        else:
            last = f"last {check['lastValue']:.6g} at {check['lastAt']}"
        lines.append(
            f"gate {check['name']:<{name_width}}  {_gate_status(check):<{status_width}}  "
            f"{progress}, {last}"
        )
    return lines


def _gate_status(check: dict[str, Any]) -> str:
    return f"{check['status']} (dry run)" if check["dryRun"] else str(check["status"])


def _host_row(host: dict[str, Any], wide: bool) -> _Row:
    reason = (host["reason"] or {}).get("message", "-")
    details = [reason]
    if host.get("lockGrantedAt"):
        details.append(f"holds the FleetLock reboot lock since {host['lockGrantedAt']}")
    fields = [
        Text(host["name"], style="bold"),
        _styled(host["state"] or "-"),
        Text(host["action"] or "-"),
        Text(f"booted {_booted(host, wide)}"),
    ]
    if wide:
        fields.append(Text(f"staged {_commit(host['stagedCommit'], wide)}"))
        fields.append(Text(f"reported {host['lastReportAt'] or 'never'}"))
    return _Row(fields, details)


def _booted(host: dict[str, Any], wide: bool) -> str:
    """The version when the host reported one (what people compare), else the commit."""
    version = host.get("bootedVersion")
    if wide:
        return f"{version or '-'} {_commit(host['bootedCommit'], wide)}"
    return str(version) if version else _commit(host["bootedCommit"], wide)


def _styled(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _commit(commit: str | None, wide: bool) -> str:
    if commit is None:
        return "-"
    return commit if wide else commit[:SHORT_COMMIT]


def _when(iso: str, now: datetime) -> str:
    at = datetime.fromisoformat(iso)
    ago = max(0.0, (now - at).total_seconds())
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({_ago(ago)})"


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s ago"
    return f"{format_minutes(timedelta(seconds=seconds))} ago"
