"""`make demo` keeps working: it validates, rolls out, and catches the bad build."""

from __future__ import annotations

import pytest

from reconciler import demo


def test_demo_runs_and_catches_the_bad_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run() == 0
    out = capsys.readouterr().out
    assert "fleet repo at" in out
    assert "INVALID: 3 error(s)" in out
    assert "callservers-dub      rollout_completed" in out
    assert "lab-call-03  rolled_back  none" in out
    assert "staging-lab: halted" in out
