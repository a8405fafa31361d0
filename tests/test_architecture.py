"""The layering contracts of docs/architecture.md hold, and they catch a forbidden import.

`make lint` runs `lint-imports` on the tree; these tests show the contracts have teeth: a copy
of the package with one forbidden import added fails the linter, naming the broken contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(package_parent: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real import linter with the project's contracts on the package under
    ``package_parent`` (put first on the path, so a modified copy shadows the real one)."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(ROOT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "added_import", "contract"),
    [
        # the planner reaching into durable state: a layer violation
        (
            "rollout/planner.py",
            "import reconciler.state.store",
            "Packages are layered",
        ),
        # the fleet-repo model reaching up to the CLI
        ("fleetrepo/models.py", "import reconciler.cli", "Packages are layered"),
        # the planner opening a database itself
        ("rollout/planner.py", "import sqlite3", "touch no database"),
        # the agent (baked into the OS image) borrowing from the reconciler
        ("agent/greenboot.py", "import reconciler.durations", "The host agent imports nothing"),
        ("agent/client.py", "import pydantic", "The host agent imports nothing"),
        # metrics depending on the service again: the cycle the view protocol broke
        (
            "serve/metrics.py",
            "import reconciler.serve.service",
            "No import cycle",
        ),
        # a new package nobody placed in the layers
        ("newthing/__init__.py", "import reconciler.clock", "Packages are layered"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, added_import: str, contract: str
) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "reconciler",
        copy / "reconciler",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    target = copy / "reconciler" / module
    target.parent.mkdir(exist_ok=True)
    source = target.read_text() if target.exists() else ""
    target.write_text(f"{added_import}  # noqa\n{source}")

    result = lint_imports(copy, tmp_path)

    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
