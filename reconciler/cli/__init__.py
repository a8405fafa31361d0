"""`reconciler` command line: parses arguments and hands each verb to its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.cli import history, plan, schema, serve, status, validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler", description="GitOps reconciler for fleets of OSTree servers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    validate.register(verbs)
    schema.register(verbs)
    serve.register(verbs)
    status.register(verbs)
    history.register(verbs)
    plan.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reconciler` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
