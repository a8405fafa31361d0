"""`reconciler history`: what happened on the fleet, and the fleet-repo commit behind it."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.cli.exits import ExitCode
from reconciler.errors import StoreUnavailable
from reconciler.state.history import audit_trail


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "history",
        help="the audit trail: decisions and the commits that caused them",
        description=__doc__,
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/reconciler"),
        help="the daemon's state directory (default: /var/lib/reconciler)",
    )
    parser.add_argument("--group")
    parser.add_argument("--host")
    parser.add_argument(
        "--since",
        type=datetime.fromisoformat,
        help="ISO date or time, e.g. 2026-11-25 or 2026-11-25T14:00+00:00",
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not (args.state_dir / "state.sqlite").exists():
        print(f"reconciler history: no state database in {args.state_dir}", file=sys.stderr)
        return ExitCode.USAGE
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.astimezone()
    try:
        trail = audit_trail(args.state_dir, args.group, args.host, since)
    except StoreUnavailable as exc:
        print(f"reconciler history: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.json:
        json.dump(
            [
                {
                    "at": e.event.at.isoformat(),
                    "group": e.event.group,
                    "event": e.event.kind,
                    "host": e.event.host,
                    "code": e.event.code,
                    "message": e.event.message,
                    "rollout": e.event.rollout,
                    "commit": e.event.commit,
                    "revision": e.event.revision,
                    "author": e.commit.author if e.commit else None,
                    "subject": e.commit.subject if e.commit else None,
                }
                for e in trail
            ],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return ExitCode.OK
    last_revision = None
    for entry in trail:
        event = entry.event
        if event.revision != last_revision:
            last_revision = event.revision
            if entry.commit is not None:
                print(
                    f"\n{entry.commit.id[:12]}  {entry.commit.date:%Y-%m-%d %H:%M}  "
                    f"{entry.commit.author}\n    {entry.commit.subject}"
                )
            else:
                print(f"\n{(event.revision or 'no revision')[:12]}")
        host = f" {event.host}" if event.host else ""
        print(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.group}{host}  {event.kind}: {event.message}")
    return ExitCode.OK
