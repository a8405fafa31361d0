"""A revision is untrusted input: validating it costs a bounded amount, and says so."""

from __future__ import annotations

from pathlib import Path

from reconciler.fleetrepo.loader import ValidationBudget, load_fleet
from reconciler.fleetrepo.sources import DirectorySource


def flood(fleet_dir: Path, files: int, items: int) -> None:
    """Inventory files whose hosts are a long list of numbers: one error per item."""
    for n in range(files):
        (fleet_dir / "hosts" / f"flood-{n:03}.yaml").write_text(
            "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nhosts: ["
            + ",".join("1" for _ in range(items))
            + "]\n"
        )


def test_errors_stop_at_the_limit_and_say_so(fleet_dir: Path) -> None:
    flood(fleet_dir, files=10, items=20_000)
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is None
    assert len(result.problems) == 1_001
    last = result.problems[-1]
    assert last.code == "budget.errors"
    assert "stopped after 1000 errors" in last.message


def test_too_many_files_stop_validation(fleet_dir: Path) -> None:
    flood(fleet_dir, files=5, items=1)
    result = load_fleet(DirectorySource(fleet_dir), ValidationBudget(max_files=10))
    assert result.fleet is None
    assert result.problems[-1].code == "budget.files"


def test_too_many_bytes_stop_validation(fleet_dir: Path) -> None:
    result = load_fleet(DirectorySource(fleet_dir), ValidationBudget(max_total_bytes=1_000))
    assert result.fleet is None
    assert [p.code for p in result.problems] == ["budget.bytes"]


def test_the_example_fleet_is_far_inside_the_default_budget(fleet_dir: Path) -> None:
    assert load_fleet(DirectorySource(fleet_dir)).fleet is not None
