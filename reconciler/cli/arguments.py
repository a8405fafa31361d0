"""Arguments that several verbs share, so they read and behave the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_fleet_location(parser: argparse.ArgumentParser, rev_help: str) -> None:
    """PATH, ``--rev`` and ``--subdir``: a fleet repo on disk, or one revision of a Git repo."""
    parser.add_argument(
        "path",
        nargs="?",
        default=".",
        type=Path,
        help="fleet repo directory, or the Git repository with --rev (default: .)",
    )
    parser.add_argument("--rev", help=rev_help)
    parser.add_argument(
        "--subdir", default="", help="the fleet's directory inside the repository (or inside PATH)"
    )
