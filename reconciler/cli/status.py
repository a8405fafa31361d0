"""`reconciler status`: groups, waves and hosts with their reasons, from a running server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from reconciler.errors import LiveStateUnavailable
from reconciler.review.live import get_json

STATE_STYLES = {
    "in_sync": "green",
    "failed": "red",
    "rolled_back": "red",
    "stale": "yellow",
    "updating": "cyan",
    "staged": "blue",
    "staging": "blue",
    "unexpected": "magenta",
    "held": "dim",
}


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "status", help="show groups, waves and hosts of a running reconciler", description=__doc__
    )
    parser.add_argument(
        "--server", default=os.environ.get("RECONCILER_SERVER", "http://127.0.0.1:8443")
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("RECONCILER_OPERATOR_TOKEN"),
        help="operator token (or RECONCILER_OPERATOR_TOKEN)",
    )
    parser.add_argument("--group", help="only this group")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        groups = get_json(args.server, "/v1/groups", args.token)
        hosts = get_json(args.server, "/v1/hosts", args.token)
        promotions = get_json(args.server, "/v1/promotions", args.token)
    except LiveStateUnavailable as exc:
        print(f"reconciler status: {exc}", file=sys.stderr)
        return 2 if exc.refused else 1
    if args.group:
        groups = [g for g in groups if g["name"] == args.group]
        hosts = [h for h in hosts if h["group"] == args.group]
    if args.json:
        json.dump(
            {"groups": groups, "hosts": hosts, "promotions": promotions}, sys.stdout, indent=2
        )
        sys.stdout.write("\n")
        return 0
    console = Console()
    summary = Table(title="Groups", show_lines=False)
    for column in ("group", "target", "wave", "phase", "hosts", "why"):
        summary.add_column(column)
    for group in groups:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(group["hostsByState"].items()))
        target = group["target"]
        summary.add_row(
            group["name"],
            target.get("version") or target["commit"][:12],
            f"{group['wave']}/{group['wavesTotal']}",
            group["phase"],
            counts,
            group["reason"]["message"],
        )
    console.print(summary)
    for group in groups:
        if group.get("freeze"):
            console.print(f"{group['name']}: {group['freeze']}")
    if promotions and not args.group:
        console.print(promotion_table(promotions))
    for group in groups:
        table = Table(title=f"{group['name']}")
        for column in ("host", "state", "action", "booted", "why"):
            table.add_column(column)
        for host in (h for h in hosts if h["group"] == group["name"]):
            state = host["state"] or "-"
            why = (host["reason"] or {}).get("message", "-")
            if host.get("lockGrantedAt"):
                why += f" [holds the FleetLock reboot lock since {host['lockGrantedAt']}]"
            table.add_row(
                host["name"],
                f"[{STATE_STYLES.get(state, 'white')}]{state}[/]",
                host["action"] or "-",
                (host["bootedCommit"] or "-")[:12],
                why,
            )
        console.print(table)
    return 0


def promotion_table(promotions: list[dict[str, Any]]) -> Table:
    table = Table(title="Promotions")
    for column in ("stream", "from", "build", "state", "healthy", "soaked", "why"):
        table.add_column(column)
    for promotion in promotions:
        hours = promotion["soakedSeconds"] / 3600
        table.add_row(
            promotion["stream"],
            promotion["source"],
            promotion["version"] or promotion["commit"][:12],
            promotion["state"],
            str(len(promotion["healthyHosts"])),
            f"{hours:.1f} h",
            promotion["message"],
        )
    return table
