"""Errors raised by the reconciler, named after whose fault they are.

    ReconcilerError                 base class; never raised itself
    ├── FleetRepoInvalid            the fleet repo's author: a revision fails validation
    ├── FleetSourceUnavailable      the caller: a path or Git revision that cannot be read
    │   └── GitRevisionNotFound     the caller: a revision name that does not resolve
    ├── PromotionImpossible         the fleet repo: a promotion cannot be written into it
    └── Unavailable                 the world: something outside is down or refused; retry
        ├── StoreUnavailable        the state database cannot be opened or written
        ├── GitRemoteUnavailable    the fleet repo's remote cannot be fetched
        ├── GitPushRejected         the remote moved on; build on its tip, retry
        ├── GitPushFailed           cannot write to the remote (access, network)
        ├── OstreeRepoUnavailable   an OSTree repository cannot be asked
        └── LiveStateUnavailable    a running reconciler cannot be asked (`reconciler plan
                                    --against`); or the caller's token was refused

Catch :class:`Unavailable` to retry later, a whole branch of the tree to handle one kind of
fault, and never ``ReconcilerError`` where only the world's faults are meant.

Library exceptions (``pygit2.GitError``, ``OSError``, ``yaml.YAMLError``) are translated
into these at the adapter that calls the library, so callers never catch a library type.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.problems import Problem


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class FleetRepoInvalid(ReconcilerError):
    """A fleet repo revision does not validate; ``problems`` lists every error found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.is_error]
        first = errors[0].location() + ": " + errors[0].message if errors else "no detail"
        super().__init__(f"fleet repo invalid: {len(errors)} error(s); first: {first}")


class FleetSourceUnavailable(ReconcilerError):
    """The fleet repo could not be read at all (missing path, not a Git repository...)."""


class GitRevisionNotFound(FleetSourceUnavailable):
    """A Git revision (branch, tag, commit id) does not resolve to a commit."""


class Unavailable(ReconcilerError):
    """Something outside the reconciler is down or refused: the same call may work later."""


class StoreUnavailable(Unavailable):
    """The SQLite state database could not be opened, read or written."""


class NotHeld(Unavailable):
    """Another replica plans this group now, or none does yet (its lease is moving)."""


class GitRemoteUnavailable(Unavailable):
    """The fleet repo could not be cloned or fetched (network, auth, missing repository)."""


class GitPushRejected(Unavailable):
    """A push was refused because the remote ref moved on (someone else pushed first)."""


class GitPushFailed(Unavailable):
    """Writing to the fleet repo failed: no write access, network, or signing."""


class PromotionImpossible(ReconcilerError):
    """A due promotion cannot be written: the stream's file is gone, not editable as plain
    YAML, or the edited fleet would not validate."""


class OstreeRepoUnavailable(Unavailable):
    """An OSTree repository could not be asked whether it holds a commit."""


class LiveStateUnavailable(Unavailable):
    """The running reconciler could not be asked (network, refused token, unexpected answer).

    ``refused`` is True when the server answered 401 or 403: the caller's token is at fault.
    """

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
