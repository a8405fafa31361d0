"""Reading a fleet from a Git revision gives exactly what reading the directory gives."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.errors import FleetSourceUnavailable, GitRevisionNotFound
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.sources import DirectorySource, GitRevisionSource
from tests.conftest import git


def test_revision_and_directory_load_the_same_fleet(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    revision = commit_fleet(fleet_dir, "Initial fleet")
    from_git = load_fleet(GitRevisionSource(fleet_dir, "HEAD"))
    from_dir = load_fleet(DirectorySource(fleet_dir))

    assert from_git.revision == revision
    assert from_git.problems == from_dir.problems == ()
    assert from_git.fleet is not None
    assert from_dir.fleet is not None
    assert from_git.fleet.groups == from_dir.fleet.groups
    assert from_git.fleet.hosts == from_dir.fleet.hosts
    assert from_git.fleet.members == from_dir.fleet.members
    assert from_git.files_read == from_dir.files_read == 14


def test_a_bare_repository_is_read_without_any_checkout(
    tmp_path: Path, fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    good = commit_fleet(fleet_dir, "Initial fleet")
    group = fleet_dir / "groups" / "callservers-nyc.yaml"
    group.write_text(group.read_text().replace("stream: production", "stream: prodution"))
    commit_fleet(fleet_dir, "Typo")
    bare = tmp_path / "fleet.git"
    git(tmp_path, "clone", "-q", "--bare", str(fleet_dir), str(bare))
    shutil.rmtree(fleet_dir)  # the only files left are Git objects

    broken = load_fleet(GitRevisionSource(bare, "main"))
    last_good = load_fleet(GitRevisionSource(bare, good))

    assert [(p.file, p.line, p.code) for p in broken.errors] == [
        ("groups/callservers-nyc.yaml", 9, "ref.unknown-stream")
    ]
    assert last_good.fleet is not None
    assert last_good.revision == good


def test_identical_problems_from_git_and_directory(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    stream = fleet_dir / "streams" / "staging.yaml"
    stream.write_text(stream.read_text() + "version: again\n\tbad: tab\n")
    commit_fleet(fleet_dir, "Broken")
    assert (
        load_fleet(GitRevisionSource(fleet_dir, "HEAD")).problems
        == load_fleet(DirectorySource(fleet_dir)).problems
    )


def test_fleet_in_a_subdirectory_of_a_bigger_repo(
    tmp_path: Path, fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    repo = tmp_path / "infra"
    repo.mkdir()
    shutil.copytree(fleet_dir, repo / "fleet")
    commit_fleet(repo, "Add fleet")
    assert load_fleet(GitRevisionSource(repo, "HEAD", subdirectory="fleet")).fleet is not None
    with pytest.raises(FleetSourceUnavailable):
        GitRevisionSource(repo, "HEAD", subdirectory="nope")


def test_symlink_committed_to_git_is_refused(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    (fleet_dir / "groups" / "link.yaml").symlink_to("staging-lab.yaml")
    commit_fleet(fleet_dir, "Symlink")
    result = load_fleet(GitRevisionSource(fleet_dir, "HEAD"))
    assert ("groups/link.yaml", "file.not-regular") in {(p.file, p.code) for p in result.errors}


def test_unknown_revision_and_non_repository(
    tmp_path: Path, fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    commit_fleet(fleet_dir, "Initial")
    with pytest.raises(GitRevisionNotFound):
        GitRevisionSource(fleet_dir, "no-such-branch")
    with pytest.raises(FleetSourceUnavailable):
        GitRevisionSource(tmp_path / "nowhere", "HEAD")
    with pytest.raises(FleetSourceUnavailable):
        DirectorySource(tmp_path / "nowhere")
