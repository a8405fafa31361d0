"""Label selectors: `matchLabels` and Kubernetes-style `matchExpressions`, checked and indexed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.selectors import LabelIndex, LabelSelector
from reconciler.fleetrepo.sources import DirectorySource

HOSTS: dict[str, dict[str, str]] = {
    "a": {"site": "fra", "hardware": "dsp-card"},
    "b": {"site": "fra"},
    "c": {"site": "dub", "hardware": "r650"},
    "d": {"site": "dub"},
    "e": {},
}


def _selector(**fields: object) -> LabelSelector:
    return LabelSelector.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"matchLabels": {"site": "fra"}}, {"a", "b"}),
        ({"matchExpressions": [{"key": "hardware", "operator": "DoesNotExist"}]}, {"b", "d", "e"}),
        ({"matchExpressions": [{"key": "hardware", "operator": "Exists"}]}, {"a", "c"}),
        (
            {"matchExpressions": [{"key": "site", "operator": "In", "values": ["fra", "dub"]}]},
            {"a", "b", "c", "d"},
        ),
        # As in Kubernetes, NotIn also selects hosts without the label at all.
        (
            {"matchExpressions": [{"key": "hardware", "operator": "NotIn", "values": ["r650"]}]},
            {"a", "b", "d", "e"},
        ),
        # matchLabels and matchExpressions are ANDed.
        (
            {
                "matchLabels": {"site": "fra"},
                "matchExpressions": [{"key": "hardware", "operator": "DoesNotExist"}],
            },
            {"b"},
        ),
        (
            {
                "matchExpressions": [
                    {"key": "site", "operator": "In", "values": ["dub"]},
                    {"key": "hardware", "operator": "NotIn", "values": ["r650"]},
                ]
            },
            {"d"},
        ),
        ({"matchLabels": {"site": "syd"}}, set()),
        ({"matchExpressions": [{"key": "rack", "operator": "Exists"}]}, set()),
    ],
)
def test_selector_selects_the_hosts_kubernetes_would(
    fields: dict[str, object], expected: set[str]
) -> None:
    index = LabelIndex(HOSTS.items())
    assert index.matching(_selector(**fields)) == expected


def _brute_force(labels: Mapping[str, str], selector: LabelSelector) -> bool:
    """The definition, host by host, to check the index against."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for expression in selector.match_expressions:
        has, value = expression.key in labels, labels.get(expression.key)
        values = expression.values or []
        met = {
            "In": has and value in values,
            "NotIn": not has or value not in values,
            "Exists": has,
            "DoesNotExist": not has,
        }[expression.operator]
        if not met:
            return False
    return True


KEYS = st.sampled_from(["site", "hardware", "rack"])
VALUES = st.sampled_from(["x", "y", "z"])
EXPRESSIONS = st.one_of(
    st.builds(
        lambda k, op, vs: {"key": k, "operator": op, "values": vs},
        KEYS,
        st.sampled_from(["In", "NotIn"]),
        st.lists(VALUES, min_size=1, max_size=3),
    ),
    st.builds(
        lambda k, op: {"key": k, "operator": op}, KEYS, st.sampled_from(["Exists", "DoesNotExist"])
    ),
)


@given(
    hosts=st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=3), st.dictionaries(KEYS, VALUES), max_size=12
    ),
    match_labels=st.dictionaries(KEYS, VALUES, max_size=2),
    expressions=st.lists(EXPRESSIONS, max_size=3),
)
def test_index_agrees_with_the_definition(
    hosts: dict[str, dict[str, str]],
    match_labels: dict[str, str],
    expressions: list[dict[str, object]],
) -> None:
    if not match_labels and not expressions:
        return  # an empty selector is refused; see below
    selector = _selector(matchLabels=match_labels, matchExpressions=expressions)
    expected = {name for name, labels in hosts.items() if _brute_force(labels, selector)}
    assert LabelIndex(hosts.items()).matching(selector) == expected


# --- in a fleet repo ------------------------------------------------------------------------

DSP = "groups/callservers-fra-dsp.yaml"
FRA = "groups/callservers-fra.yaml"


def test_ordinary_hosts_are_selected_without_a_label_of_their_own(fleet_dir: Path) -> None:
    # Frankfurt's ordinary servers: every Frankfurt host without the DSP card, by selector
    # instead of by name, so a new ordinary server needs no `hardware: standard` label.
    fra = fleet_dir / FRA
    fra.write_text(
        fra.read_text().replace(
            "hosts: [fra-call-01, fra-call-02, fra-call-03, fra-call-04]\n",
            "selector:\n  matchLabels: {site: fra}\n  matchExpressions:\n"
            "    - {key: hardware, operator: NotIn, values: [dsp-card]}\n",
        )
    )
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.problems == ()
    assert result.fleet is not None
    assert result.fleet.members["callservers-fra"] == tuple(f"fra-call-0{i}" for i in range(1, 5))
    assert result.fleet.members["callservers-fra-dsp"] == ("fra-call-05", "fra-call-06")


@pytest.mark.parametrize(
    ("expression", "line", "field", "message", "hint"),
    [
        (
            "{key: hardware, operator: In}",
            11,
            "selector.matchExpressions[0].operator",
            "`In` needs `values`: a list of at least one label value",
            None,
        ),
        (
            "{key: hardware, operator: NotIn, values: []}",
            11,
            "selector.matchExpressions[0].values",
            "`NotIn` needs `values`",
            None,
        ),
        (
            "{key: hardware, operator: Exists, values: [dsp-card]}",
            11,
            "selector.matchExpressions[0].values",
            "`Exists` takes no `values`; remove them (or use `In` / `NotIn`)",
            None,
        ),
        (
            "{key: hardware, operator: in, values: [dsp-card]}",
            11,
            "selector.matchExpressions[0].operator",
            "unknown operator `in`; did you mean `In`?",
            None,
        ),
        (
            "{key: hardware, operator: NotExists}",
            11,
            "selector.matchExpressions[0].operator",
            "unknown operator `NotExists`; did you mean `DoesNotExist`?",
            None,
        ),
        (
            "{key: hardware, operator: Matches, values: [dsp]}",
            11,
            "selector.matchExpressions[0].operator",
            "unknown operator `Matches`; expected one of `In`, `NotIn`, `Exists`, `DoesNotExist`",
            None,
        ),
        (
            "{key: hardware, operater: Exists}",
            11,
            "selector.matchExpressions[0].operater",
            "unknown field `operater`",
            "did you mean `operator`? (`operator` is required and missing)",
        ),
        (
            "{key: hardware, operator: In, values: [1]}",
            11,
            "selector.matchExpressions[0].values[0]",
            "input should be a valid string",
            "put the value in quotes",
        ),
    ],
)
def test_expression_errors_are_located_and_say_what_to_write(
    fleet_dir: Path, expression: str, line: int, field: str, message: str, hint: str | None
) -> None:
    dsp = fleet_dir / DSP
    dsp.write_text(
        dsp.read_text().replace(
            "    hardware: dsp-card\n",
            f"    hardware: dsp-card\n  matchExpressions:\n    - {expression}\n",
        )
    )
    [error] = load_fleet(DirectorySource(fleet_dir)).errors
    assert (error.file, error.line, error.field) == (DSP, line, field)
    assert message in error.message
    if hint is not None:
        assert error.hint is not None
        assert hint in error.hint


def test_an_empty_selector_is_refused_rather_than_selecting_everything(fleet_dir: Path) -> None:
    dsp = fleet_dir / DSP
    dsp.write_text(
        dsp.read_text().replace(
            "selector:\n  matchLabels:\n    site: fra\n    hardware: dsp-card\n", "selector: {}\n"
        )
    )
    [error] = load_fleet(DirectorySource(fleet_dir)).errors
    assert (error.file, error.line, error.field) == (DSP, 6, "selector")
    assert "a selector needs `matchLabels` or `matchExpressions`" in error.message
