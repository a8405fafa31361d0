"""`make demo` keeps working: the real one (same code path) and the simulated fallback."""

from __future__ import annotations

import io
import re
import shutil
import socket
from pathlib import Path

import pytest
from rich.console import Console

from reconciler.demo import real as demo
from reconciler.demo import validation
from reconciler.demo.prometheus import METRIC, running_prometheus
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.serve.prometheus import PrometheusClient


@pytest.mark.needs_tool("ostree")
def test_real_demo_promotes_then_halts_on_the_host_that_falls_back() -> None:
    out = io.StringIO()
    assert demo.run(Console(file=out, width=120, force_terminal=False)) == 0
    text = out.getvalue()
    assert "refused (invalid)" in text
    assert "host_failed" in text
    assert "greenboot fell back" in text
    assert "rollout HALTED" in text
    # The prediction printed before the push, and the real rollout set against it.
    assert "+  15s  callservers halted" in text
    assert "the real rollout matched the prediction: same milestones, in the same order" in text
    assert "lab          host_succeeded   lab-01 runs 2.0" in text
    assert "callservers  host_succeeded   call-01 runs 2.0" in text
    # staging's build was promoted to production by the reconciler, with its reasons
    assert "Author: CallOS fleet reconciler <fleet-bot@example.net>" in text
    assert "production: promote 2.0 from staging" in text
    assert "Promoted-From: staging" in text
    # and an auditor sees under that commit what it did
    notes = text.split("git log --notes=rollouts", 1)[1]
    assert "callservers rollout 2 target" in notes
    # call-04 of the same wave may or may not have updated before call-02 failed
    assert re.search(r"rollout halted \([12] on the target, 1 failed\)", notes)
    # with Prometheus installed, wave 2 opened because the canary passed the health gate
    if shutil.which("prometheus"):
        assert "health gate: each wave of callservers after the first opens only" in text
        assert "health gate: callservers wave 2 opened because call-setup-success passed" in text
        flat_notes = " ".join(notes.split())  # the console wraps long lines
        assert re.search(
            r"wave 2 target \w+: wave opened: wave 2/3 opened: 3 of 4 hosts; "
            r"health checks passed: call-setup-success",
            flat_notes,
        )
    else:
        assert "health gate skipped" in text
        assert "apt-get install prometheus" in text


def test_the_gated_demo_fleet_loads_with_its_health_check(tmp_path: Path) -> None:
    demo.write_fleet(tmp_path, "http://127.0.0.1:1", "a" * 64, "1.0", gated=True)
    fleet = load_fleet_or_raise(DirectorySource(tmp_path))
    (check,) = fleet.health_checks(demo.GROUP)
    assert check.name == demo.GATE
    assert fleet.health_checks(demo.LAB) == ()


@pytest.mark.needs_tool("prometheus")
def test_demo_prometheus_keeps_each_hosts_instance_label_and_stops(tmp_path: Path) -> None:
    with running_prometheus(tmp_path, ["call-01", "call-02"], ratio=0.5) as connection:
        answer = PrometheusClient(connection).query(METRIC)
        assert answer.error is None
        assert sorted(s["instance"] for s in answer.series) == ["call-01", "call-02"]
        assert answer.values == (0.5, 0.5)
        port = int(connection.url.rsplit(":", 1)[1])
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass


def test_simulated_demo_runs_and_catches_the_bad_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert validation.run() == 0
    out = capsys.readouterr().out
    assert "INVALID: 3 error(s)" in out
    assert "callservers-dub      rollout_completed" in out
    assert "lab-call-03  rolled_back  none" in out
    assert "staging-lab: halted" in out
