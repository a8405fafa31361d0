"""The alert rules pass `promtool check rules`, and every alert's unit tests pass (firing and
not firing) with `promtool test rules`."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.conftest import ROOT

RULES = ROOT / "deploy" / "prometheus"


@pytest.mark.needs_tool("promtool")
def test_rules_are_valid() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.needs_tool("promtool")
def test_rule_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_both_cases_tested() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())["tests"]
    runbook = (ROOT / "docs" / "runbook.md").read_text().lower()
    for rule in rules:
        name = rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        anchor = annotations["runbook_url"].split("#")[1]
        assert f"## {name.lower()}" in runbook, f"docs/runbook.md has no section for {name}"
        assert anchor == name.lower()
        cases = [
            case for test in tests for case in test["alert_rule_test"] if case["alertname"] == name
        ]
        assert any(case["exp_alerts"] for case in cases), f"{name}: no firing case"
        assert any(not case["exp_alerts"] for case in cases), f"{name}: no quiet case"
