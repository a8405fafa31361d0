"""`reconciler validate`: check a fleet repo (a directory or a Git revision) and print problems.

Exit codes: 0 valid (warnings allowed), 1 invalid, 2 usage error (bad path or revision).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from reconciler.cli.arguments import add_fleet_location
from reconciler.cli.exits import ExitCode
from reconciler.errors import FleetSourceUnavailable
from reconciler.fleetrepo.loader import LoadResult, load_fleet
from reconciler.fleetrepo.sources import DirectorySource, FleetSource, GitRevisionSource
from reconciler.problems import Problem


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "validate",
        help="check a fleet repo and report every problem",
        description="Check a fleet repo and report every problem as file:line:column.",
    )
    add_fleet_location(
        parser,
        "validate this Git revision (branch, tag, commit) "
        "instead of the files on disk, without checking it out",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="github: workflow commands that annotate a pull request",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        source: FleetSource = (
            GitRevisionSource(args.path, args.rev, args.subdir)
            if args.rev
            else DirectorySource(args.path / args.subdir)
        )
        result = load_fleet(source)
    except FleetSourceUnavailable as exc:
        print(f"reconciler validate: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    # Paths are shown as the user can open them: under PATH for a directory, and relative to
    # the repository (plus --subdir) for a revision, which is what CI annotations expect.
    prefix = Path(args.subdir) if args.rev else args.path / args.subdir
    {"text": _print_text, "json": _print_json, "github": _print_github}[args.format](
        result, prefix, sys.stdout
    )
    return ExitCode.INVALID if result.errors else ExitCode.OK


def _shown(problem: Problem, prefix: Path) -> str:
    return (prefix / problem.file).as_posix() if str(prefix) not in ("", ".") else problem.file


def _print_text(result: LoadResult, prefix: Path, out: TextIO) -> None:
    for p in result.problems:
        severity = "" if p.is_error else "warning: "
        field = f"{p.field}: " if p.field else ""
        out.write(f"{_shown(p, prefix)}:{p.line}:{p.column}: {field}{severity}{p.message}\n")
        if p.hint:
            out.write(f"    hint: {p.hint}\n")
    out.write(_summary(result) + "\n")


def _summary(result: LoadResult) -> str:
    counts = f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)"
    revision = f" at {result.revision[:12]}" if result.revision else ""
    if result.fleet is None:
        return f"fleet repo{revision} is INVALID: {counts} in {result.files_read} file(s)"
    fleet = result.fleet
    return (
        f"fleet `{fleet.config.name}`{revision} is valid: {len(fleet.streams)} streams, "
        f"{len(fleet.groups)} groups, {len(fleet.hosts)} hosts; {counts}"
    )


def _print_json(result: LoadResult, prefix: Path, out: TextIO) -> None:
    document = {
        "valid": result.fleet is not None,
        "revision": result.revision,
        "filesRead": result.files_read,
        "problems": [p.to_json(file=_shown(p, prefix)) for p in result.problems],
        "summary": _summary(result),
    }
    json.dump(document, out, indent=2)
    out.write("\n")


def _escape(text: str, in_property: bool = False) -> str:
    """GitHub workflow-command escaping (``%``, CR, LF; plus ``:`` and ``,`` in properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


def _print_github(result: LoadResult, prefix: Path, out: TextIO) -> None:
    for p in result.problems:
        title = _escape(p.field or p.code, in_property=True)
        message = p.message + (f" (hint: {p.hint})" if p.hint else "")
        out.write(
            f"::{p.severity.value} file={_escape(_shown(p, prefix), True)},"
            f"line={p.line},col={p.column},title={title}::{_escape(message)}\n"
        )
    out.write(_summary(result) + "\n")
