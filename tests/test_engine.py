"""The runner: persistence before answers, and one group's failure does not stop the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.rollout import engine as engine_module
from reconciler.rollout import planner
from tests.engine_harness import Harness

HOSTS = {"a1": {}, "b1": {}}
GROUPS = {"a": {"hosts": ["a1"]}, "b": {"hosts": ["b1"]}}


def test_a_failing_group_is_logged_and_the_others_are_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path, GROUPS, HOSTS)
    real = planner.plan_group

    def flaky(spec, *args, **kwargs):  # type: ignore[no-untyped-def]
        if spec.name == "a":
            raise RuntimeError("boom")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(engine_module, "plan_group", flaky)
    plans = h.engine.reconcile_all(h.sim.observations())
    assert set(plans) == {"b"}
    assert isinstance(h.engine.errors["a"], RuntimeError)
    assert "planning group a failed" in caplog.text
    monkeypatch.setattr(engine_module, "plan_group", real)
    assert set(h.engine.reconcile_all(h.sim.observations())) == {"a", "b"}
    assert h.engine.errors == {}


def test_decisions_are_in_the_store_when_the_plan_is_returned(tmp_path: Path) -> None:
    h = Harness(tmp_path, GROUPS, HOSTS)
    plan = h.engine.reconcile_group("a", h.sim.observations())
    assert plan.decisions
    stored = [e.kind for e in h.store.events("a")]
    assert stored == [d.kind.value for d in plan.decisions]
