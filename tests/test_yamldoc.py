"""Strict YAML reading: positions, and each trap turned into a located problem."""

from __future__ import annotations

import pytest

from reconciler.fleetrepo.yamldoc import MAX_NODES, Position, parse_yaml


def test_positions_of_keys_and_items_are_one_based() -> None:
    document, problems = parse_yaml("f.yaml", b"a: 1\nb:\n  - x\n  - y: 2\n")
    assert problems == []
    assert document is not None
    assert document.data == {"a": 1, "b": ["x", {"y": 2}]}
    assert document.positions[("b",)] == Position(2, 1)
    assert document.positions[("b", 1)] == Position(4, 5)
    assert document.positions[("b", 1, "y")] == Position(4, 5)
    assert document.position_of(("b", 1, "missing")) == Position(4, 5)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

CASES = [
    # (name, yaml text, line, column, code, message fragment)
    (
        "duplicate key",
        "a: 1\nb: 2\na: 3\n",
        3,
        1,
        "yaml.duplicate-key",
        "duplicate key `a` (first defined on line 1)",
    ),
    ("nested duplicate", "a:\n  x: 1\n  x: 2\n", 3, 3, "yaml.duplicate-key", "duplicate key `x`"),
    ("tab indent", "a:\n\tb: 1\n", 2, 1, "yaml.tab", "tab character in indentation"),
    # Reported where the unclosed `[` opens, not where the parser gave up (2:2).
    ("syntax", "a: [1, 2\nb: 3\n", 1, 4, "yaml.syntax", "YAML syntax error"),
    ("two documents", "a: 1\n---\nb: 2\n", 2, 1, "yaml.syntax", "single document"),
    ("empty", "# only a comment\n", 1, 1, "yaml.empty", "file is empty"),
    ("boolean key", "on: 1\n", 1, 1, "yaml.non-string-key", "not a string"),
    ("merge key", "a: &x {b: 1}\nc:\n  <<: *x\n", 3, 3, "yaml.merge-key", "merge keys"),
    ("alias bomb", BOMB, 1, 1, "yaml.too-many-nodes", f"more than {MAX_NODES} values"),
    ("recursive alias", "a: &x [*x]\n", 1, 1, "yaml.too-many-nodes", "recursive alias"),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "code", "fragment"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_trap_is_a_located_problem(
    text: str, line: int, column: int, code: str, fragment: str
) -> None:
    _, problems = parse_yaml("f.yaml", text.encode())
    assert [(p.line, p.column, p.code) for p in problems] == [(line, column, code)]
    assert fragment in problems[0].message


def test_not_utf8_is_a_problem_not_a_crash() -> None:
    document, problems = parse_yaml("f.yaml", b"a: \xff\xfe\n")
    assert document is None
    assert problems[0].code == "yaml.encoding"


def test_duplicate_key_keeps_the_rest_readable() -> None:
    document, problems = parse_yaml("f.yaml", b"a: 1\na: 2\nb: 3\n")
    assert [p.code for p in problems] == ["yaml.duplicate-key"]
    assert document is not None
    assert document.data == {"a": 1, "b": 3}


# (name, yaml text, line, column, fragment of PyYAML's text, fragment of the hint)
SYNTAX_HINTS = [
    (
        "key indented more than its sibling",
        "name: a\nstream: b\n  selector: c\n",
        3,
        11,
        "mapping values are not allowed",
        "a key is indented more than the key above it, or a value contains `: `",
    ),
    (
        "value containing ': '",
        "name: a\ndescription: note: this\n",
        2,
        18,
        "mapping values are not allowed",
        'quote the value (`description: "note: this"`)',
    ),
    (
        "line without a colon, at that line",
        "name: a\nstream\nkind: b\n",
        2,
        1,
        "could not find expected ':'",
        "this line is not `key: value`",
    ),
    (
        "item indented less than its siblings",
        "hosts:\n  - a\n - b\n",
        3,
        2,
        "did not find expected key",
        "align it with its siblings",
    ),
    (
        "key at the level of the list above it",
        "hosts:\n  - name: a\n  labels: {}\n",
        3,
        3,
        "did not find expected '-' indicator",
        "indent a key of an item under the item",
    ),
    (
        "undefined alias",
        "a: *foo\n",
        1,
        4,
        "found undefined alias",
        "refers to an anchor `&name` that is not defined",
    ),
    (
        "unclosed list, where it opens",
        "hosts: [a, b\nkind: x\n",
        1,
        8,
        "did not find expected ',' or ']'",
        "a `[` list is not closed",
    ),
    (
        "unclosed mapping, where it opens",
        "labels: {a: b\nkind: x\n",
        1,
        9,
        "did not find expected ',' or '}'",
        "a `{` mapping is not closed",
    ),
    (
        "unclosed quote, where it opens",
        'name: "abc\nkind: x\n',
        1,
        7,
        "found unexpected end of stream",
        "a quoted value is not closed",
    ),
    (
        "two commas",
        "hosts: [a,,b]\n",
        1,
        11,
        "did not find expected node content",
        "two commas in a row",
    ),
    (
        "reserved first character",
        "a: @b\n",
        1,
        4,
        "cannot start any token",
        "put the value in quotes",
    ),
    (
        "bad escape",
        'a: "C:\\path"\n',
        1,
        7,
        "found unknown escape character",
        "use single quotes",
    ),
    (
        "two documents",
        "a: 1\n---\nb: 2\n",
        2,
        1,
        "expected a single document",
        "remove the `---` line",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "pyyaml_says", "hint"),
    [c[1:] for c in SYNTAX_HINTS],
    ids=[c[0] for c in SYNTAX_HINTS],
)
def test_syntax_errors_come_with_a_hint_in_plain_words(
    text: str, line: int, column: int, pyyaml_says: str, hint: str
) -> None:
    _, [problem] = parse_yaml("f.yaml", text.encode())
    assert (problem.line, problem.column, problem.code) == (line, column, "yaml.syntax")
    assert problem.message.startswith("YAML syntax error: ")
    assert pyyaml_says in problem.message  # PyYAML's own words stay, for searching
    assert problem.hint is not None
    assert hint in problem.hint


def test_a_kept_document_gives_back_the_same_data_and_positions() -> None:
    content = b"a: 1\nb:\n  - x\n  - y: 2\n    z: [3, 4]\n"
    document, problems = parse_yaml("f.yaml", content)
    assert document is not None
    assert not problems
    kept = document.kept(content)
    assert kept.data == document.data
    assert kept.positions == document.positions
    assert kept.position_of(("b", 1, "z", 0)) == document.position_of(("b", 1, "z", 0))
