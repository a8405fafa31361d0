"""Build fleets in memory for engine tests, through the same models the loader uses."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from reconciler.fleetrepo.fleet import Fleet, Inventory, InventoryHost
from reconciler.fleetrepo.models import FleetConfig, Group, MaintenanceWindow, Stream

API = {"apiVersion": "ostree-fleet/v1alpha1"}
OLD = "0" * 63 + "1"
NEW = "0" * 63 + "2"
NEWER = "0" * 63 + "3"


#: A freeze in force all day on 2026-11-25 (UTC), the day tests.engine_harness.START falls on.
HOLIDAY_FREEZE = {
    "name": "xmas",
    "start": "2026-11-25",
    "end": "2026-11-26",
    "timeZone": "UTC",
    "reason": "holiday change freeze",
}


def commit(n: int) -> str:
    return f"{n:064x}"


def build_fleet(
    groups: Mapping[str, Mapping[str, Any]],
    hosts: Mapping[str, Mapping[str, str]],
    streams: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    revision: str = "rev-1",
    held: Mapping[str, str] | None = None,
    freezes: list[Mapping[str, Any]] | None = None,
    host_windows: Mapping[str, list[Mapping[str, Any]]] | None = None,
    lock_ids: Mapping[str, str] | None = None,
) -> Fleet:
    """``groups``: name -> Group fields (stream defaults to `main`); ``hosts``: name -> labels;
    ``held``: hosts held out of rollouts -> why; ``freezes``: the fleet's freezes;
    ``host_windows``: hosts with maintenance windows of their own (as from their inventory
    file or entry) -> the windows; ``lock_ids``: hosts -> their `fleetLockId`."""
    streams = streams or {"main": NEW}
    config = FleetConfig.model_validate(
        {
            **API,
            "kind": "Fleet",
            "name": "test",
            "defaults": dict(defaults or {}),
            "freezes": list(freezes or []),
        }
    )
    stream_models = {
        name: Stream.model_validate(
            {
                **API,
                "kind": "Stream",
                "name": name,
                "remote": "os",
                "ref": f"os/{name}",
                "commit": value,
            }
        )
        for name, value in streams.items()
    }
    group_models = {}
    for name, fields in groups.items():
        body = {"stream": "main", **fields} if "pin" not in fields else dict(fields)
        group_models[name] = Group.model_validate({**API, "kind": "Group", "name": name, **body})
    inventory = Inventory(
        InventoryHost(
            name,
            dict(labels),
            hashlib.sha256(name.encode()).hexdigest(),
            "hosts.yaml",
            (held or {}).get(name),
            _windows((host_windows or {}).get(name)),
            (lock_ids or {}).get(name),
        )
        for name, labels in hosts.items()
    )
    members = {name: tuple(inventory.members(group)) for name, group in group_models.items()}
    return Fleet(
        config, stream_models, group_models, {h.name: h for h in inventory.hosts}, members, revision
    )


def _windows(
    windows: list[Mapping[str, Any]] | None,
) -> tuple[MaintenanceWindow, ...] | None:
    return None if windows is None else tuple(map(MaintenanceWindow.model_validate, windows))
