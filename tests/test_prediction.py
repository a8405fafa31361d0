"""`plan --predict`: the real planner in virtual time (reconciler/rollout/prediction.py), and
the timeline it prints (reconciler/review/timeline.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reconciler.cli import main
from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.models import Promotion
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.review.live import LiveGroup, LiveHost, LiveState
from reconciler.review.markdown import prediction_markdown
from reconciler.review.timeline import (
    MERMAID_BUDGET,
    predict_change,
    timeline_json,
    timeline_mermaid,
    timeline_text,
)
from reconciler.rollout.prediction import Assumptions, Prediction, predict
from tests.conftest import EXAMPLE_FLEET
from tests.fleets import NEW, OLD, build_fleet

MIN = timedelta(minutes=1)
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def one_group(hosts: int = 3, **rollout: Any) -> Any:
    policy = {"waves": [1, "100%"], "soakTime": "30m", "rebootBudget": {"maxUnavailable": 1}}
    names = [f"h{i}" for i in range(1, hosts + 1)]
    group = {"hosts": names, "canaries": ["h1"], "rollout": {**policy, **rollout}}
    return build_fleet({"g": group}, {n: {"site": "a"} for n in names})


def test_the_timeline_of_a_simple_rollout_is_its_arithmetic() -> None:
    """Three hosts, waves [1, 100%], soak 30 min, one reboot at a time, no windows; staging
    and a reboot take 10 min each. h1 is offered at once and staged at +10, reboots, is
    back at +20: wave 1 done. Soak to +50: wave 2 opens; h2 and h3 stage until +60, then
    reboot one at a time: +70 and +80."""
    prediction = predict(one_group(), T0, dict.fromkeys(["h1", "h2", "h3"], OLD))
    [group] = prediction.groups
    assert [(w.opened, w.done) for w in group.waves] == [
        (T0, T0 + 20 * MIN),
        (T0 + 50 * MIN, T0 + 80 * MIN),
    ]
    assert (group.started, group.finished) == (T0, T0 + 80 * MIN)
    assert prediction.end == T0 + 80 * MIN
    assert group.longest_wait() == (30 * MIN, "soaking: wave 1/2 soaking until 2026-11-30 12:50Z")


def test_longer_steps_and_a_wider_budget_change_the_timeline() -> None:
    slow = Assumptions(stage=30 * MIN, reboot=15 * MIN)
    prediction = predict(
        one_group(rebootBudget={"maxUnavailable": 2}),
        T0,
        dict.fromkeys(["h1", "h2", "h3"], OLD),
        slow,
    )
    [group] = prediction.groups
    # h1: staged +30, back +45; soak to +75; h2, h3 staged +105, back together at +120.
    assert [(w.opened, w.done) for w in group.waves] == [
        (T0, T0 + 45 * MIN),
        (T0 + 75 * MIN, T0 + 120 * MIN),
    ]


def test_hosts_already_on_the_target_make_nothing_to_roll_out() -> None:
    prediction = predict(one_group(), T0, dict.fromkeys(["h1", "h2", "h3"], NEW))
    assert prediction.groups[0].started is None
    assert timeline_text(prediction)[-1] == "  nothing to roll out"


def test_reboots_wait_for_each_sites_night_even_across_a_dst_change() -> None:
    """Berlin moves to summer time at 02:00 on 2027-03-28. The window opens at 03:30 local
    every night: 02:30 UTC before the change, 01:30 UTC after. Each wave's reboots land in
    its night's window, in local time."""
    windows = [{"schedule": "30 3 * * *", "duration": "1h", "timeZone": "Europe/Berlin"}]
    fleet = build_fleet(
        {
            "g": {
                "hosts": ["h1", "h2"],
                "canaries": ["h1"],
                "maintenanceWindows": windows,
                "rollout": {"waves": [1, "100%"], "soakTime": "20h", "rebootMargin": "10m"},
            }
        },
        {"h1": {}, "h2": {}},
    )
    start = datetime(2027, 3, 27, 1, 0, tzinfo=UTC)  # 02:00 CET: tonight's window is ahead
    prediction = predict(fleet, start, {"h1": OLD, "h2": OLD})
    berlin = ZoneInfo("Europe/Berlin")
    done = [w.done.astimezone(berlin) for w in prediction.groups[0].waves if w.done]
    assert [(d.date().isoformat(), d.hour, d.utcoffset()) for d in done] == [
        ("2027-03-27", 3, timedelta(hours=1)),  # 03:30 CET + 10 min reboot = 02:40 UTC
        ("2027-03-28", 3, timedelta(hours=2)),  # 03:30 CEST = 01:30 UTC
    ]
    # Where the time went, in the planner's words: h1 staged by 01:10 UTC and waited for
    # the 02:30 UTC window; wave 1 soaked 20 h; wave 2 opened at 22:40, its host staged by
    # 22:50 and waited for the window, now at 01:30 UTC (after the change).
    assert [(s.start, s.length, s.phase, s.why) for s in prediction.groups[0].stretches] == [
        (
            start + timedelta(minutes=10),
            timedelta(hours=1, minutes=20),
            "waiting_window",
            "waiting for maintenance window 03:30–04:30 Europe/Berlin, opens in 1h20m",
        ),
        (
            datetime(2027, 3, 27, 2, 40, tzinfo=UTC),
            timedelta(hours=20),
            "soaking",
            "wave 1/2 soaking until 2027-03-27 22:40Z",
        ),
        (
            datetime(2027, 3, 27, 22, 50, tzinfo=UTC),
            timedelta(hours=2, minutes=40),
            "waiting_window",
            "waiting for maintenance window 03:30–04:30 Europe/Berlin, opens in 2h40m",
        ),
    ]


def test_a_dependency_chain_and_a_paused_group_say_why_they_do_not_finish() -> None:
    fleet = build_fleet(
        {
            "first": {"hosts": ["a1"], "paused": True},
            "second": {"hosts": ["b1"], "dependsOn": ["first"]},
            "free": {"hosts": ["c1"]},
        },
        {"a1": {}, "b1": {}, "c1": {}},
    )
    prediction = predict(
        fleet, T0, {"a1": OLD, "b1": OLD, "c1": OLD}, Assumptions(horizon=timedelta(days=2))
    )
    by_name = {g.group: g for g in prediction.groups}
    assert by_name["free"].finished is not None
    assert by_name["first"].finished is None
    assert "paused" in (by_name["first"].unfinished or "")
    assert prediction.end is None
    assert "not every group finishes" in timeline_text(prediction)[-1]


def test_what_if_the_canary_fails_the_rollout_halts_there() -> None:
    prediction = predict(
        one_group(),
        T0,
        dict.fromkeys(["h1", "h2", "h3"], OLD),
        Assumptions(failing=frozenset({"h1"})),
    )
    [group] = prediction.groups
    assert group.finished is None
    assert (group.unfinished or "").startswith("halted")
    assert group.waves[1].opened is None  # wave 2 never opened


def example_promotion(tmp_path: Path) -> Path:
    """The example fleet's pull request: production takes the staging build."""
    root = tmp_path / "fleet"
    shutil.copytree(EXAMPLE_FLEET, root)
    staging = re.search(r"commit: (\w+)", (root / "streams/staging.yaml").read_text())
    production = root / "streams/production.yaml"
    current = re.search(r"commit: (\w+)", production.read_text())
    assert staging
    assert current
    production.write_text(production.read_text().replace(current.group(1), staging.group(1)))
    return root


def run_plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["plan", *args])
    return code, capsys.readouterr().out


def test_plan_predict_on_the_example_fleet_in_every_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_promotion(tmp_path)
    common = [str(root), "--predict", "--no-commit-check", "--at", "2026-11-30T12:00+00:00"]
    code, text = run_plan(capsys, *common)
    assert code in (0, 3), text
    assert "Predicted rollout" in text
    code, markdown = run_plan(capsys, *common, "--format", "markdown")
    assert "```mermaid\ngantt" in markdown
    chart = markdown.split("```mermaid\n", 1)[1].split("```", 1)[0]
    sections = re.findall(r"^    section (.+)$", chart, flags=re.MULTILINE)
    assert "callservers-dub" in sections
    tasks = [line for line in chart.splitlines()[5:] if not line.strip().startswith("section")]
    assert tasks
    for line in tasks:  # `name :[crit, ]start, end`: a colon in the name would end it early
        name, separator, spec = line.partition(" :")
        assert separator, line
        assert ":" not in name, line
        assert re.fullmatch(
            r"((crit|active), )?\d{4}-\d\d-\d\dT\d\d:\d\d, \d{4}-\d\d-\d\dT\d\d:\d\d", spec
        ), line
    code, out = run_plan(capsys, *common, "--format", "json")
    data = json.loads(out)["prediction"]
    assert data["groups"]
    assert data["criticalGroup"] in {g["name"] for g in data["groups"]}


def test_the_chart_summarises_large_fleets_to_fit_a_comment() -> None:
    groups = {f"g{i:03d}": {"hosts": [f"h{i:03d}"]} for i in range(200)}
    fleet = build_fleet(groups, {f"h{i:03d}": {} for i in range(200)})
    prediction = predict(fleet, T0, {f"h{i:03d}": OLD for i in range(200)})
    chart = "\n".join(timeline_mermaid(prediction))
    assert len(chart) < 60_000
    assert chart.count("    section ") == 120
    assert "80 more group(s) finish earlier" in chart
    assert "wave 1" not in chart  # one bar per group at this size
    assert len(timeline_json(prediction)["groups"]) == 200


def test_the_prediction_is_a_pure_function_of_its_inputs() -> None:
    booted = dict.fromkeys(["h1", "h2", "h3"], OLD)
    first: Prediction = predict(one_group(), T0, booted)
    assert predict(one_group(), T0, booted) == first


GOLDEN = Path(__file__).parent / "golden"


def five_sites_moved(tmp_path: Path) -> Path:
    """The five-site fleet of docs/reboots.md with production on a new build."""
    root = tmp_path / "five-sites"
    shutil.copytree(EXAMPLE_FLEET.parent / "five-sites", root)
    stream = root / "streams" / "production.yaml"
    text = stream.read_text()
    current = re.search(r"commit: (\w+)", text)
    assert current
    stream.write_text(text.replace(current.group(1), "9" + current.group(1)[1:]))
    return root


def example_staging(tmp_path: Path) -> Path:
    """The example fleet's pull request that moves staging: production follows by promotion."""
    root = tmp_path / "staging"
    shutil.copytree(EXAMPLE_FLEET, root)
    stream = root / "streams" / "staging.yaml"
    text = stream.read_text()
    current = re.search(r"commit: (\w+)", text)
    assert current
    stream.write_text(text.replace(current.group(1), "c" * 64))
    return root


@pytest.mark.parametrize(
    ("name", "fleet", "base", "at"),
    [
        # The example fleet's promotion: production groups chained behind Dublin's canary.
        ("predict-callos", example_promotion, EXAMPLE_FLEET, "2026-11-30T12:00+00:00"),
        # A new staging build: the lab takes it, then production by the reconciler's own
        # promotion 48 h after the third lab host, then the same chain.
        ("predict-callos-staging", example_staging, EXAMPLE_FLEET, "2026-11-30T12:00+00:00"),
        # Five sites, each rebooting in its own night, merged the day before the year-end
        # freeze: the sites whose nights fall inside it wait until it ends.
        (
            "predict-five-sites",
            five_sites_moved,
            EXAMPLE_FLEET.parent / "five-sites",
            "2026-12-22T12:00+00:00",
        ),
    ],
    ids=["callos", "callos-staging", "five-sites"],
)
def test_predictions_match_the_golden_files(
    tmp_path: Path, name: str, fleet: Any, base: Path, at: str
) -> None:
    """Regenerate with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_prediction.py` and read
    the diff: each line is a claim about when a wave finishes."""
    proposed = load_fleet_or_raise(DirectorySource(fleet(tmp_path)))
    before = load_fleet_or_raise(DirectorySource(base))
    prediction = predict_change(proposed, before, None, datetime.fromisoformat(at), Assumptions())
    outputs = {
        "txt": "\n".join(timeline_text(prediction)) + "\n",
        "md": "\n".join(prediction_markdown(prediction)) + "\n",
        "json": json.dumps(timeline_json(prediction), indent=2) + "\n",
    }
    for suffix, text in outputs.items():
        golden = GOLDEN / f"{name}.{suffix}"
        if os.environ.get("UPDATE_GOLDEN"):
            golden.write_text(text)
        assert text == golden.read_text(), f"{golden} differs"


def gated_group(interval: str, successes: int) -> Any:
    check = {
        "name": "calls",
        "query": "min(call_setup_ratio)",
        "successCondition": ">= 0.99",
        "failureCondition": "< 0.95",
        "interval": interval,
        "consecutiveSuccesses": successes,
    }
    fleet = one_group()
    group = fleet.groups["g"].model_copy(
        update={"health_checks": (HealthCheck.model_validate(check),)}
    )
    return dataclasses.replace(fleet, groups={"g": group})


@pytest.mark.parametrize(
    ("interval", "successes", "wave_2_opens"),
    [
        ("1m", 3, 50),  # 3 passes by +22 min, before the soak ends at +50
        ("20m", 3, 60),  # evaluated at +20, +40, +60: the third pass opens wave 2
        ("30m", 1, 50),  # the first evaluation, as the soak begins, is enough
        ("1m", 240, 259),  # four hours of evaluations: the last at +20 + 239
    ],
)
def test_health_checks_pass_at_each_evaluation_and_the_next_wave_waits_for_them(
    interval: str, successes: int, wave_2_opens: int
) -> None:
    """A gated wave opens once its soak is over and the check has passed `consecutiveSuccesses`
    evaluations in a row, the first as the soak begins (+20) and then every `interval`."""
    prediction = predict(
        gated_group(interval, successes), T0, dict.fromkeys(["h1", "h2", "h3"], OLD)
    )
    [group] = prediction.groups
    assert group.waves[1].opened == T0 + wave_2_opens * MIN
    assert group.finished == T0 + (wave_2_opens + 30) * MIN
    # The evaluations before the last needed one change nothing: the prediction steps over
    # them, so a gate of 240 costs no more planning passes than one of 3.
    assert prediction.passes <= 10


def staging_and_production(soak: str = "2h", gate: bool = False) -> tuple[Any, Any]:
    """A lab group on staging and a call-server group on production, which is promoted from
    staging by the reconciler; the pull request moves staging to NEW."""
    policy = {"from": "staging", "soakTime": soak, "minHealthyHosts": 1}
    if gate:
        policy["healthChecks"] = [
            {
                "name": "calls",
                "query": "up",
                "successCondition": ">= 1",
                "interval": "1h",
                "consecutiveSuccesses": 4,
            }
        ]
    groups = {
        "lab": {"stream": "staging", "hosts": ["lab1"]},
        "calls": {
            "stream": "production",
            "hosts": ["c1", "c2", "c3"],
            "canaries": ["c1"],
            "rollout": {"waves": [1, "100%"], "soakTime": "30m"},
        },
    }
    hosts = {n: {} for n in ("lab1", "c1", "c2", "c3")}
    base = build_fleet(groups, hosts, streams={"staging": OLD, "production": OLD})
    proposed = build_fleet(groups, hosts, streams={"staging": NEW, "production": OLD})
    production = proposed.streams["production"].model_copy(
        update={"promotion": Promotion.model_validate(policy)}
    )
    proposed = dataclasses.replace(proposed, streams={**proposed.streams, "production": production})
    return base, proposed


@pytest.mark.parametrize(("gate", "promoted_at"), [(False, 140), (True, 200)])
def test_a_staging_change_predicts_the_promotion_and_productions_rollout(
    gate: bool, promoted_at: int
) -> None:
    """lab1 takes NEW by +20; soaked 2 h on one healthy host, production is due at +140.
    With a promotion gate of 4 hourly passes in a row, evaluated from +20 (when the build
    has its healthy host): +20, +80, +140, +200, so it is due at +200. Production's
    rollout then runs as any: canary 20 min, soak 30, two hosts one at a time."""
    base, proposed = staging_and_production(gate=gate)
    prediction = predict_change(proposed, base, None, T0, Assumptions())
    [milestone] = prediction.milestones
    assert milestone.what == "production takes NEW from staging".replace("NEW", NEW[:12])
    assert milestone.at == T0 + promoted_at * MIN
    calls = next(g for g in prediction.groups if g.group == "calls")
    assert calls.promoted == milestone.at
    assert calls.started == milestone.at  # its canary is offered at once
    assert calls.finished == milestone.at + (20 + 30 + 30) * MIN
    assert [g.group for g in prediction.critical_path()] == ["lab", "calls"]
    text = "\n".join(timeline_text(prediction))
    assert f"promotion {milestone.at:%Y-%m-%d %H:%M} UTC: production takes" in text
    assert "critical path: lab -> calls" in text
    assert "waiting for its stream's promotion" in text
    data = timeline_json(prediction)
    assert data["criticalPath"] == ["lab", "calls"]
    assert data["promotions"][0]["stream"] == "production"
    assert "milestone" in "\n".join(timeline_mermaid(prediction))


def test_markdown_carries_the_prediction_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_promotion(tmp_path)
    common = [str(root), "--no-commit-check", "--at", "2026-11-30T12:00+00:00"]
    _, markdown = run_plan(capsys, *common, "--format", "markdown")
    assert "```mermaid\ngantt" in markdown
    _, markdown = run_plan(capsys, *common, "--format", "markdown", "--no-predict")
    assert "mermaid" not in markdown
    _, text = run_plan(capsys, *common)
    assert "Predicted rollout" not in text


def test_what_if_names_a_host_of_the_revision_and_shows_where_the_rollout_halts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_promotion(tmp_path)
    common = [str(root), "--no-commit-check", "--at", "2026-11-30T12:00+00:00"]
    code = main(["plan", *common, "--what-if-fail", "no-such-host"])
    captured = capsys.readouterr()
    assert code == 2
    assert "--what-if-fail: no host no-such-host in the proposed revision" in captured.err
    code, text = run_plan(capsys, *common, "--what-if-fail", "dub-call-01")
    assert "what if dub-call-01 fail" in text
    assert "callservers-dub" in text
    assert "does not finish: halted" in text
    assert "not every group finishes within the horizon" in text


def test_a_prediction_that_fails_leaves_the_markdown_review_whole_and_fails_when_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comment's prediction is a default: a bug in it must not stop the review a pull
    request's gate needs. Asked for with --predict, the same bug fails the command (exit 4)."""

    def broken(*args: object) -> Prediction:
        raise RuntimeError("a bug in the prediction")

    monkeypatch.setattr("reconciler.cli.plan.predict_change", broken)
    root = example_promotion(tmp_path)
    common = [str(root), "--no-commit-check", "--at", "2026-11-30T12:00+00:00"]
    code = main(["plan", *common, "--format", "markdown"])
    captured = capsys.readouterr()
    assert code in (0, 3)
    assert "the rollout could not be predicted" in captured.out
    assert "callservers-dub" in captured.out  # the review itself
    assert "RuntimeError: a bug in the prediction" in captured.err
    assert main(["plan", *common, "--predict"]) == 4


def many_groups(groups: int, waves: int) -> Any:
    """``groups`` groups of ``waves`` hosts, one wave per host, all chained one after the
    other: a long chart and a long list of waves."""
    names = {f"group-{g:03d}": [f"g{g:03d}-h{i:02d}" for i in range(waves)] for g in range(groups)}
    specs = {}
    for g, (group, hosts) in enumerate(names.items()):
        specs[group] = {
            "hosts": hosts,
            "rollout": {"waves": list(range(1, waves)), "soakTime": "10m"},
            **({"dependsOn": [f"group-{g - 1:03d}"]} if g else {}),
        }
    every = [host for hosts in names.values() for host in hosts]
    return build_fleet(specs, {h: {} for h in every}), every


def test_the_comment_keeps_the_summary_first_however_many_groups_roll_out() -> None:
    """The per-group list is cut after 100 lines; the summary comes before it, and before the
    chart, so the end and the critical path are always in the comment."""
    fleet, hosts = many_groups(25, 4)
    prediction = predict(fleet, T0, dict.fromkeys(hosts, OLD))
    section = "\n".join(prediction_markdown(prediction))
    assert prediction.end is not None
    summary = section.index(f"- all done {prediction.end:%Y-%m-%d %H:%M} UTC")
    assert summary < section.index("```mermaid") < section.index("Each group's waves")
    assert "- critical path: group-000 -&gt; group-001" in section
    assert "… and" in section  # the list of waves was cut, not the summary


def test_the_chart_stays_within_its_budget_with_many_waves() -> None:
    """30 groups of 60 waves: one bar per wave would be over 100,000 characters, beyond what
    Mermaid renders (50,000); the chart falls back to a bar per group."""
    fleet, hosts = many_groups(30, 60)
    prediction = predict(
        fleet, T0, dict.fromkeys(hosts, OLD), Assumptions(horizon=timedelta(days=90))
    )
    chart = timeline_mermaid(prediction)
    assert sum(len(line) + 1 for line in chart) <= MERMAID_BUDGET
    assert "    rollout :" in "\n".join(chart)  # one bar per group
    assert len([line for line in chart if line.startswith("    section ")]) == 30
    tiny = timeline_mermaid(prediction, budget=2_000)
    assert sum(len(line) + 1 for line in tiny) <= 2_000
    assert tiny[-1].endswith("more group(s) finish earlier; see the text.")


def a_then_b(extra_hosts: bool) -> Any:
    """Groups a and b on NEW, b after a; a reboots only in a night window, b at any time."""
    night = [{"schedule": "0 2 * * *", "duration": "3h", "timeZone": "UTC"}]
    policy = {"waves": ["100%"], "soakTime": "0s"}
    groups = {
        "a": {"hosts": ["a1", "a2", *(["a3"] if extra_hosts else [])], "rollout": policy},
        "b": {"hosts": ["b1", "b2", *(["b3"] if extra_hosts else [])], "rollout": policy},
    }
    groups["a"]["maintenanceWindows"] = night
    groups["b"]["dependsOn"] = ["a"]
    hosts = {h: {} for group in groups.values() for h in group["hosts"]}
    return build_fleet(groups, hosts)


def test_a_dependency_done_before_the_change_does_not_hold_its_dependents_again() -> None:
    """A host joins each group: a's new host waits for the night, but a completed NEW long
    ago (its commit did not change), so b's new host goes at once, as the daemon's store
    would have it and as the review assumes."""
    base, proposed = a_then_b(False), a_then_b(True)
    prediction = predict_change(proposed, base, None, T0, Assumptions())
    by_name = {g.group: g for g in prediction.groups}
    assert by_name["b"].finished == T0 + 20 * MIN
    assert by_name["a"].finished == datetime(2026, 12, 1, 2, 10, tzinfo=UTC)


def live_state(phase: str, completed: frozenset[str], resume: str | None = None) -> LiveState:
    hosts = {h: LiveHost(h, "g", OLD, None) for h in ("h1", "h2", "h3")}
    reason = "halted after 1 failure(s): h1 fell back"
    group = LiveGroup("g", NEW, None, phase, phase, reason, 1, completed, resume)
    return LiveState("http://127.0.0.1:1", {"g": group}, hosts)


def test_a_group_halted_on_the_live_server_stays_halted_until_resumed() -> None:
    fleet = one_group()
    halted = live_state("halted", frozenset(), resume="r1")
    prediction = predict_change(fleet, fleet, halted, T0, Assumptions())
    [group] = prediction.groups
    assert group.started is None
    assert group.unfinished == (
        "halted on the running reconciler: halted after 1 failure(s): h1 fell back"
    )
    assert prediction.end is None
    resumed = dataclasses.replace(
        fleet, groups={"g": fleet.groups["g"].model_copy(update={"resume": "r2"})}
    )
    prediction = predict_change(resumed, fleet, halted, T0, Assumptions())
    assert prediction.groups[0].finished is not None


def test_predicting_from_the_end_of_the_calendar_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = example_promotion(tmp_path)
    code = main(
        ["plan", str(root), "--no-commit-check", "--predict", "--at", "9999-12-01T00:00+00:00"]
    )
    assert code == 2
    assert "is too late to predict from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["plan", str(root), "--predict", "--horizon", "99999999999d"])
    assert exited.value.code == 2
    assert "longer than 3650d" in capsys.readouterr().err


def test_a_promotion_that_does_not_happen_says_why() -> None:
    """The lab host fails (what-if): staging's build is never promoted, and production's
    rollout never starts; with a horizon shorter than the promotion soak, it is still
    soaking. Either way the summary says so rather than only "all done"."""
    base, proposed = staging_and_production()
    failing = Assumptions(failing=frozenset({"lab1"}), horizon=timedelta(days=2))
    prediction = predict_change(proposed, base, None, T0, failing)
    assert not prediction.milestones
    [pending] = prediction.pending
    assert pending.startswith("production is not promoted: ")
    assert "failed on lab1 (lab)" in pending
    assert pending in timeline_text(prediction)[-2]
    short = predict_change(proposed, base, None, T0, Assumptions(horizon=timedelta(hours=1)))
    assert short.pending == (
        f"production is not promoted: {NEW[:12]} has soaked 40m of 2h on 1 healthy hosts",
    )
    assert timeline_json(short)["pending"] == list(short.pending)


@pytest.mark.parametrize(
    ("soak", "idle_since", "waited"),
    [
        # Production first rolls out its own build to hosts of unknown commit (done at
        # +80), then waits for the promotion at +140: an hour.
        ("2h", T0 + 80 * MIN, 60 * MIN),
        # The promotion (+30) comes while that rollout is under way: it supersedes it, and
        # the group never waited for it.
        ("10m", None, None),
    ],
)
def test_the_wait_for_a_promotion_counts_only_while_the_group_had_nothing_to_do(
    soak: str, idle_since: datetime | None, waited: timedelta | None
) -> None:
    _, proposed = staging_and_production(soak=soak)
    prediction = predict_change(proposed, None, None, T0, Assumptions())
    calls = next(g for g in prediction.groups if g.group == "calls")
    assert calls.idle_since == idle_since
    waits = dict((why, took) for took, why in calls.waits())
    assert waits.get("waiting for its stream's promotion") == waited
    bars = "\n".join(timeline_mermaid(prediction))
    assert ("awaits promotion" in bars) is (waited is not None)


def test_local_time_comes_from_the_hosts_own_windows_when_they_share_one_zone() -> None:
    """A site's windows often live in its inventory file, not in the group: its one zone is
    the group's local time; hosts in two zones have none (UTC only)."""
    berlin = [{"schedule": "0 2 * * *", "duration": "3h", "timeZone": "Europe/Berlin"}]
    sydney = [{"schedule": "0 2 * * *", "duration": "3h", "timeZone": "Australia/Sydney"}]
    names = ["h1", "h2"]
    group = {"g": {"hosts": names, "rollout": {"waves": ["100%"]}}}
    one_site = build_fleet(group, {n: {} for n in names}, host_windows=dict.fromkeys(names, berlin))
    two_sites = build_fleet(
        group, {n: {} for n in names}, host_windows={"h1": berlin, "h2": sydney}
    )
    zones = [
        predict(fleet, T0, dict.fromkeys(names, OLD)).groups[0].time_zone
        for fleet in (one_site, two_sites)
    ]
    assert zones == ["Europe/Berlin", None]
