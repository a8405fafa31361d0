"""The Mermaid charts of `plan --predict` are charts Mermaid itself reads: the real `mermaid`
package from npm (tests/mermaid/, installed by .ci/run) parses each one, and every gantt task
has a start and an end it understands. A chart GitHub would refuse to render fails here.

Without Node.js or the installed package the test skips, except under CI, where it fails."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from datetime import timedelta
from typing import Any

from reconciler.review.timeline import predict_change, timeline_mermaid
from reconciler.rollout.prediction import Assumptions, Milestone, predict
from tests.conftest import ROOT
from tests.fleets import OLD, build_fleet
from tests.test_prediction import T0, one_group, staging_and_production
from tests.tools import missing_tool

CHECKER = ROOT / "tests" / "mermaid"


def mermaid_verdicts(charts: list[str]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (CHECKER / "node_modules" / "mermaid").is_dir():
        missing_tool(
            "Node.js or tests/mermaid/node_modules is missing (npm ci --prefix tests/mermaid)"
        )
    done = subprocess.run(
        [node, str(CHECKER / "check.mjs")],
        input="\0".join(charts),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    verdicts: list[dict[str, Any]] = json.loads(done.stdout)
    return verdicts


def chart(lines: list[str]) -> str:
    """The diagram inside the fenced block."""
    text = "\n".join(lines)
    return text.split("```mermaid\n", 1)[1].split("```", 1)[0]


def test_the_checker_refuses_what_github_would_not_render() -> None:
    bad = (
        "gantt\n    dateFormat YYYY-MM-DDTHH:mm\n    section a\n"
        "    wave: 1 :2026-11-30T12:00, 2026-11-30T12:20\n"
    )
    good = bad.replace("wave: 1", "wave 1")
    verdicts = mermaid_verdicts([good, bad, "gantt\n    nonsense line ((("])
    assert [v["ok"] for v in verdicts] == [True, False, False]


def test_prediction_charts_of_every_shape_are_read_by_mermaid() -> None:
    names = ["h1", "h2", "h3"]
    small = predict(one_group(), T0, dict.fromkeys(names, OLD))
    halted = predict(
        one_group(), T0, dict.fromkeys(names, OLD), Assumptions(failing=frozenset({"h1"}))
    )
    windows = [{"schedule": "30 3 * * *", "duration": "1h", "timeZone": "Europe/Berlin"}]
    chained_fleet = build_fleet(
        {
            "berlin": {"hosts": ["b1", "b2"], "maintenanceWindows": windows},
            "after": {"hosts": ["c1"], "dependsOn": ["berlin"]},
        },
        {"b1": {}, "b2": {}, "c1": {}},
    )
    chained = predict(
        chained_fleet, T0, {"b1": OLD, "b2": OLD, "c1": OLD}, Assumptions(horizon=timedelta(days=3))
    )
    groups = {f"g{i:03d}": {"hosts": [f"h{i:03d}"]} for i in range(200)}
    large = predict(
        build_fleet(groups, {f"h{i:03d}": {} for i in range(200)}),
        T0,
        {f"h{i:03d}": OLD for i in range(200)},
    )
    base, proposed = staging_and_production(gate=True)
    promoted = predict_change(proposed, base, None, T0, Assumptions())
    shapes = (small, halted, chained, large, promoted)
    charts = [chart(timeline_mermaid(p)) for p in shapes]
    verdicts = mermaid_verdicts(charts)
    assert all(v["ok"] for v in verdicts), verdicts
    assert [v["type"] for v in verdicts] == ["gantt"] * len(shapes)
    assert verdicts[0]["tasks"] == 3  # two waves and the soak between them
    # The promotion milestone; lab's wave; calls' wait for it, 2 waves and a soak.
    assert verdicts[4]["tasks"] == 1 + 1 + 4


def test_stream_names_and_versions_that_look_like_mermaid_stay_task_names() -> None:
    """A promotion milestone is named after the stream and the version, which the fleet repo
    allows to be `title`, `click`, `section`…, or to hold a newline or `%%`: each chart still
    parses, with every task in place (two waves, the soak and the milestone)."""
    base = predict(one_group(), T0, dict.fromkeys(["h1", "h2", "h3"], OLD))
    streams = ["click", "call", "section", "title", "excludes", "dateformat", "gantt", "topaxis"]
    versions = ["1.0\nsection evil", "9.2026 %% x", "1.0 :crit", "%%{init: {}}%%", "a;b#c"]
    milestones = [
        Milestone(T0 + timedelta(hours=1), f"{s} takes 1.0 from x", s, "x") for s in streams
    ]
    milestones += [
        Milestone(T0 + timedelta(hours=1), f"production takes {v} from staging", "production", "s")
        for v in versions
    ]
    charts = [
        chart(timeline_mermaid(dataclasses.replace(base, milestones=(m,)))) for m in milestones
    ]
    verdicts = mermaid_verdicts(charts)
    assert all(v["ok"] and v["tasks"] == 4 for v in verdicts), verdicts
