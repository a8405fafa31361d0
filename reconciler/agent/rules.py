"""What an OSTree commit, remote and ref may look like: one set of rules for both sides.

The fleet-repo schema (`reconciler/fleetrepo/models.py`) validates streams and pins with these
patterns, and the agent checks every target against them before it reaches a command line or
an origin file, so a fleet revision the reconciler accepts is one every host can apply.

The rules follow OSTree's own (a ref is `/`-separated parts, each starting with a letter, a
digit or `_`; a remote is one such part), restricted to ASCII. So no value starts with `-`
(it would read as an option), no part is `.` or `..`, and there is no whitespace, control
character, `:` or empty part. The patterns are plain strings that Python's `re`, pydantic's
Rust engine and JSON Schema (ECMA-262) all read alike: no look-arounds. Match them with
`fullmatch`, never `match`: Python's `$` also matches before a trailing newline.

This module is part of the agent, so it stays standard library only and Python 3.6.
"""

import re

_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"

COMMIT_PATTERN = r"^[0-9a-f]{64}$"
REMOTE_PATTERN = rf"^{_PART}$"
REF_PATTERN = rf"^{_PART}(?:/{_PART})*$"

#: The rules in words, for error messages and the fleet-repo reference.
REMOTE_RULE = "letters, digits, `.`, `_` and `-`, starting with a letter, digit or `_`"
REF_RULE = (
    "`/`-separated parts of letters, digits, `.`, `_` and `-`, "
    "each starting with a letter, digit or `_`"
)

#: What each pattern means, so a refusal reads as a sentence rather than a regex.
MEANINGS = {
    COMMIT_PATTERN: "64 lowercase hex characters",
    REMOTE_PATTERN: f"an OSTree remote name ({REMOTE_RULE})",
    REF_PATTERN: f"an OSTree ref ({REF_RULE})",
}

_COMMIT = re.compile(COMMIT_PATTERN)
_REMOTE = re.compile(REMOTE_PATTERN)
_REF = re.compile(REF_PATTERN)


def is_commit(value: object) -> bool:
    """Whether ``value`` is an OSTree commit checksum (64 lowercase hex characters)."""
    return isinstance(value, str) and _COMMIT.fullmatch(value) is not None


def is_remote(value: object) -> bool:
    """Whether ``value`` is a remote name the agent may pass to `ostree` and `rpm-ostree`."""
    return isinstance(value, str) and _REMOTE.fullmatch(value) is not None


def is_ref(value: object) -> bool:
    """Whether ``value`` is a ref the agent may pass to `ostree` and `rpm-ostree`."""
    return isinstance(value, str) and _REF.fullmatch(value) is not None
