"""`reconciler plan`: what a fleet-repo change would do, for pull-request review.

Exit codes: 0 nothing blocks (waits for a dependency that this change also starts are
fine), 1 the proposed revision is invalid, 2 usage error (no such path or revision, the
server cannot be asked), 3 something blocks (paused, halted, a dependency that will not
complete the commit, a commit missing from its OSTree repository or that cannot be checked),
4 the plan could not be made (a bug: the traceback is on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import traceback
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2

from reconciler.cli.arguments import add_fleet_location
from reconciler.cli.exits import ExitCode
from reconciler.durations import LONGEST, parse_duration
from reconciler.errors import FleetSourceUnavailable, GitRevisionNotFound, ReconcilerError
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource, FleetSource, GitRevisionSource
from reconciler.ostree.remote import commit_exists
from reconciler.review.change import invalid_review, review_change
from reconciler.review.live import LiveState, fetch_live_state
from reconciler.review.model import ChangeReview
from reconciler.review.render import render_json, render_markdown, render_text
from reconciler.review.timeline import predict_change
from reconciler.rollout.prediction import Assumptions

RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
DEFAULTS = Assumptions()


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
    prediction = parser.add_argument_group(
        "prediction", "run the rollouts in virtual time with the real planner (docs/plan.md)"
    )
    prediction.add_argument(
        "--predict",
        action=argparse.BooleanOptionalAction,
        help="predict when each wave and group finishes, with a gantt chart in markdown "
        "(default: in markdown, the pull-request comment, only)",
    )
    prediction.add_argument(
        "--stage-time",
        type=_duration,
        default=DEFAULTS.stage,
        help="how long a host takes to stage a build (default 10m)",
    )
    prediction.add_argument(
        "--reboot-time",
        type=_duration,
        default=DEFAULTS.reboot,
        help="how long a reboot and greenboot's checks take (default 10m)",
    )
    prediction.add_argument(
        "--horizon",
        type=_duration,
        default=DEFAULTS.horizon,
        help="how far ahead to predict (default 30d)",
    )
    prediction.add_argument(
        "--what-if-fail",
        action="append",
        default=[],
        metavar="HOST",
        help="predict as if this host's new build failed greenboot (repeatable)",
    )
    parser.add_argument("--format", choices=tuple(RENDERERS), default="text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ReconcilerError as exc:
        print(f"reconciler plan: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except Exception:
        # Python would exit 1, which CI reads as "the revision is invalid": blame the tool.
        traceback.print_exc()
        print("reconciler plan: failed (a bug; the traceback is above)", file=sys.stderr)
        return ExitCode.FAILED


def _run(args: argparse.Namespace) -> int:
    now = _now(args.at)
    proposed_source, base_source, notes = _sources(args)
    result = load_fleet(proposed_source)
    base, base_notes = _base_fleet(base_source)
    notes += base_notes
    live = fetch_live_state(args.against, args.token) if args.against else None
    prefix = Path(args.subdir) if args.rev else _fleet_path(args)
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
        if _predicts(args):
            review = _with_prediction(args, review, result.fleet, base, live, now)
    sys.stdout.write(RENDERERS[args.format](review))
    if not review.valid:
        return ExitCode.INVALID
    return ExitCode.ATTENTION if review.blocked else ExitCode.OK


def _with_prediction(
    args: argparse.Namespace,
    review: ChangeReview,
    proposed: Fleet,
    base: Fleet | None,
    live: LiveState | None,
    now: datetime,
) -> ChangeReview:
    """The review with its prediction. A prediction that fails by a bug fails the command
    when asked for; as the markdown comment's default, the review goes out without it (the
    traceback on stderr, a note in the review), since it is the review the gate needs."""
    _check_what_if(args.what_if_fail, proposed.hosts)
    _check_room(now, args.horizon)
    assumptions = Assumptions(
        args.stage_time, args.reboot_time, args.horizon, frozenset(args.what_if_fail)
    )
    try:
        prediction = predict_change(proposed, base, live, now, assumptions)
    except Exception:
        if args.predict or args.what_if_fail:
            raise
        traceback.print_exc()
        print(
            "reconciler plan: the prediction failed (a bug; the traceback is above)",
            file=sys.stderr,
        )
        note = "the rollout could not be predicted (a bug in the prediction; see the job's log)"
        return dataclasses.replace(review, notes=(*review.notes, note))
    return dataclasses.replace(review, prediction=prediction)


def _predicts(args: argparse.Namespace) -> bool:
    """Whether to add the prediction: asked for, a what-if, or the markdown of a pull request
    (where the timeline picture is what reviewers ask for) unless `--no-predict`."""
    if args.predict is not None:
        return bool(args.predict)
    return bool(args.what_if_fail) or args.format == "markdown"


def _duration(text: str) -> timedelta:
    """A duration option: argparse shows this error's own sentence (`… is not a duration`)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_room(now: datetime, horizon: timedelta) -> None:
    """The prediction adds the horizon, soaks and windows to ``now``: it must stay a date."""
    try:
        now + horizon + 2 * LONGEST
    except OverflowError:
        raise ReconcilerError(
            f"--at {now.isoformat()} is too late to predict from: dates end at year 9999"
        ) from None


def _check_what_if(hosts: list[str], known: Collection[str]) -> None:
    """A what-if about a host the revision does not have would predict nothing failing."""
    unknown = sorted(set(hosts) - set(known))
    if unknown:
        raise ReconcilerError(
            f"--what-if-fail: no host {', '.join(unknown)} in the proposed revision's inventory"
        )


def _now(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.astimezone()  # a naive time is local


def _sources(args: argparse.Namespace) -> tuple[FleetSource, FleetSource | None, list[str]]:
    """The proposed revision and its base, as the pull-request reviewer means them, and notes
    on the base."""
    if args.rev:
        proposed = GitRevisionSource(args.path, args.rev, args.subdir)
        if args.base:
            return proposed, GitRevisionSource(args.path, args.base, args.subdir), []
        # The first parent; a root commit has none, and then everything is new.
        base, notes = _implied_base(args.path, f"{proposed.revision}^1", args.subdir)
        return proposed, base, notes
    path = _fleet_path(args)
    directory = DirectorySource(path)
    repository, subdir = _enclosing_repository(path)
    if repository is None:
        if args.base:
            raise FleetSourceUnavailable(f"--base needs a Git repository; {path} is in none")
        return directory, None, []
    if args.base:
        return directory, GitRevisionSource(repository, args.base, subdir), []
    base, notes = _implied_base(repository, "HEAD", subdir)  # uncommitted edits are the change
    return directory, base, notes


def _implied_base(
    repository: Path, rev: str, subdir: str
) -> tuple[GitRevisionSource | None, list[str]]:
    """The base nobody named: none when there is no such commit (a root commit, a repository
    without commits) or when the fleet's directory is new in the change."""
    try:
        return GitRevisionSource(repository, rev, subdir), []
    except GitRevisionNotFound:
        return None, []
    except FleetSourceUnavailable:
        if not subdir:
            raise
        shown = "HEAD" if rev == "HEAD" else f"{rev[:12]}^1"
        return None, [
            f"`{subdir}` is not in {shown}: the fleet is new, every group is shown as new"
        ]


def _fleet_path(args: argparse.Namespace) -> Path:
    """The fleet's directory on disk: PATH, or DIR inside it with --subdir."""
    return Path(args.path) / args.subdir if args.subdir else Path(args.path)


def _enclosing_repository(path: Path) -> tuple[Path | None, str]:
    """The work tree of the Git repository holding ``path``, and ``path`` inside it."""
    where = path.resolve()
    try:
        found = pygit2.discover_repository(str(where))
        workdir = pygit2.Repository(found).workdir if found is not None else None
    except pygit2.GitError as exc:
        raise FleetSourceUnavailable(
            f"cannot open the Git repository holding {path}: {exc}"
        ) from exc
    if workdir is None:  # no repository, or a bare one: there is no working tree to compare
        return None, ""
    try:
        inside = where.relative_to(Path(workdir).resolve()).as_posix()
    except ValueError:  # inside the repository's own Git directory, not its work tree
        return None, ""
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
