"""`reconciler status`: the fleet repo as the server follows it (revision in force, the last
refused one, fetch health), then groups, promotions and hosts with their reasons.

Exit codes (docs/cli.md): 0 nothing needs an operator, 2 the server cannot be asked,
3 something needs an operator: a halted group, a refused revision still at the branch's tip,
or fetching the fleet repo failing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rich.console import Console

from reconciler.cli.exits import ExitCode
from reconciler.cli.status_text import StatusView, render_status
from reconciler.errors import LiveStateUnavailable
from reconciler.review.live import get_json

#: Group phases that stay until someone acts.
NEEDS_OPERATOR = frozenset({"halted"})


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "status",
        help="show the revision in force, groups, waves and hosts of a running reconciler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument(
        "--wide",
        action="store_true",
        help="one line per group and host whatever the terminal's width, full commit ids, "
        "staged commits and last report times",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        view = StatusView(
            revision=get_json(args.server, "/v1/revision", args.token),
            groups=get_json(args.server, "/v1/groups", args.token),
            hosts=get_json(args.server, "/v1/hosts", args.token),
            promotions=get_json(args.server, "/v1/promotions", args.token),
        )
    except LiveStateUnavailable as exc:
        print(f"reconciler status: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.group:
        view = view.only_group(args.group)
    if args.json:
        json.dump(view.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console(soft_wrap=True) if args.wide else Console()
        render_status(view, console, wide=args.wide)
    return ExitCode.ATTENTION if attention_needed(view) else ExitCode.OK


def attention_needed(view: StatusView) -> bool:
    """Something that will not resolve by itself: a halted group, a refused revision at the
    branch's tip (merged work that is not in force), or fetches of the fleet repo failing."""
    refused = view.revision.get("lastRefused")
    fetch = view.revision.get("fetch")
    return (
        any(group["phase"] in NEEDS_OPERATOR for group in view.groups)
        or bool(refused and refused["pending"])
        or bool(fetch and fetch["consecutiveFailures"] > 0)
    )
