"""`reconciler` command line: parses arguments and hands each verb to its module."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from reconciler import __version__
from reconciler.cli import history, plan, schema, serve, status, store, validate
from reconciler.cli.exits import ExitCode


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
    store.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `reconciler` console script; returns the exit code (docs/cli.md)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130  # what a shell reports for SIGINT
    except Exception:
        # Python would exit 1, which scripts read as "the fleet repo is invalid": blame the
        # tool instead, with the traceback to report.
        traceback.print_exc()
        print(f"reconciler {args.verb}: failed (a bug; the traceback is above)", file=sys.stderr)
        return ExitCode.FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
