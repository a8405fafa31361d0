""" "Did you mean" for names an operator typed: fields, references, operators, time zones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The known name most like ``name``, ignoring case, or None when none is close.

    Case is ignored so that `in` finds `In` and `europe/paris` finds `Europe/Paris`; an exact
    match in another case wins over any other candidate.
    """
    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    folded = name.casefold()
    if folded in by_folded:
        return by_folded[folded]
    close = difflib.get_close_matches(folded, list(by_folded), n=1, cutoff=cutoff)
    return by_folded[close[0]] if close else None


def did_you_mean(name: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The hint ``did you mean `x`?`` for ``name``, or None when nothing known is close."""
    match = closest(name, known, cutoff)
    return f"did you mean `{match}`?" if match is not None else None
