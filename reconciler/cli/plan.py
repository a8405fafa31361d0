"""`reconciler plan`: what a fleet-repo change would do, for pull-request review.

Exit codes: 0 nothing blocks (waits for a dependency that this change also starts are
fine), 1 the proposed revision is invalid, 2 usage error (no such path or revision, the
server cannot be asked), 3 something blocks (paused, halted, a dependency that will not
complete the commit, a commit missing from its OSTree repository or that cannot be checked).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pygit2

from reconciler.cli.arguments import add_fleet_location
from reconciler.errors import FleetSourceUnavailable, GitRevisionNotFound, LiveStateUnavailable
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource, FleetSource, GitRevisionSource
from reconciler.live import fetch_live_state
from reconciler.preflight import commit_exists
from reconciler.review import ChangeReview, invalid_review, review_change
from reconciler.review_render import render_json, render_markdown, render_text

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_BLOCKED = 0, 1, 2, 3
RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "plan",
        help="what a fleet-repo change would do: groups, waves, windows, blockers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fleet_location(parser, "review this Git revision (default base: its first parent)")
    parser.add_argument(
        "--base",
        help="compare with this Git revision (e.g. the pull request's merge base); "
        "default: REV's first parent with --rev, else HEAD of the repository holding PATH",
    )
    parser.add_argument(
        "--against",
        metavar="URL",
        help="take each group's current commit and progress from this running reconciler",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("RECONCILER_OPERATOR_TOKEN"),
        help="operator token for --against (or RECONCILER_OPERATOR_TOKEN)",
    )
    parser.add_argument(
        "--at",
        type=datetime.fromisoformat,
        help="plan as if merged at this ISO time, e.g. 2026-11-25T14:00+00:00 (default: now)",
    )
    parser.add_argument(
        "--no-commit-check",
        action="store_true",
        help="do not ask the OSTree repositories whether new commits exist",
    )
    parser.add_argument("--format", choices=tuple(RENDERERS), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = _now(args.at)
    try:
        proposed_source, base_source = _sources(args)
        result = load_fleet(proposed_source)
        base, notes = _base_fleet(base_source)
        live = fetch_live_state(args.against, args.token) if args.against else None
    except (FleetSourceUnavailable, LiveStateUnavailable) as exc:
        print(f"reconciler plan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    prefix = Path(args.subdir) if args.rev else args.path
    problems = [dataclasses.replace(p, file=_shown(p.file, prefix)) for p in result.problems]
    review: ChangeReview
    if result.fleet is None:
        review = invalid_review(
            problems,
            result.revision,
            now,
            base.revision if base else None,
            args.against,
        )
    else:
        review = review_change(
            result.fleet,
            base,
            now,
            live=live,
            commit_checker=None if args.no_commit_check else commit_exists,
            problems=problems,
            notes=notes,
        )
    sys.stdout.write(RENDERERS[args.format](review))
    if not review.valid:
        return EXIT_INVALID
    return EXIT_BLOCKED if review.blocked else EXIT_OK


def _now(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.astimezone()  # a naive time is local


def _sources(args: argparse.Namespace) -> tuple[FleetSource, FleetSource | None]:
    """The proposed revision and its base, as the pull-request reviewer means them."""
    if args.rev:
        proposed = GitRevisionSource(args.path, args.rev, args.subdir)
        if args.base:
            return proposed, GitRevisionSource(args.path, args.base, args.subdir)
        try:  # the first parent; a root commit has none, and then everything is new
            return proposed, GitRevisionSource(args.path, f"{proposed.revision}^1", args.subdir)
        except GitRevisionNotFound:
            return proposed, None
    directory = DirectorySource(args.path)
    repository, subdir = _enclosing_repository(args.path)
    if repository is None:
        if args.base:
            raise FleetSourceUnavailable(f"--base needs a Git repository; {args.path} is in none")
        return directory, None
    try:  # uncommitted edits are the change
        return directory, GitRevisionSource(repository, args.base or "HEAD", subdir)
    except GitRevisionNotFound:
        if args.base:
            raise
        return directory, None  # a repository with no commit yet


def _enclosing_repository(path: Path) -> tuple[Path | None, str]:
    """The work tree of the Git repository holding ``path``, and ``path`` inside it."""
    found = pygit2.discover_repository(str(path.resolve()))
    if found is None:
        return None, ""
    workdir = pygit2.Repository(found).workdir
    if workdir is None:  # a bare repository: there is no working tree to compare
        return None, ""
    inside = path.resolve().relative_to(Path(workdir).resolve()).as_posix()
    return Path(workdir), "" if inside == "." else inside


def _base_fleet(source: FleetSource | None) -> tuple[Fleet | None, list[str]]:
    if source is None:
        return None, []
    result = load_fleet(source)
    if result.fleet is None:
        revision = (result.revision or "")[:12]
        return None, [
            f"the base revision {revision} does not validate; every group is shown as new"
        ]
    return result.fleet, []


def _shown(file: str, prefix: Path) -> str:
    return (prefix / file).as_posix() if str(prefix) not in ("", ".") else file
