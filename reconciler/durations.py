"""Durations written the way ops write them: ``90s``, ``30m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
#: Ten years: longer is a typo, and far longer would not fit in a date (soaks and horizons
#: are added to the time now).
LONGEST = timedelta(days=3650)


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; raise ``ValueError`` with a sentence an operator can act on."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"`{text}` is not a duration; write e.g. `90s`, `30m`, `1h30m` or `2d`")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = days * 86_400 + hours * 3_600 + minutes * 60 + seconds
    if total > LONGEST.total_seconds():
        raise ValueError(
            f"`{text}` is longer than {format_duration(LONGEST)}, the longest duration accepted"
        )
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration`: ``timedelta(minutes=90)`` -> ``1h30m``."""
    remaining = int(value.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_minutes(value: timedelta) -> str:
    """A duration for people, to the minute: ``3h12m``, ``45m``, ``0s`` for less than one."""
    return format_duration(timedelta(minutes=max(0, int(value.total_seconds() // 60))))


def _coerce(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError(
        f"expected a duration string such as `30m`, got {type(value).__name__} {value!r}"
    )


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "1h30m", "2d"]}
    ),
]
