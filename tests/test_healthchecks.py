"""Health checks in the fleet repo: where they may be written, how each mistake is reported,
how queries are rendered, and how a group's checks merge with the fleet defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import promql_parser
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.fleetrepo import models
from reconciler.fleetrepo.healthchecks import (
    MAX_QUERY_CHARS,
    MAX_QUERY_NESTING,
    MAX_QUERY_OPERATORS,
    NO_HOST,
    PLACEHOLDERS,
    Condition,
    HealthCheck,
    merge_health_checks,
    parse_condition,
    render_query,
)
from reconciler.fleetrepo.loader import LoadResult, load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from tests.conftest import ROOT

HOSTS_QUERY = 'sum(rate(sip_calls_failed_total{instance=~"($hosts)(:[0-9]+)?"}[5m]))'
GOOD: dict[str, object] = {
    "name": "call-failures",
    "query": HOSTS_QUERY,
    "successCondition": "< 0.02",
}


@dataclass(frozen=True)
class Place:
    """Where in the example fleet a `healthChecks` list is written."""

    name: str
    file: str
    indent: str  # of the `healthChecks:` key
    field: str  # its field path


PLACES = [
    Place("fleet defaults", "fleet.yaml", "  ", "defaults.healthChecks"),
    Place("group", "groups/callservers-fra.yaml", "", "healthChecks"),
    Place("promotion", "streams/production.yaml", "  ", "promotion.healthChecks"),
]


def _checks_yaml(indent: str, checks: list[dict[str, object]]) -> str:
    """A `healthChecks:` block; strings as JSON, which YAML reads as double-quoted scalars."""
    lines = [f"{indent}healthChecks:"]
    for check in checks:
        for index, (key, value) in enumerate(check.items()):
            lead = "- " if index == 0 else "  "
            lines.append(f"{indent}  {lead}{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _write_checks(fleet_dir: Path, place: Place, checks: list[dict[str, object]]) -> Path:
    path = fleet_dir / place.file
    text = path.read_text()
    path.write_text(
        text + ("" if text.endswith("\n") else "\n") + _checks_yaml(place.indent, checks)
    )
    return path


def _line_of(path: Path, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``fragment``."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line]
    return found[occurrence - 1]


def _load(fleet_dir: Path) -> LoadResult:
    return load_fleet(DirectorySource(fleet_dir))


# ---------------------------------------------------------------------------------------------
# Valid checks in each place


def test_a_check_in_each_place_loads(fleet_dir: Path) -> None:
    default = {**GOOD, "name": "default-check"}
    own = {
        "name": "group-check",
        "query": 'avg(up{group="$group", version="$version"})',
        "failureCondition": "< 1",
        "interval": "30s",
        "consecutiveSuccesses": 3,
        "failureLimit": 2,
        "inconclusiveLimit": 4,
        "whenInconclusive": "halt",
        "dryRun": True,
    }
    promotion = {**GOOD, "name": "promotion-check", "query": 'sum(up{stream="$stream"})'}
    _write_checks(fleet_dir, PLACES[0], [default])
    _write_checks(fleet_dir, PLACES[1], [own])
    _write_checks(fleet_dir, PLACES[2], [promotion])

    result = _load(fleet_dir)

    assert result.errors == ()
    fleet = result.fleet
    assert fleet is not None
    checks = fleet.health_checks("callservers-fra")
    assert [c.name for c in checks] == ["default-check", "group-check"]
    mine = checks[1]
    assert mine.failure_condition == Condition("<", 1.0)
    assert (mine.interval.total_seconds(), mine.consecutive_successes) == (30, 3)
    assert (mine.failure_limit, mine.inconclusive_limit) == (2, 4)
    assert (mine.when_inconclusive, mine.dry_run, mine.success_condition) == ("halt", True, None)
    assert [c.name for c in fleet.health_checks("callservers-dub")] == ["default-check"]
    stream_promotion = fleet.streams["production"].promotion
    assert stream_promotion is not None
    assert [c.name for c in stream_promotion.health_checks] == ["promotion-check"]
    assert stream_promotion.health_checks[0].success_condition == Condition("<", 0.02)


def test_defaults_of_a_check() -> None:
    check = HealthCheck.model_validate(GOOD)
    assert check.interval.total_seconds() == 60
    assert (check.consecutive_successes, check.failure_limit, check.inconclusive_limit) == (
        1,
        1,
        10,
    )
    assert (check.when_inconclusive, check.dry_run, check.failure_condition) == (
        "alert",
        False,
        None,
    )


def test_an_unquoted_less_than_condition_reads_as_yaml(fleet_dir: Path) -> None:
    path = fleet_dir / "groups/callservers-fra.yaml"
    path.write_text(
        path.read_text()
        + "healthChecks:\n  - name: c\n    query: up\n    successCondition: < 0.5\n"
    )
    fleet = _load(fleet_dir).fleet
    assert fleet is not None
    assert fleet.health_checks("callservers-fra")[0].success_condition == Condition("<", 0.5)


def test_a_check_name_follows_the_same_rule_as_every_other_name() -> None:
    pattern = HealthCheck.model_json_schema()["properties"]["name"]["pattern"]
    assert pattern == models.NAME_PATTERN  # so the loader explains a bad one the same way


# ---------------------------------------------------------------------------------------------
# Each mistake at its file:line and field


@dataclass(frozen=True)
class Mistake:
    name: str
    checks: list[dict[str, object]]
    field: str  # after the place's own path
    code: str
    fragment: str
    at_line_with: str  # the reported line is the one containing this …
    occurrence: int = 1  # … the n-th time


MISTAKES = [
    Mistake(
        "bad PromQL",
        [{**GOOD, "query": "sum(rate(x[5m])"}],
        "[0].query",
        "schema.value_error",
        "the query is not valid PromQL: unclosed left parenthesis",
        "query:",
    ),
    Mistake(
        "unknown placeholder",
        [{**GOOD, "query": 'up{instance=~"$host"}'}],
        "[0].query",
        "schema.value_error",
        "unknown placeholder `$host` in the query (did you mean `$hosts`?)",
        "query:",
    ),
    Mistake(
        "range vector",
        [{**GOOD, "query": "up[5m]"}],
        "[0].query",
        "schema.value_error",
        "the query gives a range vector",
        "query:",
    ),
    Mistake(
        "string result",
        [{**GOOD, "query": '"ok"'}],
        "[0].query",
        "schema.value_error",
        "the query gives a string",
        "query:",
    ),
    Mistake(
        "no condition",
        [{"name": "call-failures", "query": "up"}],
        "[0]",
        "schema.value_error_at",
        "needs a `successCondition`, a `failureCondition`, or both",
        "- name:",
    ),
    Mistake(
        "no value passes",
        [{**GOOD, "successCondition": ">= 0.99", "failureCondition": "> 0.5"}],
        "[0]",
        "schema.value_error_at",
        "no value can pass this check: every value that meets `successCondition: >= 0.99` "
        "also meets `failureCondition: > 0.5`",
        "- name:",
    ),
    Mistake(
        "bad condition",
        [{**GOOD, "failureCondition": "about 0.05"}],
        "[0].failureCondition",
        "schema.value_error",
        "`about 0.05` is not a condition",
        "failureCondition:",
    ),
    Mistake(
        "condition without an operator",
        [{**GOOD, "successCondition": 0.02}],
        "[0].successCondition",
        "schema.value_error",
        "`0.02` is not a condition",
        "successCondition:",
    ),
    Mistake(
        "duplicate name",
        [GOOD, {**GOOD, "successCondition": "< 0.5"}, GOOD],
        "[1].name",
        "schema.value_error_at",
        "health check `call-failures` is already defined in this list (at index 0)",
        "- name:",
        occurrence=2,
    ),
    Mistake(
        "interval below the minimum",
        [{**GOOD, "interval": "4s"}],
        "[0].interval",
        "schema.value_error",
        "an interval of 4s is below the minimum of 5s",
        "interval:",
    ),
    Mistake(
        "limit below one",
        [{**GOOD, "failureLimit": 0}],
        "[0].failureLimit",
        "schema.greater_than_equal",
        "greater than or equal to 1",
        "failureLimit:",
    ),
    Mistake(
        "unknown whenInconclusive",
        [{**GOOD, "whenInconclusive": "ignore"}],
        "[0].whenInconclusive",
        "schema.literal_error",
        "`ignore` is not allowed here",
        "whenInconclusive:",
    ),
]


@pytest.mark.parametrize("place", PLACES, ids=[p.name for p in PLACES])
@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_each_mistake_is_reported_at_its_line_and_field(
    fleet_dir: Path, place: Place, mistake: Mistake
) -> None:
    path = _write_checks(fleet_dir, place, mistake.checks)

    result = _load(fleet_dir)

    assert result.fleet is None
    assert len(result.errors) == 1, result.errors
    problem = result.errors[0]
    assert (problem.code, problem.field) == (mistake.code, place.field + mistake.field)
    assert mistake.fragment in problem.message
    assert (problem.file, problem.line) == (
        place.file,
        _line_of(path, mistake.at_line_with, mistake.occurrence),
    )


def test_a_misspelt_field_of_a_check_gets_a_did_you_mean(fleet_dir: Path) -> None:
    _write_checks(fleet_dir, PLACES[1], [{**GOOD, "successCondtion": "< 1"}])
    problem = _load(fleet_dir).errors[0]
    assert problem.code == "schema.extra_forbidden"
    assert problem.hint == "did you mean `successCondition`?"


# ---------------------------------------------------------------------------------------------
# Queries too large to parse safely


def _query_error(query: str) -> str:
    with pytest.raises(ValidationError) as raised:
        HealthCheck.model_validate({**GOOD, "query": query})
    return str(raised.value.errors()[0]["ctx"]["error"])


def test_nesting_up_to_the_limit_is_accepted_and_beyond_refused() -> None:
    depth = MAX_QUERY_NESTING
    HealthCheck.model_validate({**GOOD, "query": "(" * depth + "1" + ")" * depth})
    too_deep = "(" * (depth + 1) + "1" + ")" * (depth + 1)
    message = f"the query nests brackets {depth + 1} deep; the limit is {depth}"
    assert _query_error(too_deep) == message
    # after a string (with an escaped quote in it) and after a comment, brackets count again
    assert _query_error('up{a="x\\"y"} + ' + too_deep) == message
    assert _query_error("up{a=`x\\`} + " + too_deep) == message  # no escapes between backquotes
    assert _query_error("up # (((\n + " + too_deep) == message


def test_operators_up_to_the_limit_are_accepted_and_beyond_refused() -> None:
    most = MAX_QUERY_OPERATORS
    HealthCheck.model_validate({**GOOD, "query": "+".join(["1"] * (most + 1))})
    message = f"the query has {most + 1} operators; the limit is {most}"
    assert _query_error("+".join(["1"] * (most + 2))) == message
    assert _query_error(" and ".join(["up"] * (most + 2))) == message


def test_brackets_and_operators_in_strings_and_comments_do_not_count() -> None:
    text = "(" * 60 + ")" * 60 + "-" * 300  # a valid regex, over both limits were it code
    query = f'up{{a=~"{text}", b="\\"("}} # {text}\n + on() count(up{{c=`{text}`}})'
    assert HealthCheck.model_validate({**GOOD, "query": query}).query == query


def test_a_long_query_is_refused() -> None:
    query = "sum(up)" + " " * MAX_QUERY_CHARS
    assert _query_error(query) == (
        f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}"
    )


def test_a_query_that_would_crash_the_parser_is_refused_instead() -> None:
    """Ten thousand brackets overflow the parser's stack and kill the process: it runs in a
    child so that, were the limit gone, this test would fail rather than take pytest down."""
    program = (
        "from pydantic import ValidationError\n"
        "from reconciler.fleetrepo.healthchecks import HealthCheck\n"
        "for query in ['(' * 10000 + '1' + ')' * 10000, '+'.join(['1'] * 10000)]:\n"
        "    try:\n"
        "        check = {'name': 'c', 'query': query, 'successCondition': '< 1'}\n"
        "        HealthCheck.model_validate(check)\n"
        "    except ValidationError as exc:\n"
        "        print(exc.errors()[0]['ctx']['error'])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        f"the query is 20001 characters long; the limit is {MAX_QUERY_CHARS}",
        f"the query is 19999 characters long; the limit is {MAX_QUERY_CHARS}",
    ]


# ---------------------------------------------------------------------------------------------
# Conditions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("< 0.02", Condition("<", 0.02)),
        ("<=1", Condition("<=", 1.0)),
        ("  >  -3 ", Condition(">", -3.0)),
        (">= 1e-3", Condition(">=", 0.001)),
        ("== .5", Condition("==", 0.5)),
        ("!= 0", Condition("!=", 0.0)),
    ],
)
def test_conditions_parse(text: str, expected: Condition) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize("text", ["0.02", "<", "< abc", "=< 1", "< 1 2", "< nan", "< inf", ""])
def test_bad_conditions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a condition"):
        parse_condition(text)


@pytest.mark.parametrize(
    ("condition", "value", "met"),
    [
        ("< 0.02", 0.01, True),
        ("< 0.02", 0.02, False),
        ("<= 0.02", 0.02, True),
        ("> 5", 5, False),
        (">= 5", 5, True),
        ("== 1", 1, True),
        ("== 1", 0.5, False),
        ("!= 1", 1, False),
        ("!= 1", 2, True),
        (">= 0", float("nan"), False),
        ("!= 0", float("nan"), True),
    ],
)
def test_met_by(condition: str, value: float, met: bool) -> None:
    assert parse_condition(condition).met_by(value) is met


@given(
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_a_condition_reads_back_as_written(operator: str, threshold: float) -> None:
    condition = Condition(operator, threshold)  # type: ignore[arg-type]
    assert parse_condition(str(condition)) == condition


@given(
    st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
    st.integers(-3, 3),
    st.lists(st.integers(-3, 3), min_size=1, max_size=6),
)
def test_one_extreme_value_answers_any_and_all(
    operator: str, threshold: int, values: list[int]
) -> None:
    condition = Condition(operator, threshold)  # type: ignore[arg-type]
    floats = [float(v) for v in values]
    any_meets = any(condition.met_by(v) for v in floats)
    all_meet = all(condition.met_by(v) for v in floats)
    assert condition.met_by(condition.extreme(floats, meeting=True)) is any_meets
    assert condition.met_by(condition.extreme(floats, meeting=False)) is all_meet


OPERATORS = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])


@given(OPERATORS, st.integers(-3, 3), OPERATORS, st.integers(-3, 3))
def test_a_passing_value_is_found_exactly_when_one_exists(
    success_operator: str, success_at: int, failure_operator: str, failure_at: int
) -> None:
    """Against every value on a grid finer than the thresholds (so a gap between two
    thresholds, or a single point, is on it): the check finds a value that passes exactly
    when one of the grid's does, and the value it finds passes."""
    success = Condition(success_operator, success_at)  # type: ignore[arg-type]
    failure = Condition(failure_operator, failure_at)  # type: ignore[arg-type]
    check = HealthCheck.model_construct(success_condition=success, failure_condition=failure)

    def passes(value: float) -> bool:
        return success.met_by(value) and not failure.met_by(value)

    grid = [step / 4 for step in range(-24, 25)]
    found = check.passing_value()
    assert (found is not None) is any(passes(v) for v in grid)
    assert found is None or passes(found)


# ---------------------------------------------------------------------------------------------
# Rendering queries


def _render(query: str, hosts: list[str], version: str | None = "9.1") -> str:
    return render_query(
        query, group="callservers-fra", hosts=hosts, commit="c" * 64, version=version, stream="prod"
    )


def _instance_regex(rendered: str) -> str:
    """The regex of the `instance` matcher, as Prometheus reads it from the string."""
    expression = promql_parser.parse(rendered)
    assert isinstance(expression, promql_parser.VectorSelector)
    return next(m.value for m in expression.matchers.matchers if m.name == "instance")


def test_hosts_are_escaped_for_the_regex_and_the_string() -> None:
    rendered = _render('up{instance=~"($hosts)(:[0-9]+)?"}', ["fra-call-01.example.net", "b"])
    assert rendered == r'up{instance=~"(fra-call-01\\.example\\.net|b)(:[0-9]+)?"}'
    regex = _instance_regex(rendered)
    assert re.fullmatch(regex, "fra-call-01.example.net:9100")
    assert re.fullmatch(regex, "b")
    assert not re.fullmatch(regex, "fra-call-01xexample.net:9100")  # the dot is literal
    assert not re.fullmatch(regex, "bb")


def test_no_hosts_render_as_a_regex_that_matches_no_host() -> None:
    regex = _instance_regex(_render('up{instance=~"($hosts)(:[0-9]+)?"}', []))
    assert regex == f"({NO_HOST})(:[0-9]+)?"
    assert not re.fullmatch(regex, "")  # `^$` would match series that have no instance
    # a host name starts with a letter or digit, so none is ever called this
    assert not re.fullmatch(models.HOST_NAME_PATTERN, NO_HOST)


def test_other_placeholders_are_literal_strings() -> None:
    query = 'x{group="$group", commit="$commit", version="$version", stream="$stream"}'
    tricky = 'v"1\\2'
    expression = promql_parser.parse(_render(query, ["h"], version=tricky))
    assert isinstance(expression, promql_parser.VectorSelector)
    values = {m.name: m.value for m in expression.matchers.matchers}
    assert values == {
        "group": "callservers-fra",
        "commit": "c" * 64,
        "version": tricky,
        "stream": "prod",
    }
    assert 'version=""' in _render(query, ["h"], version=None)


def test_a_dollar_that_starts_no_name_is_left_alone() -> None:
    query = 'up{instance=~".*:9100$"}'
    assert _render(query, ["h"]) == query
    HealthCheck.model_validate({**GOOD, "query": query})  # valid: no placeholder in it


def test_rendering_an_unknown_placeholder_raises() -> None:
    with pytest.raises(KeyError, match="host"):
        _render('up{instance=~"$host"}', ["h"])


def test_every_placeholder_is_substituted() -> None:
    query = " + ".join(f'count(up{{l="${name}"}})' for name in PLACEHOLDERS)
    assert "$" not in _render(query, ["h"])


PROMTOOL_TEST = """
tests:
  - interval: 1m
    input_series:
      - series: 'up{{instance="fra-call-01.example.net:9100"}}'
        values: '1x5'
      - series: 'up{{instance="fra-call-01xexample.net:9100"}}'
        values: '1x5'
      - series: 'up{{instance="b"}}'
        values: '1x5'
      - series: 'up'
        values: '1x5'
    promql_expr_test:
      - expr: {expr}
        eval_time: 2m
        exp_samples: {expected}
"""


@pytest.mark.needs_tool("promtool")
@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (
            ["fra-call-01.example.net", "b"],
            [
                {"labels": 'up{instance="fra-call-01.example.net:9100"}', "value": 1},
                {"labels": 'up{instance="b"}', "value": 1},
            ],
        ),
        ([], []),
    ],
    ids=["two hosts", "no host"],
)
def test_prometheus_selects_exactly_the_hosts(
    tmp_path: Path, hosts: list[str], expected: list[dict[str, object]]
) -> None:
    """The rendered query, run by Prometheus's own engine (promtool's rule unit tests)."""
    expr = _render('up{instance=~"($hosts)(:[0-9]+)?"}', hosts)
    test_file = tmp_path / "test.yaml"
    test_file.write_text(PROMTOOL_TEST.format(expr=json.dumps(expr), expected=json.dumps(expected)))
    yaml.safe_load(test_file.read_text())  # a broken test file would fail for another reason
    run = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------
# Merging a group's checks with the defaults


def _check(name: str, threshold: float = 0.02) -> HealthCheck:
    return HealthCheck.model_validate({**GOOD, "name": name, "successCondition": f"< {threshold}"})


def test_a_groups_check_replaces_the_default_of_its_name_in_place() -> None:
    defaults = [_check("a"), _check("b"), _check("c")]
    own = [_check("d"), _check("b", 0.5)]
    merged = merge_health_checks(defaults, own)
    assert [c.name for c in merged] == ["a", "b", "c", "d"]
    assert merged[1] == own[1]
    assert merged[1].success_condition == Condition("<", 0.5)


def test_merging_with_nothing() -> None:
    defaults = [_check("a")]
    assert merge_health_checks(defaults, []) == (defaults[0],)
    assert merge_health_checks([], defaults) == (defaults[0],)
    assert merge_health_checks([], []) == ()


# ---------------------------------------------------------------------------------------------
# The committed JSON Schema, as editors see it


@pytest.mark.parametrize(
    ("condition", "valid"),
    [("< 0.02", True), (">=1e-3", True), ("!= -1", True), ("0.02", False), ("<< 1", False)],
)
def test_the_json_schema_checks_conditions_as_the_model_does(condition: str, valid: bool) -> None:
    schema = json.loads((ROOT / "fleet-repo-schema" / "group.schema.json").read_text())
    document = {
        "apiVersion": "ostree-fleet/v1alpha1",
        "kind": "Group",
        "name": "g",
        "hosts": ["h"],
        "stream": "s",
        "healthChecks": [{**GOOD, "successCondition": condition}],
    }
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert (errors == []) is valid
    try:
        parse_condition(condition)
    except ValueError:
        assert not valid
    else:
        assert valid
