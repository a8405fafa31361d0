"""What a change does beyond single groups: the streams it adds, removes or moves, the
promotion policies it changes, and the fleet-wide settings of `fleet.yaml` it changes, with
the groups each one reaches. Pure functions of the base and proposed revisions.

A promotion policy or a fleet default changes no group's commit, so before these sections a
pull request that turned production's promotion from 48 hours on 3 healthy hosts into one
second on one host read as "no group changes". Values are shown as the fleet repo writes
them (`2d`, `10%`), from the models' own JSON form, so a new field is compared without code
here knowing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from reconciler.durations import format_duration
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Stream
from reconciler.promotion.check import review_branch
from reconciler.review.model import (
    CommitRef,
    DefaultChange,
    FieldChange,
    PromotionChange,
    StreamChange,
    StreamChangeKind,
)

#: Fields of a stream that identify the document rather than say what it serves.
_STREAM_IDENTITY = ("apiVersion", "kind", "name", "promotion")
#: The settings of `fleet.yaml` that reach groups (its name and description reach none).
_FLEET_WIDE = ("defaults", "freezes", "revoked")


def stream_changes(proposed: Fleet, base: Fleet | None) -> tuple[StreamChange, ...]:
    """Streams added, removed, or whose commit, version, remote, ref, URL or description
    changes; a stream whose only change is its promotion is a :class:`PromotionChange`."""
    if base is None:
        return ()  # without a base every group is new; "every stream is new" adds nothing
    changes = []
    for name in sorted(set(proposed.streams) | set(base.streams)):
        old, new = base.streams.get(name), proposed.streams.get(name)
        fields = field_changes(_stream_fields(old), _stream_fields(new))
        if not fields:
            continue
        if old is None:
            kind = StreamChangeKind.ADDED
        elif new is None:
            kind = StreamChangeKind.REMOVED
        else:
            kind = StreamChangeKind.CHANGED
        followers = followers_of(base if new is None else proposed, name)
        changes.append(StreamChange(name, kind, fields, followers))
    return tuple(changes)


def promotion_changes(proposed: Fleet, base: Fleet | None) -> tuple[PromotionChange, ...]:
    """Streams whose promotion policy is added, removed or changed, field by field."""
    if base is None:
        return ()
    changes = []
    for name in sorted(set(proposed.streams) | set(base.streams)):
        old, new = base.streams.get(name), proposed.streams.get(name)
        fields = field_changes(_promotion_fields(old), _promotion_fields(new))
        if fields:
            followers = followers_of(base if new is None else proposed, name)
            changes.append(PromotionChange(name, fields, followers))
    return tuple(changes)


def default_changes(proposed: Fleet, base: Fleet | None) -> tuple[DefaultChange, ...]:
    """Settings of `fleet.yaml` that change, each with the groups of the proposed revision
    that take the new value because they do not set their own."""
    if base is None:
        return ()
    old = base.config.model_dump(mode="json", by_alias=True, include=set(_FLEET_WIDE))
    new = proposed.config.model_dump(mode="json", by_alias=True, include=set(_FLEET_WIDE))
    return tuple(
        DefaultChange(change, inheritors(proposed, change.field))
        for change in field_changes(old, new)
    )


def inheritors(fleet: Fleet, field: str) -> tuple[str, ...]:
    """The groups of ``fleet`` that take fleet-wide setting ``field`` (`defaults.rollout.
    soakTime`) as it is, because they do not write their own."""
    path = field.split(".")
    if path[:2] == ["defaults", "rollout"]:
        return tuple(
            name for name in sorted(fleet.groups) if not _sets(fleet.groups[name].rollout, path[2:])
        )
    if path[:2] == ["defaults", "maintenanceWindows"]:
        return tuple(
            name for name in sorted(fleet.groups) if fleet.groups[name].maintenance_windows is None
        )
    # `freezes` add to every group's own; a revocation is fleet-wide.
    return tuple(sorted(fleet.groups))


def followers_of(fleet: Fleet, stream: str) -> tuple[str, ...]:
    """The groups that follow ``stream``."""
    return tuple(name for name, group in sorted(fleet.groups.items()) if group.stream == stream)


def promotion_notes(proposed: Fleet, base: Fleet | None) -> list[str]:
    """Streams that follow a stream this change moves: the reconciler will promote the new
    commit to them by itself once it has proven itself, which a reviewer should know."""
    notes = []
    for name, stream in sorted(proposed.streams.items()):
        policy = stream.promotion
        if policy is None:
            continue
        source = proposed.streams[policy.from_stream]
        before = base.streams.get(source.name) if base else None
        if (before is not None and before.commit == source.commit) or (
            stream.commit == source.commit
        ):
            continue
        where = (
            f", as a commit on `{review_branch(policy.branch, source.commit)}` for review"
            if policy.branch
            else ""
        )
        notes.append(
            f"{name} follows {source.name}: the reconciler will promote "
            f"{CommitRef(source.commit, source.version).label} to {name} itself{where} once it "
            f"has run {format_duration(policy.soak_time)} on at least "
            f"{policy.min_healthy_hosts} healthy host(s) of {source.name} with no failure"
        )
    return notes


# -- comparing documents field by field --------------------------------------------------------


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The fields of two JSON-ready documents whose values differ, nested blocks field by
    field (`rebootBudget.maxUnavailable`), lists as a whole; in the documents' order."""
    before, after = _flattened(old), _flattened(new)
    fields = [*after, *(f for f in before if f not in after)]
    return tuple(
        FieldChange(field, _value_text(before.get(field)), _value_text(after.get(field)))
        for field in fields
        if before.get(field) != after.get(field)
    )


def _flattened(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _value_text(value: Any) -> str | None:
    """A value as the fleet repo writes it, on one line; None for an unset one."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(item) or "null" for item in value) + "]"
    if isinstance(value, Mapping):
        pairs = (f"{k}: {_value_text(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(pairs) + "}"
    return str(value)


def _stream_fields(stream: Stream | None) -> dict[str, Any]:
    if stream is None:
        return {}
    return stream.model_dump(mode="json", by_alias=True, exclude=set(_python_names(stream)))


def _python_names(stream: Stream) -> list[str]:
    """The Python names of the identity fields, which `exclude` takes."""
    return [
        name
        for name, info in type(stream).model_fields.items()
        if (info.alias or name) in _STREAM_IDENTITY
    ]


def _promotion_fields(stream: Stream | None) -> dict[str, Any]:
    if stream is None or stream.promotion is None:
        return {}
    fields = stream.promotion.model_dump(mode="json", by_alias=True)
    if not fields.get("healthChecks"):  # none declared: not a field anyone wrote
        fields.pop("healthChecks", None)
    return fields


def _sets(model: BaseModel, path: Sequence[str]) -> bool:
    """Whether ``model`` (a group's `rollout` block) writes the field at ``path`` (aliases)
    itself; a nested block written in part sets only the fields it names."""
    if not path:
        return True
    for name, info in type(model).model_fields.items():
        if (info.alias or name) == path[0]:
            if name not in model.model_fields_set:
                return False
            value = getattr(model, name)
            return _sets(value, path[1:]) if isinstance(value, BaseModel) and path[1:] else True
    return False
