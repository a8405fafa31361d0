"""Label selectors, as in Kubernetes: `matchLabels` and `matchExpressions`, and their index.

A selector is the AND of its `matchLabels` pairs and its `matchExpressions`. Selection is
computed from an index of the inventory by label and key, so a selector costs about the size
of the label sets it touches, never a pass over every host's labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from reconciler.fleetrepo.spec import Spec, located
from reconciler.fleetrepo.suggestions import did_you_mean

LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
Labels = dict[LabelKey, str]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


#: Operators from other selector languages, and ours that mean the same. Spelling alone
#: would take `NotExists` for `Exists`, its opposite.
_MEANT_OPERATOR = {
    "notexists": "DoesNotExist",
    "notexist": "DoesNotExist",
    "doesnotexists": "DoesNotExist",
    "absent": "DoesNotExist",
    "equals": "In",
    "=": "In",
    "==": "In",
    "notequals": "NotIn",
    "!=": "NotIn",
}


def _known_operator(value: object) -> object:
    """An unknown operator names the one meant (`in` → `In`, `NotExists` → `DoesNotExist`)."""
    if isinstance(value, str) and value not in OPERATORS:
        meant = _MEANT_OPERATOR.get(value.casefold().replace(" ", ""))
        hint = f"did you mean `{meant}`?" if meant else did_you_mean(value, OPERATORS, 0.5)
        expected = ", ".join(f"`{op}`" for op in OPERATORS)
        raise ValueError(
            f"unknown operator `{value}`; "
            + (hint if hint is not None else f"expected one of {expected}")
        )
    return value


class LabelSelectorRequirement(Spec):
    """One condition on one label, as in Kubernetes (`In`, `NotIn`, `Exists`, `DoesNotExist`)."""

    key: LabelKey = Field(description="The label key the condition is about.")
    operator: Annotated[Operator, BeforeValidator(_known_operator)] = Field(
        description="`In`: the host has the label with one of `values`. `NotIn`: it does not "
        "(a host without the label matches). `Exists`: it has the label, whatever its value. "
        "`DoesNotExist`: it does not have the label."
    )
    values: list[str] | None = Field(
        default=None,
        description="The values for `In` and `NotIn` (at least one); not allowed with "
        "`Exists` and `DoesNotExist`.",
    )

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        needs_values = self.operator in ("In", "NotIn")
        if needs_values and not self.values:
            raise located(
                ("values",) if self.values is not None else ("operator",),
                f"`{self.operator}` needs `values`: a list of at least one label value",
            )
        if not needs_values and self.values is not None:
            raise located(
                ("values",),
                f"`{self.operator}` takes no `values`; remove them (or use `In` / `NotIn`)",
            )
        return self


class LabelSelector(Spec):
    """Selects inventory hosts by their labels: every `matchLabels` pair and every
    `matchExpressions` condition must hold (as a Kubernetes label selector). For example,
    ordinary servers without a `hardware` label:
    `{matchLabels: {site: fra}, matchExpressions: [{key: hardware, operator: DoesNotExist}]}`.
    """

    match_labels: Labels = Field(
        default_factory=dict, description="Labels a host must carry, with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Conditions on labels a host must meet, all of them."
    )

    @model_validator(mode="after")
    def _selects_something(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise located(
                (),
                "a selector needs `matchLabels` or `matchExpressions`; "
                "an empty one would select every host",
            )
        return self


class LabelIndex:
    """Host names by label pair and by label key, to evaluate selectors without a scan."""

    def __init__(self, labels_by_host: Iterable[tuple[str, Mapping[str, str]]]) -> None:
        self._all: set[str] = set()
        self._by_pair: dict[tuple[str, str], set[str]] = {}
        self._by_key: dict[str, set[str]] = {}
        for name, labels in labels_by_host:
            self._all.add(name)
            for key, value in labels.items():
                self._by_pair.setdefault((key, value), set()).add(name)
                self._by_key.setdefault(key, set()).add(name)

    def matching(self, selector: LabelSelector) -> set[str]:
        """Names of the hosts that meet every condition of ``selector``."""
        required, excluded = self._conditions(selector)
        if required:
            required.sort(key=len)  # intersect from the smallest set: cost ~ fewest matches
            selected = set(required[0])
            for names in required[1:]:
                selected &= names
        else:  # only exclusions (`NotIn`, `DoesNotExist`): start from every host
            selected = set(self._all)
        for names in excluded:
            if not selected:
                break
            selected -= names
        return selected

    def _conditions(self, selector: LabelSelector) -> tuple[list[set[str]], list[set[str]]]:
        """The sets a host must be in, and the sets it must not be in."""
        empty: set[str] = set()
        required = [self._by_pair.get(pair, empty) for pair in selector.match_labels.items()]
        excluded: list[set[str]] = []
        for expression in selector.match_expressions:
            key = expression.key
            if expression.operator == "Exists":
                required.append(self._by_key.get(key, empty))
            elif expression.operator == "DoesNotExist":
                excluded.append(self._by_key.get(key, empty))
            else:
                with_value = self._with_any_value(key, expression.values or [])
                (required if expression.operator == "In" else excluded).append(with_value)
        return required, excluded

    def _with_any_value(self, key: str, values: list[str]) -> set[str]:
        if len(values) == 1:
            return self._by_pair.get((key, values[0]), set())
        union: set[str] = set()
        for value in values:
            union |= self._by_pair.get((key, value), set())
        return union
