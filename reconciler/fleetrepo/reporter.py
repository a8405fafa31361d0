"""Where a cross-file rule reports: the documents that validated, and a collector of problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from reconciler.fleetrepo.models import Document
from reconciler.fleetrepo.yamldoc import DataPath, YamlDocument
from reconciler.problems import Problem, Severity, format_field_path


@dataclass(frozen=True)
class LoadedDocument:
    """A file that parsed and matched its model, with the positions of its YAML."""

    file: str
    yaml: YamlDocument
    model: Document


class Reporter:
    """Collects problems, each at a path of a document, turned into file:line:column."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def at(
        self,
        doc: LoadedDocument,
        path: DataPath,
        message: str,
        code: str,
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        position = doc.yaml.position_of(path)
        self.problems.append(
            Problem(
                doc.file,
                position.line,
                position.column,
                format_field_path(path),
                message,
                code,
                severity,
                hint,
            )
        )

    def where(self, doc: LoadedDocument, path: DataPath) -> str:
        position = doc.yaml.position_of(path)
        return f"{doc.file}:{position.line}"


M = TypeVar("M", bound=Document)


def model_of(doc: LoadedDocument, kind: type[M]) -> M:
    """The model of ``doc``, known by the caller to be a ``kind``."""
    assert isinstance(doc.model, kind)
    return doc.model
