"""What `reconciler plan` says beyond single groups: streams, promotion policies and fleet
defaults that change (and the groups they reach), the warnings for risky values, every fact
in all three formats, and golden output for a promotion-policy change.

Regenerate the golden files after an intended change of the output with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_review_fleetwide.py` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.review.change import review_change
from reconciler.review.model import (
    ChangeReview,
    FieldChange,
    StreamChangeKind,
)
from reconciler.review.render import render_json, render_markdown, render_text, summary
from tests.conftest import EXAMPLE_FLEET
from tests.fleets import build_fleet
from tests.test_review import (
    AT,
    GOLDEN,
    MISSING,
    PINNED,
    PRODUCTION_GROUPS,
    assert_golden,
    edit,
    load,
    pause,
    present,
)

ALL_GROUPS = sorted([*PRODUCTION_GROUPS, "callservers-fra-dsp", "staging-lab"])


@pytest.fixture
def base() -> Fleet:
    return load(EXAMPLE_FLEET)


def loosen_promotion(root: Path) -> None:
    """The pull request of the issue: production's promotion from 48h on 3 healthy hosts to
    one second on one host."""
    edit(root, "streams/production.yaml", "soakTime: 48h ", "soakTime: 1s ")
    edit(root, "streams/production.yaml", "minHealthyHosts: 3 ", "minHealthyHosts: 1 ")


def risks(review: ChangeReview) -> list[tuple[str, str]]:
    return [(r.code.value, r.subject) for r in review.risks]


# -- promotion policies -----------------------------------------------------------------------


def test_a_promotion_policy_change_is_reported_field_by_field(fleet_dir: Path, base: Fleet) -> None:
    loosen_promotion(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert review.groups == ()  # no group's commit or settings change...
    [promotion] = review.promotions
    assert promotion.stream == "production"
    assert promotion.fields == (
        FieldChange("soakTime", "2d", "1s"),
        FieldChange("minHealthyHosts", "3", "1"),
    )
    assert promotion.groups == tuple(PRODUCTION_GROUPS)
    # ...yet the summary counts the change instead of saying that nothing changes
    assert summary(review) == "1 promotion policy change(s); 2 risk warning(s); 6 unchanged"
    assert "no group changes" not in render_text(review).lower()
    assert "no group changes" not in render_markdown(review).lower()


def test_a_promotion_added_or_removed_names_every_field(fleet_dir: Path, base: Fleet) -> None:
    edit(
        fleet_dir,
        "streams/production.yaml",
        "  minHealthyHosts: 3",
        "  minHealthyHosts: 3\n  branch: promote",
    )
    [branch] = review_change(load(fleet_dir), base, AT).promotions
    assert branch.fields == (FieldChange("branch", None, "promote"),)
    text = (fleet_dir / "streams/production.yaml").read_text()
    (fleet_dir / "streams/production.yaml").write_text(text.split("promotion:")[0])
    [removed] = review_change(load(fleet_dir), base, AT).promotions
    assert [(f.field, f.before, f.after) for f in removed.fields] == [
        ("from", "staging", None),
        ("soakTime", "2d", None),
        ("minHealthyHosts", "3", None),
    ]
    assert "from: staging → unset" in render_text(review_change(load(fleet_dir), base, AT))


# -- streams ----------------------------------------------------------------------------------


def test_a_stream_moved_to_another_remote_and_ref_is_a_stream_change(
    fleet_dir: Path, base: Fleet
) -> None:
    # The commit stays, so no group's commit changes: only the stream section shows where
    # the lab's hosts will fetch from.
    edit(fleet_dir, "streams/staging.yaml", "remote: callos", "remote: callos-next")
    edit(fleet_dir, "streams/staging.yaml", "x86_64/staging", "x86_64/staging-next")
    review = review_change(load(fleet_dir), base, AT)
    [stream] = review.streams
    assert (stream.name, stream.kind, stream.groups) == (
        "staging",
        StreamChangeKind.CHANGED,
        ("staging-lab",),
    )
    assert stream.fields == (
        FieldChange("remote", "callos", "callos-next"),
        FieldChange("ref", "callos/9/x86_64/staging", "callos/9/x86_64/staging-next"),
    )
    assert summary(review) == "1 stream change(s); 6 unchanged"
    assert (
        "  staging (changed): remote: callos → callos-next; ref: callos/9/x86_64/staging → "
        "callos/9/x86_64/staging-next; followed by staging-lab"
    ) in render_text(review)


def test_streams_added_and_removed(fleet_dir: Path, base: Fleet) -> None:
    (fleet_dir / "streams/canary.yaml").write_text(
        (fleet_dir / "streams/staging.yaml")
        .read_text()
        .replace("name: staging", "name: canary")
        .replace("x86_64/staging", "x86_64/canary")
    )
    with_canary = load(fleet_dir)
    [added] = review_change(with_canary, base, AT).streams
    assert (added.name, added.kind, added.groups) == ("canary", StreamChangeKind.ADDED, ())
    assert FieldChange("ref", None, "callos/9/x86_64/canary") in added.fields
    [removed] = review_change(base, with_canary, AT).streams
    assert (removed.name, removed.kind) == ("canary", StreamChangeKind.REMOVED)
    assert "no group follows it" in render_text(review_change(base, with_canary, AT))


def test_a_new_stream_commit_names_the_groups_that_follow_it(fleet_dir: Path, base: Fleet) -> None:
    edit(fleet_dir, "streams/staging.yaml", "8e1b4d5f2a7c9e0b", "cdcdcdcdcdcdcdcd")
    review = review_change(load(fleet_dir), base, AT)
    [stream] = review.streams
    assert [f.field for f in stream.fields] == ["commit"]
    assert stream.groups == ("staging-lab",)
    assert "commit: 8e1b4d5f2a7c → cdcdcdcdcdcd; followed by staging-lab" in render_text(review)


# -- fleet defaults ---------------------------------------------------------------------------


def test_a_default_change_names_the_groups_that_inherit_it(fleet_dir: Path, base: Fleet) -> None:
    edit(fleet_dir, "fleet.yaml", "soakTime: 2h", "soakTime: 3h")
    review = review_change(load(fleet_dir), base, AT)
    [default] = review.defaults
    assert default.change == FieldChange("defaults.rollout.soakTime", "2h", "3h")
    # callservers-nyc (4h) and staging-lab (30m) set their own soak
    inheriting = ("callservers-dub", "callservers-fra", "callservers-fra-dsp", "callservers-sin")
    assert default.inherited_by == inheriting
    # The groups that inherit it were already shown as `settings`; now the cause is named too.
    assert tuple(g.name for g in review.groups) == inheriting
    assert all(g.settings_changed == ("rollout.soakTime",) for g in review.groups)
    assert summary(review).startswith(
        "4 group(s) change; 0 host(s) change commit; nothing blocks; 1 fleet default change(s)"
    )


def test_a_nested_default_is_inherited_field_by_field(fleet_dir: Path, base: Fleet) -> None:
    # staging-lab writes `rebootBudget: {maxUnavailable: 50%}`: it keeps the fleet's groupBy.
    edit(fleet_dir, "fleet.yaml", "maxUnavailable: 1", "maxUnavailable: 2")
    edit(fleet_dir, "fleet.yaml", "groupBy: [site]", "groupBy: [rack]")
    review = review_change(load(fleet_dir), base, AT)
    edit(fleet_dir, "fleet.yaml", "waves: [1, 10%, 50%]", "waves: [1, 25%]")
    review = review_change(load(fleet_dir), base, AT)
    assert review.defaults[0].change == FieldChange(
        "defaults.rollout.waves", "[1, 10%, 50%]", "[1, 25%]"
    )
    inherited = {d.change.field: d.inherited_by for d in review.defaults[1:]}
    assert inherited == {
        "defaults.rollout.rebootBudget.maxUnavailable": tuple(
            g for g in ALL_GROUPS if g != "staging-lab"
        ),
        "defaults.rollout.rebootBudget.groupBy": tuple(ALL_GROUPS),
    }


def test_default_windows_inherited_by_no_group_and_freezes_by_all(
    fleet_dir: Path, base: Fleet
) -> None:
    edit(
        fleet_dir,
        "fleet.yaml",
        "    rebootMargin: 20m\n",
        "    rebootMargin: 20m\n  maintenanceWindows:\n"
        '    - {schedule: "0 3 * * *", duration: 2h, timeZone: UTC}\n'
        "freezes:\n  - {name: xmas, start: 2026-12-24, end: 2026-12-27, timeZone: UTC, "
        "reason: holidays}\n"
        f"revoked:\n  - {{commit: {'cd' * 32}, reason: bad build}}\n",
    )
    review = review_change(load(fleet_dir), base, AT)
    by_field = {d.change.field: d for d in review.defaults}
    assert by_field["revoked"].inherited_by == tuple(ALL_GROUPS)
    windows = by_field["defaults.maintenanceWindows"]
    assert windows.inherited_by == ()  # every group of the example declares its own windows
    assert windows.change.after == "[{schedule: 0 3 * * *, duration: 2h, timeZone: UTC}]"
    assert by_field["freezes"].inherited_by == tuple(ALL_GROUPS)
    assert "no group inherits it (each sets its own)" in render_text(review)


# -- warnings for risky values ----------------------------------------------------------------


def test_a_promotion_of_one_second_on_one_host_warns(fleet_dir: Path, base: Fleet) -> None:
    loosen_promotion(fleet_dir)
    review = review_change(load(fleet_dir), base, AT)
    assert risks(review) == [
        ("promotion_one_healthy_host", "stream production"),
        ("promotion_soak_short", "stream production"),
    ]
    assert review.risks[1].message.endswith("after a soak of 1s: less than 1h")
    assert not review.blocked  # warnings do not block


def test_a_promotion_soak_shorter_than_the_sources_health_timeout_warns(
    fleet_dir: Path, base: Fleet
) -> None:
    edit(fleet_dir, "streams/production.yaml", "soakTime: 48h ", "soakTime: 2h ")
    assert risks(review_change(load(fleet_dir), base, AT)) == []  # 2h is long enough
    edit(
        fleet_dir,
        "groups/staging-lab.yaml",
        "  soakTime: 30m",
        "  soakTime: 4h\n  healthTimeout: 3h",
    )
    review = review_change(load(fleet_dir), base, AT)
    assert risks(review) == [("promotion_soak_short", "stream production")]
    assert "less than the health timeout of staging-lab (3h)" in review.risks[0].message


def test_a_soak_shorter_than_the_health_timeout_warns(fleet_dir: Path, base: Fleet) -> None:
    edit(fleet_dir, "groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 10m")
    review = review_change(load(fleet_dir), base, AT)
    assert risks(review) == [("soak_shorter_than_health_timeout", "group staging-lab")]
    assert review.risks[0].message.startswith("soakTime 10m is shorter than healthTimeout 30m")
    edit(fleet_dir, "groups/staging-lab.yaml", "soakTime: 10m", "soakTime: 30m")
    assert risks(review_change(load(fleet_dir), base, AT)) == []  # equal is enough


@pytest.mark.parametrize(
    ("budget", "warns"), [("100%", True), ("3", True), ("5", True), ("2", False), ("66%", False)]
)
def test_a_budget_of_the_whole_group_warns(
    budget: str, warns: bool, fleet_dir: Path, base: Fleet
) -> None:
    edit(fleet_dir, "groups/staging-lab.yaml", "maxUnavailable: 50%", f"maxUnavailable: {budget}")
    review = review_change(load(fleet_dir), base, AT)
    expected = [("max_unavailable_whole_group", "group staging-lab")] if warns else []
    assert risks(review) == expected


@pytest.mark.parametrize(("hosts", "warns"), [(1, False), (2, True)])
def test_a_group_of_one_host_may_update_it_without_a_warning(hosts: int, warns: bool) -> None:
    fleet = build_fleet(
        {"solo": {"hosts": [f"h{i}" for i in range(hosts)], "rollout": _ALL_AT_ONCE}},
        {f"h{i}": {} for i in range(hosts)},
    )
    expected = [("max_unavailable_whole_group", "group solo")] if warns else []
    assert risks(review_change(fleet, None, AT)) == expected


_ALL_AT_ONCE = {"soakTime": "1h", "rebootBudget": {"maxUnavailable": "100%"}}


def test_only_what_the_change_touches_is_warned_about(fleet_dir: Path) -> None:
    # A risky soak that is already in the base is not the change's: pausing another group
    # does not bring it up, changing the lab does.
    edit(fleet_dir, "groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 10m")
    risky_base = load(fleet_dir)
    pause(fleet_dir, "callservers-nyc")
    assert risks(review_change(load(fleet_dir), risky_base, AT)) == []
    pause(fleet_dir, "staging-lab")
    assert risks(review_change(load(fleet_dir), risky_base, AT)) == [
        ("soak_shorter_than_health_timeout", "group staging-lab")
    ]
    # Without a base everything is the change's, the promotions included (and there is no
    # stream, promotion or default to compare).
    edit(fleet_dir, "streams/production.yaml", "minHealthyHosts: 3 ", "minHealthyHosts: 1 ")
    unbased = review_change(load(fleet_dir), None, AT)
    assert (unbased.streams, unbased.promotions, unbased.defaults) == ((), (), ())
    assert risks(unbased) == [
        ("promotion_one_healthy_host", "stream production"),
        ("soak_shorter_than_health_timeout", "group staging-lab"),
    ]


# -- the same facts in every format -----------------------------------------------------------


def _everything(fleet_dir: Path, base: Fleet) -> ChangeReview:
    """One change with a fact of every kind the review holds."""
    loosen_promotion(fleet_dir)  # a promotion change and two warnings
    edit(fleet_dir, "streams/staging.yaml", "x86_64/staging", "x86_64/staging-next")  # stream
    edit(  # a fleet default no group inherits: the groups stay unchanged
        fleet_dir,
        "fleet.yaml",
        "    rebootMargin: 20m\n",
        "    rebootMargin: 20m\n  maintenanceWindows:\n"
        '    - {schedule: "0 3 * * *", duration: 2h, timeZone: UTC}\n',
    )
    edit(fleet_dir, "groups/callservers-fra-dsp.yaml", PINNED, MISSING)  # refused, checks
    (fleet_dir / "groups/callservers-sin.yaml").unlink()  # a removed group
    (fleet_dir / "groups/empty.yaml").write_text(  # a new group, and a validation warning
        "apiVersion: ostree-fleet/v1alpha1\nkind: Group\nname: empty\n"
        "selector:\n  matchLabels:\n    site: nowhere\nstream: production\n"
    )
    result = load_fleet(DirectorySource(fleet_dir))
    assert result.fleet is not None
    return review_change(
        result.fleet,
        base,
        AT,
        commit_checker=lambda url, commit: commit != MISSING,
        problems=result.problems,
        notes=["a note from the command line"],
    )


#: Per fact category: the JSON key that holds it, and text each format must show.
FACTS = {
    "groups": ("groups", "callservers-fra-dsp"),
    "hosts changing commit": ("groups", "2 host(s) change commit"),
    "streams": ("streamChanges", "callos/9/x86_64/staging-next"),
    "promotion policies": ("promotionChanges", "minHealthyHosts"),
    "fleet defaults": ("defaultChanges", "defaults.maintenanceWindows"),
    "warnings": ("riskWarnings", "promotion_one_healthy_host"),
    "commit checks": ("commitChecks", "https://ostree.callos.example.net/repo"),
    "refused": ("revisionBlockers", "commit_missing"),
    "notes": ("notes", "a note from the command line"),
    "unchanged": ("unchanged", "staging-lab"),
    "removed": ("removed", "callservers-sin"),
    "validation warnings": ("problems", "selector matches no host"),
}


def test_every_fact_is_in_text_markdown_and_json(fleet_dir: Path, base: Fleet) -> None:
    review = _everything(fleet_dir, base)
    document = json.loads(render_json(review))
    outputs = {
        "text": render_text(review),
        "markdown": render_markdown(review),
        "json": json.dumps(document, ensure_ascii=False),
    }
    for category, (key, fact) in FACTS.items():
        assert document[key], f"{category}: JSON `{key}` is empty"
        for name, output in outputs.items():
            assert fact in output, f"{category}: {fact!r} missing from the {name} output"
    assert (
        "OSTree commits:\n  group callservers-fra-dsp (pinned): abababababab missing:"
        in (outputs["text"])
    )


# -- golden output for a promotion-policy change ----------------------------------------------

RENDERERS = {"txt": render_text, "md": render_markdown, "json": render_json}


@pytest.mark.parametrize("suffix", sorted(RENDERERS))
def test_a_promotion_policy_change_matches_the_golden_files(
    suffix: str, fleet_dir: Path, base: Fleet
) -> None:
    loosen_promotion(fleet_dir)
    review = review_change(load(fleet_dir), base, AT, commit_checker=present)
    assert_golden(GOLDEN / f"plan-promotion-policy.{suffix}", RENDERERS[suffix](review))
