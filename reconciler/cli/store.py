"""`reconciler store`: the state database. `migrate` copies a SQLite state into an empty
PostgreSQL database; `check` prints the schema version of either."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.exits import ExitCode
from reconciler.errors import StoreUnavailable
from reconciler.state.backends import copy_state
from reconciler.state.database import (
    PostgresDatabase,
    SqliteDatabase,
    is_postgres_url,
    open_database,
    redacted,
    schema_version,
)
from reconciler.state.store import MIGRATIONS


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "store", help="the state database: copy SQLite to PostgreSQL, check the schema"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate",
        help="copy a SQLite state into an empty PostgreSQL database (stop the daemon first)",
        description="Copy every table of a SQLite state file (state.sqlite in the daemon's "
        "state directory) into an empty PostgreSQL database, in one transaction.",
    )
    migrate.add_argument("--from", dest="source", type=Path, required=True, metavar="SQLITE")
    migrate.add_argument("--to", dest="target", required=True, metavar="POSTGRESQL_URL")
    migrate.set_defaults(run=run_migrate)
    check = actions.add_parser(
        "check",
        help="print the schema version of a state database",
        description="Print the schema version of a SQLite file or a postgresql:// URL; "
        "exit 3 when it differs from this reconciler's (the daemon migrates an older one "
        "when it starts; a newer one is from a newer reconciler).",
    )
    check.add_argument("location", metavar="LOCATION")
    check.set_defaults(run=run_check)


def _fail(action: str, message: str) -> int:
    print(f"reconciler store {action}: {message}", file=sys.stderr)
    return ExitCode.USAGE


def run_migrate(args: argparse.Namespace) -> int:
    if not args.source.is_file():
        return _fail("migrate", f"no SQLite state at {args.source}")
    if not is_postgres_url(args.target):
        return _fail("migrate", "--to must be a postgresql:// URL")
    try:
        source = SqliteDatabase(args.source)
    except StoreUnavailable as exc:
        return _fail("migrate", str(exc))
    try:
        target = PostgresDatabase(args.target)
    except StoreUnavailable as exc:
        source.close()
        return _fail("migrate", str(exc))
    try:
        counts = copy_state(source, target)
    except StoreUnavailable as exc:
        return _fail("migrate", f"nothing was copied: {exc}")
    finally:
        target.close()
        source.close()
    width = max(len(table) for table in counts)
    for table, count in counts.items():
        print(f"{table:<{width}}  {count}")
    print(f"copied {sum(counts.values())} rows from {args.source} to {redacted(args.target)}")
    return ExitCode.OK


def run_check(args: argparse.Namespace) -> int:
    location: str = args.location
    if not is_postgres_url(location) and not Path(location).is_file():
        return _fail("check", f"no SQLite state at {location}")
    try:
        database = open_database(location)
    except StoreUnavailable as exc:
        return _fail("check", str(exc))
    try:
        version = schema_version(database)
    except StoreUnavailable as exc:
        return _fail("check", str(exc))
    finally:
        database.close()
    current = len(MIGRATIONS)
    if version == current:
        print(f"schema version {version} (current)")
        return ExitCode.OK
    if version < current:
        print(f"schema version {version} of {current}: migrated when the daemon next starts")
    else:
        print(f"schema version {version}: newer than this reconciler's ({current})")
    return ExitCode.ATTENTION
