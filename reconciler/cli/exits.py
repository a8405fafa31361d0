"""Exit codes, the same for every verb (docs/cli.md has the table): a script or a CI job can
tell "the fleet repo is wrong" from "the server could not be asked" from "look at this"
without knowing which verb it ran."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: The fleet repo or revision does not validate (also: generated files out of date).
    INVALID = 1
    #: Bad arguments, or something needed cannot be reached or read: a path, a revision, the
    #: server, the state directory, a token. argparse uses 2 for usage errors too.
    USAGE = 2
    #: The command worked and found something an operator must act on: `plan` something
    #: blocks; `status` a halted or failed group, a refused revision, failing fetches.
    ATTENTION = 3
    #: A bug in the reconciler: the traceback is on stderr.
    FAILED = 4
