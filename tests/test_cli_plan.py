"""`reconciler plan`: bases from Git, the three formats, exit codes, and `--against` a real
running reconciler on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pygit2
import pytest

from reconciler.cli import main
from reconciler.clock import ManualClock
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource
from tests.api_support import OPERATOR_TOKEN, running_api
from tests.conftest import EXAMPLE_FLEET, git
from tests.test_review import PRODUCTION, STAGING, edit, pause, promote
from tests.test_review_fleetwide import loosen_promotion

AT = "2026-11-25T12:00+00:00"
Commit = Callable[[Path, str], str]


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["plan", *args, "--at", AT, "--no-commit-check"])
    return code, capsys.readouterr().out


@pytest.fixture
def repo(fleet_dir: Path, commit_fleet: Commit) -> Path:
    """The example fleet as a Git repository with one commit."""
    commit_fleet(fleet_dir, "initial fleet")
    return fleet_dir


def test_uncommitted_edits_are_the_change(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    promote(repo)
    code, out = plan(capsys, str(repo))
    assert code == 0
    assert "4 group(s) change; 28 host(s) change commit; nothing blocks" in out
    head = git(repo, "rev-parse", "HEAD")
    assert f"the working tree against `{head[:12]}`" in out
    assert "callservers-dub (stream production, commit): 9.20261117.0 → 9.20261124.1" in out


def test_a_fleet_in_a_subdirectory_is_compared_with_the_same_subdirectory(
    tmp_path: Path, commit_fleet: Commit, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLE_FLEET, tmp_path / "checkout" / "fleet")
    commit_fleet(tmp_path / "checkout", "fleet in a folder")
    pause(tmp_path / "checkout" / "fleet", "staging-lab")
    code, out = plan(capsys, str(tmp_path / "checkout" / "fleet"))
    assert code == 0
    assert "staging-lab (stream staging, settings)" in out
    assert "also changes: paused: false → true" in out


def test_a_revision_is_compared_with_its_first_parent_or_base(
    repo: Path, commit_fleet: Commit, capsys: pytest.CaptureFixture[str]
) -> None:
    first = git(repo, "rev-parse", "HEAD")
    promote(repo)
    second = commit_fleet(repo, "promote")
    code, out = plan(capsys, str(repo), "--rev", "HEAD")
    assert code == 0
    assert f"`{second[:12]}` against `{first[:12]}`" in out
    assert "4 group(s) change" in out
    code, out = plan(capsys, str(repo), "--rev", "HEAD", "--base", "HEAD")
    assert (code, out.splitlines()[1]) == (0, "no group changes; 6 unchanged")
    code, out = plan(capsys, str(repo), "--rev", first)  # a root commit: everything is new
    assert code == 0
    assert "against nothing (no base revision: every group is new)" in out
    assert "6 group(s) change; 33 host(s) change commit" in out


def test_outside_git_everything_is_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if pygit2.discover_repository(str(tmp_path)) is not None:
        pytest.skip("the temporary directory is inside a Git work tree")
    shutil.copytree(EXAMPLE_FLEET, tmp_path / "fleet")
    code, out = plan(capsys, str(tmp_path / "fleet"))
    assert code == 0
    assert "6 group(s) change" in out
    assert main(["plan", str(tmp_path / "fleet"), "--base", "HEAD"]) == 2


def test_three_formats(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    promote(repo)
    pause(repo, "callservers-nyc")
    code, text = plan(capsys, str(repo))
    assert code == 3
    assert "BLOCKED (paused): paused in the fleet repo" in text
    code, markdown = plan(capsys, str(repo), "--format", "markdown")
    assert code == 3
    assert markdown.startswith("### `reconciler plan`: fleet `callos`\n")
    assert "| `callservers-nyc` | 9.20261117.0 → 9.20261124.1 | 8 | 1 · 3 · 4 |" in markdown
    assert "⛔ paused ⏳ depends_on_pending |" in markdown
    code, raw = plan(capsys, str(repo), "--format", "json")
    assert code == 3
    document = json.loads(raw)
    assert (document["valid"], document["blocked"]) == (True, True)
    nyc = next(g for g in document["groups"] if g["name"] == "callservers-nyc")
    assert nyc["blockers"][0] == {
        "code": "paused",
        "message": "paused in the fleet repo: no host is offered 9.20261124.1 until `paused` "
        "is set back to false",
        "blocking": True,
    }
    assert nyc["from"] == {"commit": PRODUCTION, "version": "9.20261117.0"}
    assert document["commitChecks"][0]["result"] == "skipped"


def test_an_invalid_revision_exits_1_with_file_and_line(
    repo: Path, commit_fleet: Commit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo, "fleet.yaml", "maxUnavailable: 1", "maxUnavailible: 1")
    commit_fleet(repo, "typo")
    code, out = plan(capsys, str(repo), "--rev", "HEAD", "--format", "markdown")
    assert code == 1
    assert "**The proposed revision is INVALID (1 error(s), 0 warning(s))" in out
    assert "fleet.yaml:12:7: defaults.rollout.rebootBudget.maxUnavailible: unknown field" in out
    code, out = plan(capsys, str(repo), "--format", "json")
    assert code == 1
    assert json.loads(out)["problems"][0]["file"] == f"{repo}/fleet.yaml"


def test_usage_errors_exit_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(tmp_path / "nowhere")]) == 2
    assert main(["plan", str(repo), "--rev", "no-such-branch"]) == 2
    assert "revision `no-such-branch` not found" in capsys.readouterr().err
    assert main(["plan", str(repo), "--against", "http://127.0.0.1:9", "--token", "t"]) == 2
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


# -- against a running reconciler -----------------------------------------------------------

DUB_TOKEN = "dub-call-01-token"


def _with_agent_token(root: Path) -> None:
    """Give dub-call-01 a token the test knows (the example holds only hashes)."""
    digest = hashlib.sha256(DUB_TOKEN.encode()).hexdigest()
    edit(
        root,
        "hosts/dub.yaml",
        "f9fd0553b566e1883c85f0bbbd22cc61aac33d653f739ed98fb88c66fe27547b",
        digest,
    )


def test_against_a_running_reconciler_a_halt_blocks_until_resumed(
    repo: Path, commit_fleet: Commit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_agent_token(repo)
    commit_fleet(repo, "known token")
    live_fleet = load_fleet(DirectorySource(repo)).fleet
    assert live_fleet is not None
    clock = ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    with running_api(live_fleet, tmp_path / "state.sqlite", clock) as api:
        # The first canary boots the current production build and its health check fails.
        answer = httpx.post(
            f"{api.url}/v1/report",
            headers={"Authorization": f"Bearer {DUB_TOKEN}"},
            json={
                "agentVersion": "0.1.0",
                "bootId": "b1",
                "greenboot": "red",
                "booted": {"checksum": PRODUCTION, "baseChecksum": PRODUCTION},
            },
        )
        assert answer.status_code == 200
        against = ["--against", api.url, "--token", OPERATOR_TOKEN]

        code, out = plan(capsys, str(repo), *against)
        assert code == 3
        assert f"against what {api.url} runs" in out
        assert "callservers-dub (stream production, continues): 9.20261117.0 (same commit)" in out
        assert "BLOCKED (halted): halted after 1 failure(s) (threshold 1): dub-call-01" in out
        # Dublin has not completed this commit: the groups that depend on it are stuck too.
        assert (
            "BLOCKED (depends_on_pending): waits for callservers-dub to complete 9.20261117.0 "
            "(it is halted); callservers-dub is blocked"
        ) in out
        # dub-call-01 booted the target; no other host has reported what it runs
        assert (
            "6 group(s) change; 0 host(s) change commit (32 more have reported no booted "
            "commit); 4 blocked"
        ) in out
        # The prediction starts from the same live state: Dublin stays halted, so the
        # groups after it never start either.
        code, out = plan(capsys, str(repo), *against, "--predict")
        assert (
            "  callservers-dub: does not start: halted on the running reconciler: halted after "
            "1 failure(s) (threshold 1): dub-call-01"
        ) in out
        assert "not every group finishes within the horizon: callservers-dub" in out
        edit(repo, "groups/callservers-dub.yaml", "canaries:", "resume: OPS-2291\ncanaries:")
        code, out = plan(capsys, str(repo), *against, "--format", "json", "--predict")
        prediction = json.loads(out)["prediction"]
        resumed = next(g for g in prediction["groups"] if g["name"] == "callservers-dub")
        assert resumed["start"] is not None
        assert resumed["unfinished"] is None
        dub = next(g for g in json.loads(out)["groups"] if g["name"] == "callservers-dub")
        assert dub["blockers"] == []
        assert dub["notes"] == ["resumes the halted rollout (`resume: OPS-2291`)"]
        assert dub["hostsOnTarget"] == 1
        nyc = next(g for g in json.loads(out)["groups"] if g["name"] == "callservers-nyc")
        assert [(b["code"], b["blocking"]) for b in nyc["blockers"]] == [
            ("depends_on_pending", False)
        ]
        assert code == 0

        assert main(["plan", str(repo), "--against", api.url, "--token", "wrong"]) == 2
        assert "answered 401" in capsys.readouterr().err


def _with_tokens_named_after_hosts(root: Path) -> None:
    """Give every host the token that is its own name (the example holds only hashes)."""
    for inventory in (root / "hosts").glob("*.yaml"):
        inventory.write_text(
            re.sub(
                r"- name: (\S+)(.*?)tokenSha256: [0-9a-f]{64}",
                lambda m: (
                    f"- name: {m[1]}{m[2]}tokenSha256: " + hashlib.sha256(m[1].encode()).hexdigest()
                ),
                inventory.read_text(),
                flags=re.DOTALL,
            )
        )


def _report_booted(url: str, host: str, commit: str) -> None:
    answer = httpx.post(
        f"{url}/v1/report",
        headers={"Authorization": f"Bearer {host}"},
        json={
            "agentVersion": "0.1.0",
            "bootId": "b1",
            "greenboot": "green",
            "booted": {"checksum": commit, "baseChecksum": commit},
        },
    )
    assert answer.status_code == 200, answer.text


def test_against_a_running_reconciler_only_hosts_seen_on_another_commit_change_commit(
    repo: Path, commit_fleet: Commit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue: "39 hosts change commit" when 4 would. Production runs the staging build
    everywhere but on four New York hosts; Frankfurt, Singapore and the lab have not
    reported yet, so nobody knows what they run: they are not counted as changing."""
    _with_tokens_named_after_hosts(repo)
    promote(repo)
    commit_fleet(repo, "production runs the staging build")
    live_fleet = load_fleet(DirectorySource(repo)).fleet
    assert live_fleet is not None
    clock = ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC))
    behind = {"nyc-call-01", "nyc-call-02", "nyc-call-03", "nyc-call-04"}
    with running_api(live_fleet, tmp_path / "state.sqlite", clock) as api:
        for host in live_fleet.members["callservers-dub"] + live_fleet.members["callservers-nyc"]:
            _report_booted(api.url, host, PRODUCTION if host in behind else STAGING)
        loosen_promotion(repo)  # the pull request touches no group
        against = ["--against", api.url, "--token", OPERATOR_TOKEN]
        code, out = plan(capsys, str(repo), *against)
        assert code == 0
        assert "4 host(s) change commit (15 more have reported no booted commit)" in out
        assert "  hosts: 8 (4 already on the target)\n" in out
        assert "  production: soakTime: 2d → 1s; minHealthyHosts: 3 → 1;" in out
        code, raw = plan(capsys, str(repo), *against, "--format", "json")
    changing = {
        g["name"]: (g["hostsChangingCommit"], g["hostsUnreported"])
        for g in json.loads(raw)["groups"]
    }
    assert changing == {
        "callservers-fra": (0, 4),
        "callservers-fra-dsp": (0, 2),
        "callservers-nyc": (4, 0),
        "callservers-sin": (0, 6),
        "staging-lab": (0, 3),
    }


def test_a_promotion_policy_change_warns_and_exits_0(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loosen_promotion(repo)
    for output in ("text", "markdown", "json"):
        code, out = plan(capsys, str(repo), "--format", output)
        assert code == 0  # warnings do not block
        assert "1 promotion policy change(s); 2 risk warning(s); 6 unchanged" in out
        assert "promotion_one_healthy_host" in out
        assert "o group changes" not in out


def test_a_fleet_directory_new_in_the_change_has_every_group_new(
    tmp_path: Path, commit_fleet: Commit, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("# ops\n")
    commit_fleet(checkout, "a repository with only a README")
    shutil.copytree(EXAMPLE_FLEET, checkout / "fleet")
    code, out = plan(capsys, str(checkout / "fleet"))  # uncommitted: HEAD has no fleet/
    assert code == 0
    assert "6 group(s) change" in out
    assert "note: `fleet` is not in HEAD: the fleet is new, every group is shown as new" in out
    commit_fleet(checkout, "add the fleet")
    code, out = plan(capsys, str(checkout), "--rev", "HEAD", "--subdir", "fleet")
    assert code == 0
    assert "6 group(s) change" in out
    # A base named on purpose must hold the fleet.
    assert main(["plan", str(checkout), "--rev", "HEAD", "--subdir", "fleet", "--base", "HEAD^"])
    assert "`fleet` is not a directory in revision HEAD^" in capsys.readouterr().err


def test_a_broken_repository_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".git/config").write_text("[core\n")
    assert main(["plan", str(repo)]) == 2
    assert "failed to parse config file" in capsys.readouterr().err


def test_subdir_without_rev_is_the_fleet_directory_inside_path(
    tmp_path: Path, commit_fleet: Commit, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(EXAMPLE_FLEET, tmp_path / "checkout" / "fleet")
    commit_fleet(tmp_path / "checkout", "fleet in a folder")
    pause(tmp_path / "checkout" / "fleet", "staging-lab")
    code, out = plan(capsys, str(tmp_path / "checkout"), "--subdir", "fleet")
    assert code == 0
    assert "staging-lab (stream staging, settings)" in out


def test_a_crash_does_not_read_as_an_invalid_revision(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(source: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("reconciler.cli.plan.load_fleet", crash)
    assert main(["plan", str(repo)]) == 4
    assert "RuntimeError: a bug" in capsys.readouterr().err
