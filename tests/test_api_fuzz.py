"""schemathesis over the served OpenAPI document of a real server: no input gives a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from reconciler.clock import ManualClock
from tests.api_support import OPERATOR_TOKEN, running_api
from tests.engine_harness import START
from tests.fleets import build_fleet
from tests.test_api import GROUPS, HOSTS

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def _run(url: str, token: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "20261125",
            "--request-timeout",
            "10",
            "-H",
            f"Authorization: Bearer {token}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )


def test_no_server_error_for_agents_or_operators(tmp_path: Path) -> None:
    with running_api(build_fleet(GROUPS, HOSTS), tmp_path / "s.sqlite", ManualClock(START)) as api:
        for token in ("c1", OPERATOR_TOKEN):  # reaches past authentication for each role
            result = _run(api.url, token, tmp_path)
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
            counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
            assert counts is not None, result.stdout[-2000:]
            assert counts.group(1) == counts.group(2)
            assert int(counts.group(1)) > 100
