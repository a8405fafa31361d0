"""Counts that may be written as a number of hosts or as a percent of a group (``3``, ``25%``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

_PERCENT = re.compile(r"^(\d{1,3})%$")


@dataclass(frozen=True)
class CountOrPercent:
    """A host count, or a percent of a group resolved only once the group's size is known."""

    value: int
    is_percent: bool = False

    def resolve(self, total: int) -> int:
        """Number of hosts out of ``total``; percents round up so `1%` of a group is never 0."""
        if not self.is_percent:
            return min(self.value, total)
        return min(total, math.ceil(total * self.value / 100))

    def __str__(self) -> str:
        return f"{self.value}%" if self.is_percent else str(self.value)


def parse_count_or_percent(value: object) -> CountOrPercent:
    """Read ``3`` or ``"25%"``; raise ``ValueError`` saying what is accepted."""
    if isinstance(value, CountOrPercent):
        return value
    if isinstance(value, bool):  # bool is an int in Python; `true` is never a count
        raise ValueError(f"expected a count or a percent such as `25%`, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count cannot be negative, got {value}")
        return CountOrPercent(value)
    if isinstance(value, str):
        match = _PERCENT.match(value.strip())
        if match:
            percent = int(match.group(1))
            if percent > 100:
                raise ValueError(f"a percent must be between 0% and 100%, got {value}")
            return CountOrPercent(percent, is_percent=True)
        if value.strip().isdigit():
            return CountOrPercent(int(value.strip()))
    raise ValueError(f"expected a count such as `2` or a percent such as `25%`, got {value!r}")


CountOrPercentField = Annotated[
    CountOrPercent,
    PlainValidator(parse_count_or_percent),
    PlainSerializer(lambda v: f"{v.value}%" if v.is_percent else v.value, return_type=int | str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^(100|[1-9]?[0-9])%$"},
            ]
        }
    ),
]
