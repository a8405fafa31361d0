"""`reconciler-agent enroll`: make this host's token and print its inventory entry.

The token is created once, on the host, and never leaves it: only its sha256 goes into the
fleet repo, through a pull request with the printed entry. Re-running prints the entry for
the token that is there; only ``--rotate`` replaces it (the old token keeps working until
the pull request with the new hash merges).
"""

import argparse
import configparser
import hashlib
import json
import os
import re
import secrets
import stat
import sys
from typing import Dict, List, Optional, TextIO

from reconciler.agent.files import write_atomically

#: The fleet repo's rules for a host name and a label key (reconciler/fleetrepo/models.py,
#: selectors.py; tests/test_agent_enroll.py checks they are the same), so an entry this
#: prints is one the fleet repo accepts.
HOST_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"
_TOKEN_BYTES = 32


class EnrollmentRefused(Exception):
    """The token file or the arguments are unsafe or wrong; ``str()`` says how to fix it."""


def parse_enroll_args(argv: List[str], default_config: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="reconciler-agent enroll",
        description="Create this host's token (if there is none) and print the entry to add "
        "to the fleet repo's host inventory in a pull request.",
    )
    parser.add_argument("--name", required=True, help="the host's name in the inventory")
    parser.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    parser.add_argument(
        "--token-file", help="default: token-file of the config file, or the agent's default"
    )
    parser.add_argument("--config", default=default_config)
    parser.add_argument(
        "--rotate", action="store_true", help="replace an existing token with a new one"
    )
    return parser.parse_args(argv)


def parse_labels(pairs: List[str]) -> Dict[str, str]:
    labels: Dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not re.fullmatch(LABEL_KEY_PATTERN, key):
            raise EnrollmentRefused(
                f"--label {pair!r} is not KEY=VALUE with a key of letters, digits, `.`, `_`, `/` "
                "and `-`"
            )
        labels[key] = value
    return labels


def existing_token(path: str) -> Optional[str]:
    """The token in ``path`` ("" when the file is empty), None if there is no file; refused
    if the file is unsafe."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise EnrollmentRefused(
            f"{path} is a symbolic link; a token file must be a regular file (remove the link)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise EnrollmentRefused(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise EnrollmentRefused(
            f"{path} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); the token must be the owner's alone: "
            f"chmod 600 {path}"
        )
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _check_directory(directory: str) -> None:
    """Create the token's directory (0700) if missing; refuse one others may write to, where
    they could swap the token file."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.stat(directory)
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise EnrollmentRefused(
            f"{directory} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): they could replace the token; "
            "chmod go-w it"
        )


def enroll(name: str, labels: Dict[str, str], token_file: str, rotate: bool) -> str:
    """Make sure ``token_file`` holds a token (a new one with ``rotate``); return it."""
    if not re.fullmatch(HOST_NAME_PATTERN, name):
        raise EnrollmentRefused(
            f"--name {name!r} is not a host name (letters, digits, `.` and `-`)"
        )
    _check_directory(os.path.dirname(os.path.abspath(token_file)))
    token = existing_token(token_file)
    if token == "" and not rotate:
        raise EnrollmentRefused(f"{token_file} is empty; use --rotate to write a new token")
    if token and not rotate:
        return token
    new = secrets.token_urlsafe(_TOKEN_BYTES)
    if not write_atomically(token_file, new + "\n", replace=rotate):
        # Another enrol created it a moment ago: that one stands.
        found = existing_token(token_file)
        if not found:
            raise EnrollmentRefused(f"{token_file} appeared and vanished; run again")
        return found
    return new


def inventory_entry(name: str, labels: Dict[str, str], token: str) -> str:
    """The host's item for the `hosts:` list of a HostInventory file, indented to paste."""
    lines = ["  - name: " + name]
    if labels:
        # JSON strings are YAML double-quoted scalars: `rack: "01"` stays a string.
        pairs = ", ".join(f"{k}: {json.dumps(v)}" for k, v in sorted(labels.items()))
        lines.append("    labels: {" + pairs + "}")
    digest = hashlib.sha256(token.encode()).hexdigest()
    lines.append("    tokenSha256: " + digest)
    return "\n".join(lines) + "\n"


def run_enroll(
    argv: List[str],
    default_config: str,
    default_token_file: str,
    out: Optional[TextIO] = None,
    err: Optional[TextIO] = None,
) -> int:
    """The `enroll` verb: 0 with the entry on stdout, 2 when refused (the reason on stderr)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = parse_enroll_args(argv, default_config)
    if not args.token_file:  # the same file the agent will read
        config = configparser.ConfigParser()
        config.read(args.config)
        args.token_file = config.get("agent", "token-file", fallback=default_token_file)
    try:
        labels = parse_labels(args.label)
        before = existing_token(args.token_file)
        token = enroll(args.name, labels, args.token_file, args.rotate)
    except (EnrollmentRefused, OSError) as exc:
        print(f"reconciler-agent enroll: {exc}", file=err)
        return 2
    if not before:
        print(f"created a new token in {args.token_file}", file=err)
    elif token != before:
        print(
            f"replaced the token in {args.token_file}: the old one stops working once the "
            "pull request with this entry merges, and the new one works from then on; the "
            "agent reads its token at start, so restart it after the merge",
            file=err,
        )
    else:
        print(f"kept the existing token in {args.token_file} (--rotate replaces it)", file=err)
    print(
        "add this entry under `hosts:` in the fleet repo's inventory file (hosts/*.yaml), "
        "in a pull request:",
        file=err,
    )
    out.write(inventory_entry(args.name, labels, token))
    return 0
