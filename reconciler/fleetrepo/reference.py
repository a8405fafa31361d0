"""Generate the JSON Schema files and the field reference of docs/fleet-repo.md from the models.

Generated artefacts are committed so editors and readers need no tool; a test regenerates
them and fails when the committed copies differ (run ``make schema`` to refresh them).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from reconciler.durations import DURATION_PATTERN, format_duration
from reconciler.fleetrepo.models import ALL_MODELS, DOCUMENT_KINDS, Document
from reconciler.fleetrepo.quantities import CountOrPercent

SCHEMA_FILES: dict[str, type[Document]] = {
    "fleet.schema.json": DOCUMENT_KINDS["Fleet"],
    "stream.schema.json": DOCUMENT_KINDS["Stream"],
    "group.schema.json": DOCUMENT_KINDS["Group"],
    "hosts.schema.json": DOCUMENT_KINDS["HostInventory"],
}
BEGIN_MARKER = "<!-- BEGIN GENERATED FIELD REFERENCE (make schema) -->"
END_MARKER = "<!-- END GENERATED FIELD REFERENCE -->"


def _drop_titles(node: Any) -> Any:
    """Pydantic titles ("Maxunavailable") add noise to editor tooltips; keep descriptions."""
    if isinstance(node, dict):
        return {
            key: _drop_titles(value)
            for key, value in node.items()
            if not (key == "title" and isinstance(value, str) and "properties" not in node)
        }
    if isinstance(node, list):
        return [_drop_titles(item) for item in node]
    return node


class _FleetJsonSchema(GenerateJsonSchema):
    """Writes defaults the way ops write values (``1h``, ``25%``), not as Python objects."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, CountOrPercent):
            return str(dft) if dft.is_percent else dft.value
        if isinstance(dft, list):
            return [self.encode_default(item) for item in dft]
        return super().encode_default(dft)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``model`` with fleet-repo aliases and defaults."""
    return model.model_json_schema(by_alias=True, schema_generator=_FleetJsonSchema)


def json_schema(model: type[BaseModel]) -> str:
    """The JSON Schema (draft 2020-12) of one fleet-repo file kind, as committed."""
    schema = _drop_titles(model_schema(model))
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _type_name(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "anyOf" in prop:
        kinds = [_type_name(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(kinds)
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_name(prop.get('items', {}))}"
    if kind == "object":
        return "map of string to string"
    if kind == "string" and prop.get("pattern") == DURATION_PATTERN:
        return "duration"
    if kind == "string" and "pattern" in prop:
        return "percent" if prop["pattern"].endswith("%$") else "string"
    return str(kind)


def _default(model: type[BaseModel], alias: str) -> str:
    field = next(f for n, f in model.model_fields.items() if (f.alias or n) == alias)
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see its fields"
    encoded = _FleetJsonSchema().encode_default(value)
    return f"`{encoded if isinstance(encoded, str) else json.dumps(encoded)}`"


def _description(prop: dict[str, Any], schema: dict[str, Any]) -> str:
    text = prop.get("description")
    ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("anyOf", []) if "$ref" in p), None)
    if not text and ref:  # a nested model: its docstring describes the field well enough
        text = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}).get("description", "")
    return " ".join((text or "").split()).replace("|", "\\|")


def field_reference() -> str:
    """Markdown tables, one per model, listing each field with type, default and meaning."""
    sections = []
    for model in ALL_MODELS:
        schema = model_schema(model)
        rows = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for alias, prop in schema["properties"].items():
            rows.append(
                f"| `{alias}` | {_type_name(prop)} | {_default(model, alias)} | "
                f"{_description(prop, schema)} |"
            )
        doc = " ".join((model.__doc__ or "").split())
        sections.append(f"### {model.__name__}\n\n{doc}\n\n" + "\n".join(rows) + "\n")
    return "\n".join(sections)


def render_reference_into(document: str) -> str:
    """``document`` with the text between the generated-reference markers replaced."""
    start, end = document.index(BEGIN_MARKER), document.index(END_MARKER)
    return (
        document[: start + len(BEGIN_MARKER)] + "\n\n" + field_reference() + "\n" + document[end:]
    )
