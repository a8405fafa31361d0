"""Every `healthChecks` example in docs/health-gates.md is a valid check, and the page names
every Prometheus option of `reconciler serve`: the docs cannot rot unnoticed."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from reconciler.cli.serve import SETTINGS
from reconciler.fleetrepo.healthchecks import PLACEHOLDERS, HealthCheck
from tests.conftest import ROOT

DOC = ROOT / "docs" / "health-gates.md"
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def health_check_lists(text: str) -> list[list[Any]]:
    """Each `healthChecks` list of each YAML block, wherever it is nested."""
    found: list[list[Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "healthChecks":
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for block in _YAML_BLOCK.findall(text):
        walk(yaml.safe_load(block))
    return found


EXAMPLES = [check for checks in health_check_lists(DOC.read_text()) for check in checks]


def test_the_page_has_its_examples() -> None:
    # A change of format that the extraction no longer sees fails here, not silently.
    names = {check["name"] for check in EXAMPLES}
    assert {"call-setup-success", "sip-registration-failures", "rtp-packet-loss"} <= names
    assert {"hosts-up", "failed-units", "fleet-call-failures"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=[check["name"] for check in EXAMPLES])
def test_every_example_is_a_valid_health_check(example: dict[str, Any]) -> None:
    check = HealthCheck.model_validate(example)
    assert check.name == example["name"]


def test_the_extraction_would_catch_a_broken_example() -> None:
    text = (
        "```yaml\nhealthChecks:\n"
        '  - {name: x, query: "sum(rate(up[5m])", failureCondition: "> 0"}\n```\n'
    )
    [[broken]] = health_check_lists(text)
    with pytest.raises(ValueError, match="not valid PromQL"):
        HealthCheck.model_validate(broken)


def test_the_page_names_every_prometheus_option_and_placeholder() -> None:
    text = DOC.read_text()
    options = [name for name in SETTINGS if name.startswith("prometheus-")]
    assert options
    for option in options:
        assert f"`--{option}`" in text, option
    for placeholder in PLACEHOLDERS:
        assert f"`${placeholder}`" in text, placeholder
