"""What a valid fleet resolves to: targets, effective rollout policy, windows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.quantities import CountOrPercent
from reconciler.fleetrepo.sources import DirectorySource
from tests.conftest import EXAMPLE_FLEET


def _example() -> Fleet:
    return load_fleet_or_raise(DirectorySource(EXAMPLE_FLEET))


def test_group_overrides_only_the_fields_it_writes() -> None:
    fleet = _example()
    nyc = fleet.rollout_policy("callservers-nyc")
    assert nyc.soak_time == timedelta(hours=4)  # the group's own
    assert nyc.waves == [CountOrPercent(1), CountOrPercent(10, True), CountOrPercent(50, True)]
    assert nyc.reboot_budget.group_by == ["site"]  # the fleet default

    lab = fleet.rollout_policy("staging-lab")
    # Nested blocks merge field by field: the lab keeps the fleet's groupBy.
    assert lab.reboot_budget.max_unavailable == CountOrPercent(50, True)
    assert lab.reboot_budget.group_by == ["site"]


def test_builtin_defaults_apply_without_fleet_defaults(tmp_path: Path) -> None:
    fleet_dir = tmp_path / "fleet"
    (fleet_dir / "streams").mkdir(parents=True)
    (fleet_dir / "fleet.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: Fleet\nname: tiny\n"
    )
    (fleet_dir / "streams" / "s.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: Stream\nname: s\nremote: r\nref: a/b\n"
        f"commit: {'c' * 64}\n"
    )
    (fleet_dir / "groups").mkdir()
    (fleet_dir / "groups" / "g.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: Group\nname: g\nstream: s\nhosts: [h1]\n"
    )
    (fleet_dir / "hosts").mkdir()
    (fleet_dir / "hosts" / "all.yaml").write_text(
        "apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nhosts:\n"
        f"  - name: h1\n    tokenSha256: {'d' * 64}\n"
    )
    fleet = load_fleet_or_raise(DirectorySource(fleet_dir))
    policy = fleet.rollout_policy("g")
    assert policy.waves == [CountOrPercent(1), CountOrPercent(25, True)]
    assert policy.soak_time == timedelta(hours=1)
    assert policy.health_timeout == timedelta(minutes=30)
    assert fleet.maintenance_windows("g") == []


def test_targets_of_stream_and_pinned_groups() -> None:
    fleet = _example()
    dub = fleet.target("callservers-dub")
    assert (dub.stream, dub.remote, dub.ref) == (
        "production",
        "callos",
        "callos/9/x86_64/production",
    )
    assert dub.commit == fleet.streams["production"].commit
    pinned = fleet.target("callservers-fra-dsp")
    assert pinned.stream is None
    assert pinned.commit.startswith("5c2e8a1f")


def test_windows_are_inherited_unless_the_group_writes_its_own() -> None:
    fleet = _example()
    assert fleet.maintenance_windows("staging-lab") == []
    [window] = fleet.maintenance_windows("callservers-dub")
    assert (window.schedule, window.duration, window.time_zone) == (
        "0 1 * * *",
        timedelta(hours=4),
        "Europe/Dublin",
    )


def test_labels_merge_file_and_host() -> None:
    host = _example().hosts["fra-call-05"]
    assert host.labels == {
        "site": "fra",
        "timezone": "Europe/Berlin",
        "role": "callserver",
        "hardware": "dsp-card",
        "rack": "b3",
    }
