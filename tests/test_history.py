"""`reconciler history`: every decision traces to the fleet-repo commit, author and subject."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main
from tests.daemon_support import BackgroundDaemon
from tests.test_daemon import (
    NEW_PRODUCTION,
    OLD_PRODUCTION,
    agent_report,
    config,
    no_urls,
    wait_for,
)
from tests.test_gitsource import Remote, replace


def test_each_decision_names_the_commit_that_caused_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    with BackgroundDaemon(config(tmp_path, origin)) as running:
        pushed = origin.commit(
            "production: CallOS 9.20261125.0",
            replace("streams/production.yaml", OLD_PRODUCTION, NEW_PRODUCTION),
        )
        wait_for(lambda: httpx.get(running.url + "/readyz").json()["revision"] == pushed)
        httpx.post(
            running.url + "/v1/report",
            json=agent_report(OLD_PRODUCTION),
            headers={"Authorization": "Bearer demo-token-dub-call-01"},
        )

    state = tmp_path / "state"
    assert main(["history", "--state-dir", str(state), "--group", "callservers-dub", "--json"]) == 0
    trail = json.loads(capsys.readouterr().out)
    caused = [e for e in trail if e["revision"] == pushed]
    kinds = {e["event"] for e in caused}
    assert {"rollout_started", "wave_opened", "host_offered"} <= kinds
    assert all(e["subject"] == "production: CallOS 9.20261125.0" for e in caused)
    assert all(e["author"] == "Test Ops <ops@example.net>" for e in caused)
    assert all(e["revision"] for e in trail)  # every decision traces to a commit

    assert main(["history", "--state-dir", str(state), "--host", "dub-call-01"]) == 0
    text = capsys.readouterr().out
    assert f"{pushed[:12]}" in text
    assert "production: CallOS 9.20261125.0" in text
    assert "dub-call-01  host_offered" in text


def test_no_state_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--state-dir", str(tmp_path)]) == 2
    assert "no state database" in capsys.readouterr().err
