"""Strict YAML reading that remembers where every value came from.

PyYAML's loaders lose positions, silently keep the last of two duplicate keys and expand
aliases without bound. Ops edit these files by hand in pull requests, so this module
composes the node graph itself and builds plain Python data from it, recording the line
and column of every mapping key and sequence item, and turning each of those traps into a
:class:`Problem` with a position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.fleetrepo import syntax_hints
from reconciler.problems import Problem, format_field_path

try:  # libyaml's composer is several times faster on 5,000-host inventories
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

#: Largest number of values one document may expand to. An inventory of 5,000 hosts is
#: about 30,000; a "billion laughs" alias bomb is stopped long before it costs memory.
MAX_NODES = 250_000

DataPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlDocument:
    """Plain data of one YAML document plus the position of each key and item in it.

    A document kept after validation (in the parse cache, for the revision in force) needs
    neither: the models hold the data, and positions only place a problem that a later
    cross-file rule may find. :meth:`kept` keeps the source text instead and composes the
    rest again on first use; an inventory's positions are about nine times the size of its
    text (1.9 against 0.2 KiB per host), and at 100,000 hosts that is most of the daemon's
    memory.
    """

    __slots__ = ("_content", "_data", "_positions", "file")

    def __init__(
        self,
        file: str,
        data: Any,
        positions: dict[DataPath, Position] | None,
        content: bytes | None = None,
    ) -> None:
        self.file = file
        self._data = data
        self._positions = positions
        self._content = content

    def kept(self, content: bytes) -> YamlDocument:
        """The same document holding only ``content``, the text it was parsed from."""
        return YamlDocument(self.file, None, None, content)

    @property
    def composed(self) -> bool:
        """Whether the data and positions are in memory (a kept document composes them on
        first use; a valid fleet's load never needs them)."""
        return self._positions is not None

    @property
    def data(self) -> Any:
        if self._positions is None:
            self._compose_again()
        return self._data

    @property
    def positions(self) -> dict[DataPath, Position]:
        if self._positions is None:
            self._compose_again()
        assert self._positions is not None
        return self._positions

    def _compose_again(self) -> None:
        # The text parsed once, so it parses again to the same thing; a thread racing here
        # only composes twice and assigns the same values.
        assert self._content is not None, "a parsed document keeps its data or its text"
        again, _ = parse_yaml(self.file, self._content)
        assert again is not None
        self._data, self._positions = again._data, again._positions

    def position_of(self, path: DataPath) -> Position:
        """Position of ``path``, or of its nearest ancestor that has one."""
        positions = self.positions
        while path:
            if path in positions:
                return positions[path]
            path = path[:-1]
        return positions.get((), Position(1, 1))


class _DocumentTooLarge(Exception):
    pass


class _Builder:
    """Turns a composed node graph into data, collecting problems instead of raising."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[DataPath, Position] = {}
        self.problems: list[Problem] = []
        self.nodes_built = 0
        self._scalars = yaml.SafeLoader("")

    def problem(
        self, mark: yaml.Mark, path: DataPath, message: str, code: str, hint: str | None = None
    ) -> None:
        self.problems.append(
            Problem(
                self.file,
                mark.line + 1,
                mark.column + 1,
                format_field_path(path),
                message,
                code,
                hint=hint,
            )
        )

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            raise _DocumentTooLarge
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.positions[(*path, index)] = _pos(item.start_mark)
                items.append(self.build(item, (*path, index)))
            return items
        try:
            return self._scalars.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            self.problem(
                node.start_mark, path, f"cannot read value: {exc.problem}", "yaml.bad-scalar"
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(
                    key_node.start_mark,
                    path,
                    "merge keys (`<<:`) are not supported",
                    "yaml.merge-key",
                    hint="write the fields out, or put shared settings in fleet.yaml `defaults`",
                )
                continue
            key = self.build(key_node, path)
            if not isinstance(key, str):
                self.problem(
                    key_node.start_mark,
                    path,
                    f"mapping key {key!r} is a {type(key).__name__}, not a string",
                    "yaml.non-string-key",
                    hint="quote the key (YAML 1.1 reads yes/no/on/off as booleans)",
                )
                continue
            if key in first_seen:
                earlier = first_seen[key]
                self.problem(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key `{key}` (first defined on line {earlier.line + 1})",
                    "yaml.duplicate-key",
                    hint="YAML keeps only the last value silently; remove one of them",
                )
                continue
            first_seen[key] = key_node.start_mark
            self.positions[(*path, key)] = _pos(key_node.start_mark)
            out[key] = self.build(value_node, (*path, key))
        return out


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _tab_problems(file: str, text: str) -> list[Problem]:
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            problems.append(
                Problem(
                    file,
                    number,
                    indent.index("\t") + 1,
                    "",
                    "tab character in indentation",
                    "yaml.tab",
                    hint="YAML indentation must use spaces",
                )
            )
    return problems


def parse_yaml(file: str, content: bytes) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one single-document YAML file strictly; never raises on bad input.

    The document is None when the file could not be read as YAML at all; it may come with
    problems (a duplicate key keeps its first value) and is then not valid, only readable.
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [
            Problem(
                file,
                1,
                1,
                "",
                f"file is not UTF-8 ({exc.reason} at byte {exc.start})",
                "yaml.encoding",
            )
        ]
    problems = _tab_problems(file, text)
    if problems:
        return None, problems
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark, hint = syntax_hints.explain(exc)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        detail = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        message = f"YAML syntax error: {detail}"
        return None, [Problem(file, line, column, "", message, "yaml.syntax", hint=hint)]
    except yaml.YAMLError as exc:  # e.g. a reader error on a control character
        return None, [Problem(file, 1, 1, "", f"YAML error: {exc}", "yaml.syntax")]
    if root is None:
        return None, [Problem(file, 1, 1, "", "file is empty", "yaml.empty")]
    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except (_DocumentTooLarge, RecursionError):
        return None, [
            Problem(
                file,
                1,
                1,
                "",
                f"document expands to more than {MAX_NODES} "
                "values (an alias bomb or a recursive alias?)",
                "yaml.too-many-nodes",
                hint="avoid anchors and aliases",
            )
        ]
    builder.positions[()] = _pos(root.start_mark)
    # Duplicate, merge and non-string keys are reported but the rest of the document is
    # still usable, so the caller can go on to report field errors in the same run.
    return YamlDocument(file, data, builder.positions), builder.problems
