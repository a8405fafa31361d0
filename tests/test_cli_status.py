"""`reconciler status` against a real daemon: the revision in force, a refused push, failing
fetches, exit codes, and a layout that fits the terminal without cutting names."""

from __future__ import annotations

import io
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from reconciler.cli import main
from reconciler.cli.exits import ExitCode
from reconciler.cli.status_text import StatusView, render_status
from reconciler.serve.service import token_hash
from tests.api_support import OPERATOR_TOKEN
from tests.daemon_support import BackgroundDaemon
from tests.test_api import gated_api
from tests.test_daemon import config, no_urls, wait_for
from tests.test_gitsource import Remote, replace

OPS = {"Authorization": "Bearer ops"}
TYPO = replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")


def status(url: str, *extra: str) -> int:
    return main(["status", "--server", url, "--token", "ops", *extra])


def revision_view(url: str) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(url + "/v1/revision", headers=OPS).json()
    return answer


def test_status_after_a_refused_push_shows_both_revisions_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Remote(tmp_path)
    good = origin.commit("no example urls", no_urls)
    with BackgroundDaemon(config(tmp_path, origin, operator_token_sha256=token_hash("ops"))) as d:
        assert status(d.url, "--json") == ExitCode.OK
        before = json.loads(capsys.readouterr().out)["revision"]
        assert before["inForce"]["revision"] == good
        assert before["lastRefused"] is None
        assert before["fetch"]["consecutiveFailures"] == 0
        assert before["fetch"]["lastSuccessAt"] is not None

        bad = origin.commit("typo", TYPO)
        wait_for(lambda: (revision_view(d.url)["lastRefused"] or {}).get("revision") == bad)

        assert status(d.url, "--json") == ExitCode.ATTENTION
        after = json.loads(capsys.readouterr().out)["revision"]
        assert after["inForce"]["revision"] == good
        assert after["inForce"]["at"] == before["inForce"]["at"]  # still applied back then
        refused = after["lastRefused"]
        assert (refused["code"], refused["pending"]) == ("invalid", True)
        assert any("groups/callservers-nyc.yaml:9:1" in line for line in refused["errors"])

        assert status(d.url) == ExitCode.ATTENTION
        text = capsys.readouterr().out
        assert f"in force   {good[:12]}" in text
        assert f"REFUSED    {bad[:12]}" in text
        assert "still the branch's tip: what was merged is not in force" in text
        assert "groups/callservers-nyc.yaml:9:1" in text

        fixed = origin.commit(
            "fix the typo", replace("groups/callservers-nyc.yaml", "prodution", "production")
        )
        wait_for(lambda: (revision_view(d.url)["inForce"] or {}).get("revision") == fixed)
        assert status(d.url) == ExitCode.OK
        text = capsys.readouterr().out
        assert f"in force   {fixed[:12]}" in text
        assert f"refused    {bad[:12]}" in text
        assert "a later revision was applied" in text


def test_status_shows_failing_fetches_with_the_error_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    with BackgroundDaemon(config(tmp_path, origin, operator_token_sha256=token_hash("ops"))) as d:
        shutil.move(origin.bare, tmp_path / "moved.git")  # the remote is gone
        d.daemon.request_sync()
        wait_for(lambda: revision_view(d.url)["fetch"]["consecutiveFailures"] >= 1)  # type: ignore[index]
        assert status(d.url) == ExitCode.ATTENTION
        text = capsys.readouterr().out
        # The watch may see the move and look again: one failure or more.
        assert re.search(r"fetch      FAILING, \d+ in a row; last success", text), text
        assert "last error: cannot fetch" in text

        shutil.move(tmp_path / "moved.git", origin.bare)
        d.daemon.request_sync()
        wait_for(lambda: revision_view(d.url)["fetch"]["consecutiveFailures"] == 0)  # type: ignore[index]
        assert status(d.url) == ExitCode.OK
        assert "fetch      ok, last success" in capsys.readouterr().out


def test_an_unreachable_server_is_exit_2_like_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert status("http://127.0.0.1:9") == ExitCode.USAGE
    assert "reconciler status:" in capsys.readouterr().err


LONG_GROUP = "callservers-singapore-dsp-with-out-of-tree-drivers"


def a_view() -> StatusView:
    reason = (
        "wave 2 of 3: waiting for the maintenance window Asia/Singapore 01:00-05:00 "
        "to open before any host reboots"
    )
    group = {
        "name": LONG_GROUP,
        "target": {"commit": "4a" * 32, "remote": "callos", "ref": "r", "version": "9.20261117.0"},
        "phase": "waiting_window",
        "reason": {"code": "window_closed", "message": reason},
        "wave": 2,
        "wavesTotal": 3,
        "hostsByState": {"in_sync": 3, "staged": 2},
        "freeze": None,
    }
    hosts = [
        {
            "name": f"sin-call-{i:02d}.dc1.callos.example.net",
            "group": LONG_GROUP,
            "state": "staged",
            "action": "stage",
            "bootedCommit": "3f" * 32,
            "bootedVersion": "9.20261030.0",
            "stagedCommit": "4a" * 32,
            "lastReportAt": "2026-11-30T09:00:00+00:00",
            "reason": {"code": "window_closed", "message": reason},
            "lockGrantedAt": None,
        }
        for i in range(3)
    ]
    revision = {
        "inForce": {
            "revision": "a" * 40,
            "at": "2026-11-30T08:00:00+00:00",
            "code": "applied",
            "message": "",
        },
        "lastRefused": None,
        "fetch": {
            "lastAttemptAt": None,
            "lastSuccessAt": "2026-11-30T09:59:00+00:00",
            "consecutiveFailures": 0,
            "lastError": None,
        },
    }
    return StatusView(revision=revision, groups=[group], hosts=hosts, promotions=[])


def rendered(width: int, wide: bool) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, soft_wrap=wide, color_system=None)
    render_status(a_view(), console, wide=wide, now=datetime(2026, 11, 30, 10, tzinfo=UTC))
    return out.getvalue().splitlines()


def test_at_80_columns_no_name_is_cut_and_no_line_is_longer() -> None:
    lines = rendered(80, wide=False)
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    text = "\n".join(lines)
    assert "…" not in text
    assert LONG_GROUP in text
    assert all(f"sin-call-{i:02d}.dc1.callos.example.net" in text for i in range(3))
    assert "booted 9.20261030.0" in text
    assert "applied 2026-11-30 08:00:00 UTC (2h ago)" in text


def test_wide_puts_each_host_on_one_line_with_full_commits() -> None:
    lines = rendered(80, wide=True)
    [host_line] = [line for line in lines if "sin-call-01" in line]
    assert "3f" * 32 in host_line
    assert "waiting for the maintenance window" in host_line


def test_each_health_gate_has_a_line_under_its_group_and_promotion(tmp_path: Path) -> None:
    with gated_api(tmp_path) as api:
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        groups = httpx.get(f"{api.url}/v1/groups", headers=headers).json()
        promotions = httpx.get(f"{api.url}/v1/promotions", headers=headers).json()
    view = StatusView(a_view().revision, groups, [], promotions)
    out = io.StringIO()
    render_status(view, Console(file=out, width=120, color_system=None))
    gates = [
        line.strip() for line in out.getvalue().splitlines() if line.strip().startswith("gate ")
    ]
    at = groups[0]["healthChecks"][0]["lastAt"]
    assert gates == [
        f"gate call-failures  pending           1/3 successes, last 0.001 at {at}",
        f"gate rtp-loss       stalled           0/1 successes, last inconclusive at {at}",
        f"gate registrations  failed (dry run)  0/1 successes, 1 failed, last 4 at {at}",
        f"gate call-failures  failed  0/3 successes, 1 failed, last 0.2 at {at}",
    ]
