"""Health checks: PromQL queries whose result must say a service works before it goes further.

A check may be written in ``fleet.yaml`` (``defaults.healthChecks``), in a group and in a
stream's ``promotion``. Its query is validated when the fleet repo is: placeholders are
filled in with sample values and the result is parsed by a real PromQL parser
(``promql-parser``), so a typo is reported at its file and line like any other problem
instead of when the gate first runs.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal, cast

import promql_parser
from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.durations import Duration, format_duration
from reconciler.fleetrepo.spec import Spec, located
from reconciler.fleetrepo.suggestions import closest

# The same pattern as `models.NAME_PATTERN` (tests/test_healthchecks.py checks they are equal):
# models.py imports this module, so this one cannot import models.py back.
_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

MIN_INTERVAL = timedelta(seconds=5)

# ---------------------------------------------------------------------------------------------
# Conditions

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
CONDITION_PATTERN = rf"^\s*(<=|>=|==|!=|<|>)\s*({_NUMBER})\s*$"
_CONDITION = re.compile(CONDITION_PATTERN)

Operator = Literal["<", "<=", ">", ">=", "==", "!="]


def format_number(value: float) -> str:
    """A number as people write it: ``3`` rather than ``3.0``, the shortest exact form else."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True, slots=True)
class Condition:
    """A comparison of a query's value with a threshold, written ``< 0.02`` or ``>= 0.99``."""

    operator: Operator
    threshold: float

    def met_by(self, value: float) -> bool:
        """Whether ``value`` meets the condition; a NaN meets none."""
        return _OPERATORS[self.operator](value, self.threshold)

    def extreme(self, values: Sequence[float], *, meeting: bool) -> float:
        """The value of ``values`` furthest toward meeting the condition (``meeting=True``) or
        toward missing it, so that one value answers "does any meet it?" and "do all?".

        ``met_by(extreme(vs, meeting=True))`` is whether any value meets the condition, and
        ``met_by(extreme(vs, meeting=False))`` whether all do. ``values`` must not be empty.
        """
        if self.operator in ("<", "<="):
            return min(values) if meeting else max(values)
        if self.operator in (">", ">="):
            return max(values) if meeting else min(values)
        # == and != have no direction: any value on the wanted side will do
        return next((v for v in values if self.met_by(v) == meeting), values[0])

    def __str__(self) -> str:
        return f"{self.operator} {format_number(self.threshold)}"


def parse_condition(value: object) -> Condition:
    """Read ``"< 0.02"``; raise ``ValueError`` saying what a condition looks like."""
    if isinstance(value, Condition):
        return value
    match = _CONDITION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"`{value}` is not a condition; write a comparison with a number such as "
            '`"< 0.02"` or `">= 0.99"` (operators <, <=, >, >=, ==, !=; quote it in YAML)'
        )
    threshold = float(match.group(2))
    if not math.isfinite(threshold):
        raise ValueError(f"the threshold of `{value}` is not a finite number")
    return Condition(cast(Operator, match.group(1)), threshold)  # the regex allows no other


ConditionField = Annotated[
    Condition,
    PlainValidator(parse_condition),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": CONDITION_PATTERN, "examples": ["< 0.02", ">= 0.99"]}
    ),
]

# ---------------------------------------------------------------------------------------------
# Queries and their placeholders

#: Placeholders a query may use, and what each is replaced by.
PLACEHOLDERS: Mapping[str, str] = {
    "group": "the group's name (for a promotion, the stream promoted from)",
    "hosts": "a regular expression matching the names of the hosts in scope, for "
    '`instance=~"($hosts)(:[0-9]+)?"`',
    "commit": "the commit being rolled out or promoted",
    "version": "its human version, empty when it has none",
    "stream": "the stream the commit comes from",
}

#: What `$hosts` becomes when no host is in scope. Host names start with a letter or digit, so
#: no host is named this, and as an anchored regex it matches no `instance` label either. (An
#: empty alternation would match the empty label, i.e. every series without `instance`.)
NO_HOST = "__no_host__"

# A `$` followed by a name is a placeholder; any other `$` (a regex's end anchor) stays.
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# Characters with a meaning in RE2 (Prometheus's regex syntax), escaped in host names.
_REGEX_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def _in_promql_string(text: str) -> str:
    """``text`` escaped for a double-quoted PromQL string, whose escapes are Go's."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def hosts_regex(hosts: Sequence[str]) -> str:
    """The `$hosts` value: each name regex-escaped, joined with `|`, and escaped again for the
    double-quoted string it is written in; :data:`NO_HOST` when there is none."""
    if not hosts:
        return NO_HOST
    return _in_promql_string("|".join(_REGEX_SPECIAL.sub(r"\\\1", host) for host in hosts))


def placeholders_in(query: str) -> list[str]:
    """The placeholder names ``query`` uses, in order, repeats included."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(query)]


def render_query(
    query: str,
    *,
    group: str,
    hosts: Sequence[str],
    commit: str,
    version: str | None,
    stream: str,
) -> str:
    """``query`` with its placeholders replaced, ready to send to Prometheus.

    `$hosts` is a regular expression (see :func:`hosts_regex`); the other values are literal
    text escaped for a double-quoted string (`{group="$group"}`). A placeholder not in
    :data:`PLACEHOLDERS` raises ``KeyError``; validation has refused such a query already.
    """
    values = {
        "group": _in_promql_string(group),
        "hosts": hosts_regex(hosts),
        "commit": _in_promql_string(commit),
        "version": _in_promql_string(version or ""),
        "stream": _in_promql_string(stream),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], query)


#: Limits on a query's size, checked before it is parsed. The parser recurses once per level
#: of brackets and per binary operator, about 1-2 KiB of stack each, and ten thousand levels
#: crash the process (a segmentation fault, not an exception): a pull request must not be able
#: to take the daemon down. Real health-check queries stay far inside these.
MAX_QUERY_CHARS = 4000
MAX_QUERY_NESTING = 50
MAX_QUERY_OPERATORS = 200

_OPERATOR_CHARACTERS = frozenset("+-*/%^=!<>")
_SET_OPERATOR = re.compile(r"\b(?:and|or|unless)\b")


def _code_of(query: str) -> str:
    """``query`` with its string literals and comments blanked out (their quotes are kept)."""
    kept: list[str] = []
    quote: str | None = None
    escaped = in_comment = False
    for character in query:
        hidden = in_comment or (quote is not None and character != quote) or escaped
        if in_comment:
            in_comment = character != "\n"
        elif quote is not None:  # in a string literal: only its closing quote matters
            if escaped:
                escaped = False
            elif character == "\\" and quote != "`":  # backquoted strings have no escapes
                escaped = True
            elif character == quote:
                quote = None
        elif character in "\"'`":
            quote = character
        elif character == "#":
            in_comment = hidden = True
        kept.append(" " if hidden else character)
    return "".join(kept)


def _check_size(query: str) -> None:
    """Refuse a query too long, too deeply nested or with too many operators to parse safely.

    Brackets and operators inside string literals and comments do not count.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(
            f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}"
        )
    code = _code_of(query)
    depth = deepest = 0
    for character in code:
        if character in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in ")]}":
            depth -= 1
    if deepest > MAX_QUERY_NESTING:
        raise ValueError(
            f"the query nests brackets {deepest} deep; the limit is {MAX_QUERY_NESTING}"
        )
    operators = sum(c in _OPERATOR_CHARACTERS for c in code) + len(_SET_OPERATOR.findall(code))
    if operators > MAX_QUERY_OPERATORS:
        raise ValueError(f"the query has {operators} operators; the limit is {MAX_QUERY_OPERATORS}")


def check_query(query: str) -> str:
    """Refuse a query with an unknown placeholder, bad syntax, or no number for a result, or
    one too large to parse safely."""
    _check_size(query)
    for name in placeholders_in(query):
        if name not in PLACEHOLDERS:
            meant = closest(name, PLACEHOLDERS)
            raise ValueError(
                f"unknown placeholder `${name}` in the query"
                + (f" (did you mean `${meant}`?)" if meant else "")
                + "; the placeholders are "
                + ", ".join(f"`${known}`" for known in PLACEHOLDERS)
            )
    # Sample values of the shape real ones have, so the parser sees what Prometheus will.
    rendered = render_query(
        query,
        group="sample-group",
        hosts=("host-1.example.com", "host-2"),
        commit="0" * 64,
        version="1.0",
        stream="sample-stream",
    )
    try:
        expression = promql_parser.parse(rendered)
    except ValueError as exc:
        raise ValueError(f"the query is not valid PromQL: {exc}") from None
    _check_result_type(expression)
    return query


def _check_result_type(expression: promql_parser.Expr) -> None:
    """A gate compares numbers: a range vector or a string result has none to compare."""
    while isinstance(expression, promql_parser.ParenExpr):
        expression = expression.expr
    if isinstance(expression, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        raise ValueError(
            "the query gives a range vector, which has no single value to compare; "
            "wrap it in a function such as `rate(...)` or `avg_over_time(...)`"
        )
    if isinstance(expression, promql_parser.StringLiteral):
        raise ValueError("the query gives a string; a health check compares numbers")


# ---------------------------------------------------------------------------------------------
# The model


class HealthCheck(Spec):
    """A PromQL query evaluated while a wave soaks or a promotion waits: the wave advances, or
    the build is promoted, only once it succeeds. A query result with several series succeeds
    only if every series does; it fails if any series fails."""

    name: Annotated[str, StringConstraints(pattern=_NAME_PATTERN)] = Field(
        description="Names the check in status, events and reasons; unique within its list. "
        "A group's check replaces the fleet default of the same name."
    )
    query: Annotated[str, StringConstraints(min_length=1), AfterValidator(check_query)] = Field(
        description="PromQL instant query. Placeholders, replaced before it is sent: "
        + "; ".join(f"`${name}`: {meaning}" for name, meaning in PLACEHOLDERS.items())
        + ". An empty result, a NaN or Prometheus failing to answer is inconclusive. At most "
        f"{MAX_QUERY_CHARS} characters, {MAX_QUERY_NESTING} levels of brackets and "
        f"{MAX_QUERY_OPERATORS} operators (outside strings and comments).",
        json_schema_extra={
            "examples": ['sum(rate(sip_calls_failed_total{instance=~"($hosts)(:[0-9]+)?"}[5m]))']
        },
    )
    success_condition: ConditionField | None = Field(
        default=None,
        description='The query\'s value is good when it meets this, e.g. `"< 0.02"`. With no '
        "`failureCondition`, a value that misses it is a failure.",
    )
    failure_condition: ConditionField | None = Field(
        default=None,
        description='The query\'s value is a failure when it meets this, e.g. `">= 0.05"`. With '
        "no `successCondition`, a value that misses it is good. With both, a value that "
        "meets neither is neutral: not a failure, but it restarts `consecutiveSuccesses`.",
    )
    interval: Duration = Field(
        default=timedelta(minutes=1),
        description=f"How often the query is evaluated; at least {format_duration(MIN_INTERVAL)}.",
    )
    consecutive_successes: int = Field(
        default=1, ge=1, description="Successes in a row needed for the check to pass."
    )
    failure_limit: int = Field(
        default=1,
        ge=1,
        description="Failures during a wave's soak at which the check fails and the rollout "
        "halts. For a promotion, the latest result counts: a failure blocks it until the "
        "check passes again.",
    )
    inconclusive_limit: int = Field(
        default=10,
        ge=1,
        description="Inconclusive results in a row (no data, NaN, Prometheus not answering) "
        "tolerated before `whenInconclusive` applies.",
    )
    when_inconclusive: Literal["alert", "halt"] = Field(
        default="alert",
        description="Past `inconclusiveLimit`: `alert` keeps waiting (never advancing) and "
        "flags the check as stalled; `halt` fails it.",
    )
    dry_run: bool = Field(
        default=False,
        description="Evaluate and record the check, but never let it block or halt anything.",
    )

    @field_validator("interval")
    @classmethod
    def _interval_not_too_short(cls, interval: timedelta) -> timedelta:
        if interval < MIN_INTERVAL:
            raise ValueError(
                f"an interval of {format_duration(interval)} is below the minimum of "
                f"{format_duration(MIN_INTERVAL)}"
            )
        return interval

    @model_validator(mode="after")
    def _has_a_condition(self) -> HealthCheck:
        if self.success_condition is None and self.failure_condition is None:
            raise located(
                (),
                "a health check needs a `successCondition`, a `failureCondition`, or both",
            )
        if self.passing_value() is None:
            raise located(
                (),
                f"no value can pass this check: every value that meets `successCondition: "
                f"{self.success_condition}` also meets `failureCondition: "
                f"{self.failure_condition}`, so a gate on it could never open",
            )
        return self

    def passing_value(self) -> float | None:
        """A value that passes the check (the success threshold itself when it does), or
        None when none can. Each condition splits the numbers at its threshold, so if any
        value passes, one of the thresholds, their nearest neighbours or the extremes does."""
        success, failure = self.success_condition, self.failure_condition
        thresholds = [c.threshold for c in (success, failure) if c is not None]
        candidates = [0.0, -1e300, 1e300]
        for t in thresholds:
            candidates[:0] = [t, math.nextafter(t, math.inf), math.nextafter(t, -math.inf)]
        if success is not None:  # prefer the success threshold and its neighbours
            candidates[:0] = [success.threshold, success.threshold + 1, success.threshold - 1]
        for value in candidates:
            meets_success = success is None or success.met_by(value)
            if meets_success and (failure is None or not failure.met_by(value)):
                return value
        return None


def _unique_names(checks: list[HealthCheck]) -> list[HealthCheck]:
    first: dict[str, int] = {}
    for index, check in enumerate(checks):
        if check.name in first:
            raise PydanticCustomError(
                "value_error_at",
                "health check `{name}` is already defined in this list (at index {first}); "
                "names must be unique",
                {"at": (index, "name"), "name": check.name, "first": first[check.name]},
            )
        first[check.name] = index
    return checks


HealthChecks = Annotated[list[HealthCheck], AfterValidator(_unique_names)]


def merge_health_checks(
    defaults: Iterable[HealthCheck], own: Iterable[HealthCheck]
) -> tuple[HealthCheck, ...]:
    """The checks that apply: the defaults in their order, each replaced by ``own``'s check of
    the same name if it has one, then ``own``'s other checks in their order."""
    mine = {check.name: check for check in own}
    merged = [mine.pop(check.name, check) for check in defaults]
    return (*merged, *mine.values())
