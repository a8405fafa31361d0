"""Load and validate one state of a fleet repo, reporting every problem at once.

The loader never raises on bad content: each file is read, parsed and validated on its own,
cross-file rules run over what validated, and the result carries all problems with their
file, line, column and field. A caller that needs a fleet or nothing uses
:func:`load_fleet_or_raise`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import FleetRepoInvalid
from reconciler.fleetrepo.blobcache import FileOutcome, ParsedFileCache
from reconciler.fleetrepo.consistency import DeclaredNames, build_fleet
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import (
    API_VERSION,
    DOCUMENT_KINDS,
    PATTERN_MEANINGS,
    known_field_names,
)
from reconciler.fleetrepo.reporter import LoadedDocument
from reconciler.fleetrepo.sources import ROOT_FILE, FleetSource, SourceFile
from reconciler.fleetrepo.suggestions import closest
from reconciler.fleetrepo.yamldoc import DataPath, YamlDocument, parse_yaml
from reconciler.problems import Problem, format_field_path

#: Largest fleet-repo file read. 5,000 hosts in one inventory file take about 1 MiB; a bigger
#: file is a mistake (a binary, a log) or calls for splitting the inventory by site.
MAX_FILE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ValidationBudget:
    """How much one revision may cost to validate, whoever wrote it.

    A pull request is untrusted input: without a total, ten files of ``[1,1,1,…]`` cost
    minutes, gigabytes and millions of errors. The defaults leave a 100,000-host fleet
    (about 20 MiB in a few hundred files) far inside; past a limit, validation stops and
    says which limit it hit, and the revision is invalid.
    """

    max_files: int = 5_000
    max_total_bytes: int = 64 * 1024 * 1024
    max_errors: int = 1_000  # reported; validation stops once this many are found


DEFAULT_BUDGET = ValidationBudget()


@dataclass(frozen=True)
class LoadResult:
    """The outcome of validating one revision: the fleet if it is valid, and all problems."""

    fleet: Fleet | None
    problems: tuple[Problem, ...]
    revision: str | None
    files_read: int

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_error)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.is_error)


def load_fleet(
    source: FleetSource,
    budget: ValidationBudget = DEFAULT_BUDGET,
    cache: ParsedFileCache | None = None,
) -> LoadResult:
    """Read, parse and validate every fleet file of ``source``, within ``budget``.

    With a ``cache``, a file whose Git blob was parsed before (in a recent load) is not read
    again: its outcome is taken from the cache. The result is the same either way.
    """
    try:
        return _load_fleet(source, budget, cache)
    finally:
        if cache is not None:
            cache.finish_load()


def _load_fleet(
    source: FleetSource, budget: ValidationBudget, cache: ParsedFileCache | None
) -> LoadResult:
    problems: list[Problem] = []
    documents: list[LoadedDocument] = []
    files_read = total_bytes = 0
    declared = DeclaredNames()
    exhausted: Problem | None = None
    for file in source.files():
        files_read += 1
        total_bytes += max(file.size, 0)
        exhausted = _over_budget(file, files_read, total_bytes, len(problems), budget)
        if exhausted is not None:
            break
        room = budget.max_errors - len(problems)
        outcome = _file_outcome(file, room, cache)
        _add_declared(declared, outcome.declared)
        problems.extend(outcome.problems[:room])
        if outcome.document is not None:
            documents.append(outcome.document)
    if exhausted is None:
        fleet, fleet_problems = build_fleet(
            documents,
            declared,
            revision=source.revision,
            some_files_invalid=bool(problems),
            reuse=cache.steps if cache is not None else None,
        )
        problems.extend(fleet_problems[: budget.max_errors - len(problems)])
    else:
        fleet = None
    problems.sort(key=lambda p: (p.file, p.line, p.column, p.code))
    if exhausted is not None:
        problems.append(exhausted)  # last, whatever its file: it explains why the list ends
    valid = not any(p.is_error for p in problems)
    return LoadResult(fleet if valid else None, tuple(problems), source.revision, files_read)


def _over_budget(
    file: SourceFile, files: int, total_bytes: int, errors: int, budget: ValidationBudget
) -> Problem | None:
    """The problem that stops validation before ``file``, if a limit is reached."""
    if errors >= budget.max_errors:
        why = f"stopped after {errors} errors (the limit); fix these and validate again"
        code = "budget.errors"
    elif files > budget.max_files:
        why = f"more than {budget.max_files} fleet files; validation stopped here"
        code = "budget.files"
    elif total_bytes > budget.max_total_bytes:
        why = f"fleet files total more than {budget.max_total_bytes} bytes; validation stopped here"
        code = "budget.bytes"
    else:
        return None
    return Problem(file.path, 1, 1, "", why, code)


def load_fleet_or_raise(source: FleetSource) -> Fleet:
    """The fleet of ``source``; raise :class:`FleetRepoInvalid` listing every error."""
    result = load_fleet(source)
    if result.fleet is None:
        raise FleetRepoInvalid(result.problems)
    return result.fleet


def _file_outcome(file: SourceFile, room: int, cache: ParsedFileCache | None) -> FileOutcome:
    """The per-file part of validation, from the cache when the file's blob is in it."""
    key = (file.blob_id, file.path, file.is_regular) if file.blob_id is not None else None
    if cache is not None and key is not None:
        cached = cache.lookup(key, room)
        if cached is not None:
            return cached
    declared = DeclaredNames()
    document, problems = _load_file(file, declared, room)
    outcome = FileOutcome(document, tuple(problems), declared, room)
    if cache is not None and key is not None:
        cache.store(key, outcome)
    return outcome


def _add_declared(names: DeclaredNames, of_file: DeclaredNames) -> None:
    names.streams |= of_file.streams
    names.groups |= of_file.groups
    names.hosts |= of_file.hosts
    names.all_hosts_known = names.all_hosts_known and of_file.all_hosts_known


def _load_file(
    file: SourceFile, declared: DeclaredNames, room: int = DEFAULT_BUDGET.max_errors
) -> tuple[LoadedDocument | None, list[Problem]]:
    def whole_file(message: str, code: str, hint: str | None = None) -> list[Problem]:
        return [Problem(file.path, 1, 1, "", message, code, hint=hint)]

    if not file.is_regular:
        return None, whole_file(
            "fleet files must be regular files, not symlinks", "file.not-regular"
        )
    if file.size > MAX_FILE_BYTES:
        return None, whole_file(
            f"file is {file.size} bytes, over the limit of {MAX_FILE_BYTES} bytes",
            "file.too-large",
            hint="split the inventory into several files, e.g. one per site",
        )
    content = file.read()
    document, problems = parse_yaml(file.path, content)
    if document is None:
        declared.add_unreadable(file.expected_kind, file.path)
        return None, problems
    header_problems = _check_header(file, document)
    if header_problems:
        return None, problems + header_problems
    declared.add(file.expected_kind, document.data)
    model_type = DOCUMENT_KINDS[file.expected_kind]
    try:
        model = model_type.model_validate(document.data)
    except ValidationError as exc:
        errors = exc.errors()[:room]  # the rest would only be dropped; don't build them
        return None, problems + _schema_problems(document, model_type, errors)
    if problems:
        return None, problems
    return LoadedDocument(file.path, document.kept(content), model), []


def _check_header(file: SourceFile, document: YamlDocument) -> list[Problem]:
    """apiVersion and kind first: without them, field errors would only confuse."""
    data = document.data
    if not isinstance(data, dict):
        return [
            Problem(
                file.path,
                1,
                1,
                "",
                f"expected a mapping of fields at the top of the "
                f"file, found a {type(data).__name__}",
                "schema.not-a-mapping",
            )
        ]
    problems = []
    for field, expected in (("apiVersion", API_VERSION), ("kind", file.expected_kind)):
        value = data.get(field)
        if value == expected:
            continue
        position = document.position_of((field,))
        if value is None:
            message = f"required field `{field}` is missing"
        elif field == "kind":
            where = (
                file.path if file.path == ROOT_FILE else f"files under {file.path.split('/')[0]}/"
            )
            message = f"{where} must have kind `{expected}`, not `{value}`"
        else:
            message = f"unsupported apiVersion `{value}`; this reconciler reads `{expected}`"
        problems.append(
            Problem(
                file.path,
                position.line,
                position.column,
                field,
                message,
                f"schema.bad-{field.lower()}",
                hint=f"{field}: {expected}",
            )
        )
    return problems


def _schema_problems(
    document: YamlDocument, model_type: type[BaseModel], errors: list[ErrorDetails]
) -> list[Problem]:
    """One problem per pydantic error, except a missing field that a misspelt key explains.

    `comit:` makes pydantic report both "unknown field `comit`" and "field `commit` is
    missing"; only the first is shown, at the typo's own line, with the field it stands for.
    """
    missing = {_parent_and_key(document, e) for e in errors if e["type"] == "missing"}
    problems = []
    for error in errors:
        parent, key = _parent_and_key(document, error)
        if error["type"] == "missing" and _typo_of(document, errors, parent, key):
            continue
        hint = None
        if error["type"] == "extra_forbidden":
            missing_here = [k for p, k in missing if p == parent]
            hint = _unknown_key_hint(key, missing_here, _fields_at(model_type, parent))
        problems.append(_schema_problem(document, error, hint))
    return problems


def _parent_and_key(document: YamlDocument, error: ErrorDetails) -> tuple[DataPath, str]:
    """Where in the data a missing or unknown key belongs, and the key."""
    loc = tuple(error["loc"])
    return _data_path(document.data, loc[:-1]), str(loc[-1]) if loc else ""


def _typo_of(
    document: YamlDocument, errors: list[ErrorDetails], parent: DataPath, missing_key: str
) -> bool:
    """Whether an unknown key beside ``missing_key`` is a misspelling of it."""
    for error in errors:
        if error["type"] != "extra_forbidden":
            continue
        where, key = _parent_and_key(document, error)
        if where == parent and closest(key, [missing_key], cutoff=0.7) is not None:
            return True
    return False


def _unknown_key_hint(key: str, missing_here: list[str], fields: set[str] | None) -> str | None:
    """Did you mean: a required field missing beside it first, then the fields allowed there."""
    meant = closest(key, missing_here, cutoff=0.7)
    if meant is not None:
        return f"did you mean `{meant}`? (`{meant}` is required and missing)"
    meant = closest(key, fields if fields is not None else known_field_names(), cutoff=0.7)
    return f"did you mean `{meant}`?" if meant is not None else None


def _fields_at(model_type: type[BaseModel], path: DataPath) -> set[str] | None:
    """Keys the model allows at ``path`` of the data, or None when the path leaves the models."""
    node: Any = model_type
    for part in path:
        if isinstance(part, int):
            continue  # an item of a list: the list's own annotation already led to it
        model = _model_in(node)
        if model is None:
            return None
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        node = field.annotation
    model = _model_in(node)
    if model is None:
        return None
    return {field.alias or name for name, field in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as ``list[Host] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def _schema_problem(
    document: YamlDocument, error: ErrorDetails, hint: str | None = None
) -> Problem:
    loc = tuple(error["loc"])
    if error["type"] == "value_error_at":
        loc = (*loc, *error.get("ctx", {}).get("at", ()))
    path = _data_path(document.data, loc)
    missing_key = error["type"] == "missing"
    position = document.position_of(path)
    field_path = format_field_path((*path, loc[-1]) if missing_key else path)
    message, described_hint = _describe(error, loc)
    hint = hint if hint is not None else described_hint
    return Problem(
        document.file,
        position.line,
        position.column,
        field_path,
        message,
        f"schema.{error['type']}",
        hint=hint,
    )


def _data_path(data: Any, loc: tuple[Any, ...]) -> DataPath:
    """The part of a pydantic ``loc`` that names real keys and items of the document.

    Pydantic inserts union member tags (``int``, ``function-after[...]``) into ``loc``; they
    are skipped because they are not in the data.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        is_key = isinstance(node, dict) and isinstance(part, str) and part in node
        is_item = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if is_key or is_item:
            node = node[part]
            path.append(part)
    return tuple(path)


def _describe(error: ErrorDetails, loc: tuple[Any, ...]) -> tuple[str, str | None]:
    kind, value = error["type"], error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx", {}))
    if kind == "extra_forbidden":
        return f"unknown field `{loc[-1]}`", None  # the hint depends on the siblings
    if kind == "missing":
        return f"required field `{loc[-1]}` is missing", None
    if kind == "value_error":
        return str(ctx.get("error", error["msg"])), None
    if kind == "string_pattern_mismatch":
        meaning = PATTERN_MEANINGS.get(ctx.get("pattern", ""), f"matching {ctx.get('pattern')}")
        return f"`{value}` ({len(str(value))} characters) is not {meaning}", None
    if kind.endswith("_type") or kind.endswith("_parsing"):
        got = type(value).__name__ if value is not None else "nothing (null)"
        hint = None
        if kind == "string_type" and isinstance(value, bool | int | float):
            hint = "YAML read this as a number or boolean; put the value in quotes"
        message = error["msg"][0].lower() + error["msg"][1:]
        return f"{message}, got {got} `{value}`", hint
    if kind == "literal_error":
        return f"`{value}` is not allowed here; expected {ctx.get('expected')}", None
    return error["msg"], None
