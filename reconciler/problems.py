"""A validation problem: where it is, what is wrong, and how to fix it, as data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Problem:
    """One finding about one place in the fleet repo.

    ``code`` is stable and machine-readable (``yaml.duplicate-key``, ``ref.unknown-stream``);
    ``message`` is the human sentence; ``field`` is the dotted path inside the document
    (``rollout.waves[2]``), empty when the problem is about the file as a whole.
    """

    file: str
    line: int
    column: int
    field: str
    message: str
    code: str
    severity: Severity = Severity.ERROR
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def location(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_json(self, file: str | None = None) -> dict[str, object]:
        """The problem as machine-readable output gives it (``file`` overrides the path)."""
        return {
            "file": self.file if file is None else file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def format_field_path(path: tuple[str | int, ...]) -> str:
    """``("rollout", "waves", 2)`` -> ``rollout.waves[2]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out
