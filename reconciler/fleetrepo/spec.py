"""The base of every fleet-repo model, and errors located at one of its sub-fields."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

#: The error types pydantic-core knows by name; any other type is a custom one.
_BUILT_IN_ERROR_TYPES = frozenset(typing.get_args(core_schema.ErrorType))


class Spec(BaseModel):
    """Base of every model: camelCase in YAML, unknown fields are errors, values immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
    )


def located(path: tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error about a sub-field of the model being validated.

    Pydantic places a model validator's error on the model itself; the loader reads
    ``ctx["at"]`` to point the operator at the exact field instead.
    """
    return PydanticCustomError("value_error_at", message, {"at": path})


def with_model_error(
    title: str, errors: ValidationError, own: PydanticCustomError, data: Any
) -> ValidationError:
    """``errors`` with the model's own error ``own`` first, so a rule about the whole model
    (checked before its fields) is reported together with the field errors, not instead."""
    details: list[InitErrorDetails] = [{"type": own, "loc": (), "input": data}]
    for error in errors.errors():
        kind = error["type"]
        detail: InitErrorDetails = {
            "type": kind
            if kind in _BUILT_IN_ERROR_TYPES
            else PydanticCustomError(kind, error["msg"], error.get("ctx")),
            "loc": error["loc"],
            "input": error["input"],
        }
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(title, details)
