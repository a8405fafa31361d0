"""The makespan ratio that benchmarks/predict_large_fleet.py prints is a real measure: on a
small fleet of each shape, the prediction ends exactly at the lower bound the policy allows,
and a policy that makes the engine wait beyond the bound's model shows a ratio above 1."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.promotion.ahead import PredictedPromotions
from reconciler.rollout.prediction import Assumptions, predict
from tests.conftest import ROOT


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "predict_large_fleet", ROOT / "benchmarks" / "predict_large_fleet.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look modules up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("windows", "promoted"), [(False, False), (True, False), (True, True)])
def test_small_fleets_of_each_shape_end_at_the_lower_bound(
    tmp_path: Path, windows: bool, promoted: bool
) -> None:
    bench = benchmark()
    bench.write_fleet(tmp_path, 200, 10, windows, promoted)
    fleet = load_fleet_or_raise(DirectorySource(tmp_path))
    assumed = Assumptions()
    booted = dict.fromkeys(fleet.hosts, bench.OLD)
    prediction = predict(fleet, bench.START, booted, assumed, PredictedPromotions())
    assert prediction.end is not None
    assert prediction.end == bench.lower_bound(fleet, assumed)
    assert bool(prediction.milestones) == promoted


def test_a_gate_slower_than_the_soak_shows_as_a_ratio_above_one(tmp_path: Path) -> None:
    """The bound assumes gates pass within a soak; 3 passes an hour apart take 2 h, beyond
    the 1 h soak, so the prediction ends later than the bound: the ratio can exceed 1."""
    bench = benchmark()
    bench.write_fleet(tmp_path, 200, 10, True, True)
    fleet_yaml = tmp_path / "fleet.yaml"
    fleet_yaml.write_text(fleet_yaml.read_text().replace("interval: 5m", "interval: 1h"))
    fleet = load_fleet_or_raise(DirectorySource(tmp_path))
    assumed = Assumptions()
    prediction = predict(
        fleet, bench.START, dict.fromkeys(fleet.hosts, bench.OLD), assumed, PredictedPromotions()
    )
    assert prediction.end is not None
    assert prediction.end > bench.lower_bound(fleet, assumed)
