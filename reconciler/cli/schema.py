"""`reconciler schema`: write (or check) the generated JSON Schema and field reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.exits import ExitCode
from reconciler.fleetrepo.reference import SCHEMA_FILES, json_schema, render_reference_into


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "schema", help="regenerate the fleet-repo JSON Schema and reference docs"
    )
    parser.add_argument("--schema-dir", type=Path, default=Path("fleet-repo-schema"))
    parser.add_argument(
        "--reference",
        type=Path,
        default=Path("docs/fleet-repo.md"),
        help="markdown file holding the generated-reference markers",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a generated file is out of date",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    wanted = {args.schema_dir / name: json_schema(model) for name, model in SCHEMA_FILES.items()}
    try:
        wanted[args.reference] = render_reference_into(args.reference.read_text())
    except (OSError, ValueError) as exc:
        print(f"reconciler schema: cannot update {args.reference}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run `make schema`)", file=sys.stderr)
        return ExitCode.INVALID if stale else ExitCode.OK
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path}")
    return ExitCode.OK
