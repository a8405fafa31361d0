"""`make demo` keeps working: the real one (same code path) and the simulated fallback."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from reconciler.demo import real as demo
from reconciler.demo import validation


@pytest.mark.needs_tool("ostree")
def test_real_demo_promotes_then_halts_on_the_host_that_falls_back() -> None:
    out = io.StringIO()
    assert demo.run(Console(file=out, width=120, force_terminal=False)) == 0
    text = out.getvalue()
    assert "refused (invalid)" in text
    assert "host_failed" in text
    assert "greenboot fell back" in text
    assert "rollout HALTED" in text
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


def test_simulated_demo_runs_and_catches_the_bad_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert validation.run() == 0
    out = capsys.readouterr().out
    assert "INVALID: 3 error(s)" in out
    assert "callservers-dub      rollout_completed" in out
    assert "lab-call-03  rolled_back  none" in out
    assert "staging-lab: halted" in out
