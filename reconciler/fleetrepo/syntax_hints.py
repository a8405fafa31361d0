"""PyYAML's syntax errors in plain words: where the mistake most likely is, and how to fix it.

libyaml (and PyYAML's pure-Python scanner, in other words) says what the parser expected
("mapping values are not allowed in this context"), which is exact but rarely tells someone
editing a file by hand what to change. Each known error gets a hint, and the position the
mistake is most likely at: for an unclosed quote or bracket that is where it opens, not the
end of the file where the parser gave up.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class SyntaxHint:
    """What to tell the operator about one kind of YAML syntax error."""

    fragments: tuple[str, ...]  # any of these in the error's text (libyaml or pure Python)
    hint: str
    at_opening: bool = False  # the mistake is where the construct opened (context mark)


HINTS = (
    SyntaxHint(
        ("mapping values are not allowed",),
        "a key is indented more than the key above it, or a value contains `: ` — align "
        'the key with its siblings, or quote the value (`description: "note: this"`)',
    ),
    SyntaxHint(
        ("could not find expected ':'",),
        "this line is not `key: value` — add the `:` after the key, or, if it continues the "
        "value above, indent it under that value or quote the whole value",
        at_opening=True,
    ),
    SyntaxHint(
        ("found a tab character", "found character '\\t'"),
        "use spaces, not tabs, to indent YAML",
    ),
    SyntaxHint(
        ("found character that cannot start any token", "cannot start any token"),
        "a value starts with a character YAML reserves (`@`, `` ` ``, `%`, or `|`/`>` in the "
        "wrong place); put the value in quotes",
    ),
    SyntaxHint(
        ("did not find expected key", "expected <block end>"),
        "a line is indented differently from the lines it belongs with (e.g. a `-` item or "
        "a key one space off); align it with its siblings",
    ),
    SyntaxHint(
        ("did not find expected '-' indicator",),
        "a line inside a list does not start with `-`: indent a key of an item under the "
        "item (two spaces past its `-`), or add the missing `-`",
    ),
    SyntaxHint(
        ("found undefined alias",),
        "`*name` refers to an anchor `&name` that is not defined above it; write the value "
        "out (anchors are best avoided), or quote a value that starts with `*`",
    ),
    SyntaxHint(
        ("did not find expected ',' or ']'", "expected ',' or ']'"),
        "a `[` list is not closed where it opens, or an item contains `,`, `:` or `#` — "
        "close it with `]` on the same line, or quote the item",
        at_opening=True,
    ),
    SyntaxHint(
        ("did not find expected ',' or '}'", "expected ',' or '}'"),
        "a `{` mapping is not closed where it opens — close it with `}`, or quote a value "
        "that contains `,` or `:`",
        at_opening=True,
    ),
    SyntaxHint(
        ("did not find expected node content", "expected the node content"),
        "a value is missing here: two commas in a row, or a key or `-` with nothing usable "
        "after it",
    ),
    SyntaxHint(
        ("found unexpected end of stream", "found unexpected document separator"),
        "a quoted value is not closed — add the closing quote",
        at_opening=True,
    ),
    SyntaxHint(
        ("found unknown escape character",),
        "inside double quotes `\\` starts an escape — use single quotes, or write `\\\\`",
    ),
    SyntaxHint(
        ("expected a single document",),
        "a fleet file holds one document: remove the `---` line (and split the file in two "
        "if it holds two)",
    ),
)


def explain(error: yaml.MarkedYAMLError) -> tuple[yaml.Mark | None, str | None]:
    """The position to report ``error`` at, and the plain-words hint for it (if known)."""
    text = " ".join(str(part) for part in (error.context, error.problem) if part)
    for known in HINTS:
        if any(fragment in text for fragment in known.fragments):
            mark = error.context_mark if known.at_opening else None
            return mark or error.problem_mark or error.context_mark, known.hint
    return error.problem_mark or error.context_mark, None
