"""The runner: persistence before answers, dependencies first (error containment is the
service's: tests/test_service.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_harness import Harness
from tests.state_backends import harness_on_both_stores

HOSTS = {"a1": {}, "b1": {}}
GROUPS = {"a": {"hosts": ["a1"]}, "b": {"hosts": ["b1"]}}


@pytest.mark.usefixtures("harness_on_both_stores")
def test_groups_are_planned_after_the_groups_they_depend_on(tmp_path: Path) -> None:
    groups = {**GROUPS, "a": {"hosts": ["a1"], "dependsOn": ["b"]}}
    h = Harness(tmp_path, groups, HOSTS)
    assert h.engine.groups_in_order() == ["b", "a"]


@pytest.mark.usefixtures("harness_on_both_stores")
def test_decisions_are_in_the_store_when_the_plan_is_returned(tmp_path: Path) -> None:
    h = Harness(tmp_path, GROUPS, HOSTS)
    plan = h.engine.reconcile_group("a", h.sim.observations())
    assert plan.decisions
    stored = [e.kind for e in h.store.events("a")]
    assert stored == [d.kind.value for d in plan.decisions]


__all__ = ["harness_on_both_stores"]  # the fixture, for pytest
