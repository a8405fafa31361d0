"""The committed JSON Schema and field reference are what the models generate, and agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reconciler.cli import main
from reconciler.fleetrepo.reference import SCHEMA_FILES, json_schema, render_reference_into
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.fleetrepo.yamldoc import parse_yaml
from tests.conftest import EXAMPLE_FLEET, ROOT

SCHEMA_DIR = ROOT / "fleet-repo-schema"


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schema_is_up_to_date(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text()
    assert committed == json_schema(SCHEMA_FILES[name]), "run `make schema` and commit"


def test_committed_reference_is_up_to_date() -> None:
    document = (ROOT / "docs" / "fleet-repo.md").read_text()
    assert document == render_reference_into(document), "run `make schema` and commit"


def _schema_for(path: str) -> dict[str, object]:
    name = {"fleet.yaml": "fleet", "streams": "stream", "groups": "group", "hosts": "hosts"}[
        path.split("/", maxsplit=1)[0]
    ]
    schema: dict[str, object] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return schema


def test_json_schema_accepts_every_example_file() -> None:
    for file in DirectorySource(EXAMPLE_FLEET).files():
        document, problems = parse_yaml(file.path, file.read())
        assert document is not None, problems
        jsonschema.Draft202012Validator(_schema_for(file.path)).validate(document.data)


@pytest.mark.parametrize(
    ("path", "patch"),
    [
        ("groups/staging-lab.yaml", {"rollout": {"maxUnavailible": 1}}),
        ("streams/staging.yaml", {"commit": "ABC"}),
        ("groups/staging-lab.yaml", {"rollout": {"waves": ["150%"]}}),
        ("groups/staging-lab.yaml", {"rollout": {"soakTime": "2 hours"}}),
    ],
)
def test_json_schema_rejects_what_the_models_reject(path: str, patch: dict[str, object]) -> None:
    document, _ = parse_yaml(path, (EXAMPLE_FLEET / path).read_bytes())
    assert document is not None
    data = {**document.data, **patch}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema_for(path)).validate(data)


def test_schema_check_command_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["schema", "--check"]) == 0


def test_schema_check_command_detects_stale_files(tmp_path: Path) -> None:
    reference = tmp_path / "ref.md"
    reference.write_text((ROOT / "docs" / "fleet-repo.md").read_text())
    (tmp_path / "schema").mkdir()
    args = ["schema", "--schema-dir", str(tmp_path / "schema"), "--reference", str(reference)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
