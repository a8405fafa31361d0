"""The last result of each cross-file step, reused while the step's inputs are the very same.

A new revision that changes one stream leaves every inventory file's blob, and so (through
:mod:`.blobcache`) every inventory *document object*, as it was. The steps that span all
hosts — building the inventory, each host's group — then have the same inputs and would
compute the same result: at 100,000 hosts that is seconds per revision for nothing. So each
step remembers its inputs and result; a later call whose inputs are the same objects (by
identity: a document is immutable, and an unchanged blob gives back the same one) and equal
values gets the result back, with the problems it reported replayed.

Sound only for results nobody mutates: the steps that use it return values their callers
only read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.fleetrepo.reporter import Reporter
from reconciler.problems import Problem

T = TypeVar("T")


@dataclass(frozen=True)
class _Remembered:
    objects: tuple[object, ...]  # compared by identity
    values: tuple[Any, ...]  # compared by equality
    result: object
    problems: tuple[Problem, ...]


class StepReuse:
    """Remembers the last run of each named step. Not thread-safe: loads are serialized."""

    def __init__(self) -> None:
        self._last: dict[str, _Remembered] = {}
        self.reused = 0  # how many steps were skipped (benchmarks, tests)

    def run(
        self,
        step: str,
        objects: Sequence[object],
        values: Sequence[Any],
        report: Reporter,
        compute: Callable[[Reporter], T],
    ) -> T:
        """``compute(reporter)``, or its remembered result when ``objects`` are the same
        objects and ``values`` equal those of the last run of ``step``."""
        last = self._last.get(step)
        if last is not None and _same(last, objects, values):
            self.reused += 1
            report.problems.extend(last.problems)
            result: T = last.result  # type: ignore[assignment]
            return result
        own = Reporter()
        result = compute(own)
        report.problems.extend(own.problems)
        self._last[step] = _Remembered(tuple(objects), tuple(values), result, tuple(own.problems))
        return result


def _same(last: _Remembered, objects: Sequence[object], values: Sequence[Any]) -> bool:
    return (
        len(last.objects) == len(objects)
        and all(a is b for a, b in zip(last.objects, objects, strict=True))
        and last.values == tuple(values)
    )
