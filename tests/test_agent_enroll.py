"""`reconciler-agent enroll`: the token made with safe permissions, the inventory entry the
fleet repo accepts, re-runs that never replace a token without --rotate, and refusals."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.agent import enroll as enrollment
from reconciler.agent.__main__ import main
from reconciler.agent.files import write_atomically
from reconciler.fleetrepo import models, selectors
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from tests.conftest import ROOT


def enroll(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["enroll", "--config", "/nonexistent", *args])
    out, err = capsys.readouterr()
    return code, out, err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def sha256(token_file: Path) -> str:
    return hashlib.sha256(token_file.read_text().strip().encode()).hexdigest()


def test_the_first_run_creates_a_private_token_and_prints_its_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fleet_dir: Path
) -> None:
    token_file = tmp_path / "etc" / "reconciler-agent" / "token"  # the directory is new too
    code, out, err = enroll(
        capsys,
        *("--name", "dub-call-11", "--label", "rack=01", "--label", "hardware=r650"),
        *("--token-file", str(token_file)),
    )
    assert code == 0, err
    assert mode(token_file) == 0o600
    assert mode(token_file.parent) == 0o700
    assert len(token_file.read_text().strip()) >= 43  # 32 random bytes, URL-safe base64
    assert "created a new token" in err
    assert out == (
        "  - name: dub-call-11\n"
        '    labels: {hardware: "r650", rack: "01"}\n'
        f"    tokenSha256: {sha256(token_file)}\n"
    )
    assert [p.name for p in token_file.parent.iterdir()] == ["token"]  # no temporary left
    # Pasted under `hosts:` of an inventory file, it is a host the fleet repo accepts.
    inventory = fleet_dir / "hosts" / "dub.yaml"
    inventory.write_text(inventory.read_text() + out)
    host = load_fleet_or_raise(DirectorySource(fleet_dir)).hosts["dub-call-11"]
    assert host.token_sha256 == sha256(token_file)
    assert (host.labels["rack"], host.labels["hardware"], host.labels["site"]) == (
        "01",
        "r650",
        "dub",
    )


def test_a_second_run_prints_the_same_entry_and_keeps_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    args = ("--name", "lab-call-09", "--token-file", str(token_file))
    first = enroll(capsys, *args)
    before = (token_file.read_text(), token_file.stat().st_ino)
    second = enroll(capsys, *args)
    assert first[:2] == second[:2] == (0, first[1])
    assert "kept the existing token" in second[2]
    assert (token_file.read_text(), token_file.stat().st_ino) == before
    assert "labels" not in first[1]


def test_rotate_replaces_the_token_atomically_and_says_when_the_old_one_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    args = ("--name", "lab-call-09", "--token-file", str(token_file))
    _, first, _ = enroll(capsys, *args)
    old = token_file.read_text()
    code, second, err = enroll(capsys, *args, "--rotate")
    assert code == 0
    assert token_file.read_text() != old
    assert mode(token_file) == 0o600
    assert second != first
    assert f"tokenSha256: {sha256(token_file)}" in second
    assert "the old one stops working once the pull request with this entry merges" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


@pytest.mark.parametrize("unsafe_mode", [0o640, 0o604, 0o620])
def test_a_token_others_can_read_or_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unsafe_mode: int
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token\n")
    token_file.chmod(unsafe_mode)
    for rotate in ((), ("--rotate",)):
        code, out, err = enroll(capsys, "--name", "h1", "--token-file", str(token_file), *rotate)
        assert (code, out) == (2, "")
        assert f"(mode {unsafe_mode:04o})" in err
        assert f"chmod 600 {token_file}" in err
    assert token_file.read_text() == "old-token\n"


def test_a_symlinked_token_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "elsewhere"
    real.write_text("t\n")
    real.chmod(0o600)
    token_file = tmp_path / "token"
    token_file.symlink_to(real)
    for rotate in ((), ("--rotate",)):
        code, out, err = enroll(capsys, "--name", "h1", "--token-file", str(token_file), *rotate)
        assert (code, out) == (2, "")
        assert "is a symbolic link" in err
    assert token_file.is_symlink()
    assert real.read_text() == "t\n"


def test_a_directory_others_can_write_to_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    code, _, err = enroll(capsys, "--name", "h1", "--token-file", str(shared / "token"))
    assert code == 2
    assert "writable by group or others" in err
    assert list(shared.iterdir()) == []


def test_an_empty_token_file_needs_rotate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("")
    token_file.chmod(0o600)
    code, _, err = enroll(capsys, "--name", "h1", "--token-file", str(token_file))
    assert (code, "use --rotate" in err) == (2, True)
    assert enroll(capsys, "--name", "h1", "--token-file", str(token_file), "--rotate")[0] == 0
    assert token_file.read_text().strip()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name=-rf",), "is not a host name"),
        (("--name", "h1", "--label", "rack"), "is not KEY=VALUE"),
        (("--name", "h1", "--label=-x=1"), "is not KEY=VALUE"),
    ],
)
def test_names_and_labels_the_fleet_repo_would_refuse_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = enroll(capsys, *args, "--token-file", str(tmp_path / "token"))
    assert (code, out) == (2, "")
    assert message in err
    assert not (tmp_path / "token").exists()


def test_the_token_file_of_the_config_file_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.conf"
    config.write_text(f"[agent]\ntoken-file = {tmp_path / 'from-config'}\n")
    assert main(["enroll", "--config", str(config), "--name", "h1"]) == 0
    assert (tmp_path / "from-config").exists()
    capsys.readouterr()


def test_the_rules_are_the_fleet_repos() -> None:
    assert enrollment.HOST_NAME_PATTERN == models.HOST_NAME_PATTERN
    assert enrollment.LABEL_KEY_PATTERN == selectors.LABEL_KEY_PATTERN


def test_enroll_is_a_verb_of_the_command_and_the_old_flags_still_work(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "reconciler.agent"]
    token_file = tmp_path / "token"
    done = subprocess.run(
        [*run, "enroll", "--name", "h1", "--token-file", str(token_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("  - name: h1\n")
    flags = subprocess.run(
        [*run, "--config", "/nonexistent", "--token-file", str(token_file), "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert flags.returncode == 2  # parsed as before: only --server is missing
    assert "--server" in flags.stderr


def test_a_token_written_meanwhile_is_never_replaced_without_rotate(tmp_path: Path) -> None:
    """Two enrolments at once: the second one's no-replace write leaves the first token."""
    token_file = tmp_path / "token"
    assert write_atomically(str(token_file), "first\n", replace=False)
    assert not write_atomically(str(token_file), "second\n", replace=False)
    assert token_file.read_text() == "first\n"
    assert mode(token_file) == 0o600
    assert write_atomically(str(token_file), "rotated\n", replace=True)
    assert token_file.read_text() == "rotated\n"
    assert [p.name for p in tmp_path.iterdir()] == ["token"]
