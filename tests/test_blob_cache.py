"""The parsed-file cache: a warm load of a revision equals a cold one, whatever changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.fleetrepo import blobcache
from reconciler.fleetrepo.blobcache import ParsedFileCache
from reconciler.fleetrepo.loader import LoadResult, ValidationBudget, load_fleet
from reconciler.fleetrepo.sources import GitRevisionSource

Edit = Callable[[Path], None]


def replace(path: str, old: str, new: str) -> Edit:
    def edit(root: Path) -> None:
        file = root / path
        text = file.read_text()
        assert old in text, (path, old)
        file.write_text(text.replace(old, new))

    return edit


def rename(old: str, new: str) -> Edit:
    def edit(root: Path) -> None:
        (root / old).rename(root / new)

    return edit


#: A series of real changes, each one commit: valid, invalid, valid again, renamed.
CHANGES: list[tuple[str, Edit, bool]] = [
    (
        "staging takes a new build",
        replace("streams/staging.yaml", "commit: 8e1b", "commit: 9e1b"),
        True,
    ),
    (
        "a typo in a group",
        replace("groups/staging-lab.yaml", "stream: staging", "stream: stagin"),
        False,
    ),
    (
        "the typo fixed",
        replace("groups/staging-lab.yaml", "stream: stagin", "stream: staging"),
        True,
    ),
    ("a YAML syntax error", replace("hosts/lab.yaml", "site: lab\n", "site: [lab\n"), False),
    ("the syntax error fixed", replace("hosts/lab.yaml", "site: [lab\n", "site: lab\n"), True),
    ("an inventory renamed, same blob", rename("hosts/lab.yaml", "hosts/laboratory.yaml"), True),
    ("a host relabelled", replace("hosts/laboratory.yaml", 'rack: "b1"', 'rack: "c1"'), True),
    ("the rename undone", rename("hosts/laboratory.yaml", "hosts/lab.yaml"), True),
]


def commit_series(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> list[tuple[str, bool]]:
    commits = [(commit_fleet(fleet_dir, "initial"), True)]
    for message, edit, valid in CHANGES:
        edit(fleet_dir)
        commits.append((commit_fleet(fleet_dir, message), valid))
    return commits


def cold(repo: Path, revision: str, budget: ValidationBudget | None = None) -> LoadResult:
    return load_fleet(GitRevisionSource(repo, revision), budget or ValidationBudget())


def test_warm_loads_equal_cold_loads_over_a_series_of_commits(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    cache = ParsedFileCache()
    for revision, valid in commit_series(fleet_dir, commit_fleet):
        warm = load_fleet(GitRevisionSource(fleet_dir, revision), cache=cache)
        assert warm == cold(fleet_dir, revision)
        assert (warm.fleet is not None) is valid
    assert cache.hits > cache.misses  # most files were taken from the cache


def test_only_changed_blobs_are_parsed(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    cache = ParsedFileCache()
    first = commit_fleet(fleet_dir, "initial")
    load_fleet(GitRevisionSource(fleet_dir, first), cache=cache)
    files = cache.misses
    replace("streams/staging.yaml", "commit: 8e1b", "commit: 9e1b")(fleet_dir)
    load_fleet(GitRevisionSource(fleet_dir, commit_fleet(fleet_dir, "one file")), cache=cache)
    assert (cache.misses, cache.hits) == (files + 1, files - 1)


def test_the_cache_keeps_only_recent_revisions(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    cache = ParsedFileCache()
    first = commit_fleet(fleet_dir, "initial")
    load_fleet(GitRevisionSource(fleet_dir, first), cache=cache)
    files = len(cache)
    for number in range(5):  # five versions of one file, each loaded once
        replace(
            "streams/staging.yaml",
            f'version: "9.2026112{4 + number}',
            f'version: "9.2026112{5 + number}',
        )(fleet_dir)
        load_fleet(GitRevisionSource(fleet_dir, commit_fleet(fleet_dir, str(number))), cache=cache)
    assert len(cache) == files + 1  # the last two versions of that file, nothing older


def test_an_error_list_cut_short_by_the_budget_is_not_reused_with_more_room(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    for group in ("staging-lab", "callservers-dub"):
        replace(f"groups/{group}.yaml", "kind: Group", "kind: Group\nbogus1: 1\nbogus2: 2")(
            fleet_dir
        )
    revision = commit_fleet(fleet_dir, "two bad files")
    cache = ParsedFileCache()
    for budget in (
        ValidationBudget(max_errors=3),
        ValidationBudget(),
        ValidationBudget(max_errors=3),
    ):
        warm = load_fleet(GitRevisionSource(fleet_dir, revision), budget, cache)
        assert warm == cold(fleet_dir, revision, budget)


def test_a_restart_reads_the_outcomes_back_from_disk(
    tmp_path: Path, fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    commits = commit_series(fleet_dir, commit_fleet)
    kept = tmp_path / "parsed"
    for revision, _ in commits:
        load_fleet(GitRevisionSource(fleet_dir, revision), cache=ParsedFileCache(kept))
    last = commits[-1][0]
    after_restart = ParsedFileCache(kept)
    assert load_fleet(GitRevisionSource(fleet_dir, last), cache=after_restart) == cold(
        fleet_dir, last
    )
    assert after_restart.misses == 0


def test_an_unreadable_file_on_disk_is_parsed_again(
    tmp_path: Path, fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    revision = commit_fleet(fleet_dir, "initial")
    kept = tmp_path / "parsed"
    load_fleet(GitRevisionSource(fleet_dir, revision), cache=ParsedFileCache(kept))
    pickles = sorted(kept.rglob("*.pickle"))
    pickles[0].write_bytes(pickles[0].read_bytes()[:20])  # a crash mid-write, say
    pickles[1].write_bytes(b"not a pickle at all")
    after_restart = ParsedFileCache(kept)
    warm = load_fleet(GitRevisionSource(fleet_dir, revision), cache=after_restart)
    assert warm == cold(fleet_dir, revision)
    assert after_restart.misses == 2


def test_outcomes_made_by_other_code_are_not_used(
    tmp_path: Path,
    fleet_dir: Path,
    commit_fleet: Callable[[Path, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    revision = commit_fleet(fleet_dir, "initial")
    kept = tmp_path / "parsed"
    load_fleet(GitRevisionSource(fleet_dir, revision), cache=ParsedFileCache(kept))
    monkeypatch.setattr(blobcache, "code_fingerprint", lambda: "another-version")
    upgraded = ParsedFileCache(kept)
    assert load_fleet(GitRevisionSource(fleet_dir, revision), cache=upgraded) == cold(
        fleet_dir, revision
    )
    assert upgraded.hits == 0
    assert [p.name for p in kept.iterdir()] == ["another-version"]  # the old ones removed


def test_steps_over_every_host_are_reused_only_while_their_documents_are_the_same(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    """A stream change reuses the inventory and membership steps; an inventory change runs
    them again; a duplicate host's problem is replayed with a reused step. Every warm load
    still equals a cold one."""
    cache = ParsedFileCache()

    def load(message: str, edit: Edit | None = None) -> LoadResult:
        if edit is not None:
            edit(fleet_dir)
        revision = commit_fleet(fleet_dir, message)
        warm = load_fleet(GitRevisionSource(fleet_dir, revision), cache=cache)
        assert warm == cold(fleet_dir, revision)
        return warm

    load("initial")
    assert cache.steps.reused == 0
    load("staging moves", replace("streams/staging.yaml", "commit: 8e1b", "commit: 9e1b"))
    assert cache.steps.reused == 4  # inventory, membership, time zones, the host index
    load("a host relabelled", replace("hosts/lab.yaml", 'rack: "b1"', 'rack: "c1"'))
    assert cache.steps.reused == 4  # its file changed: all four ran again
    duplicate = (fleet_dir / "hosts" / "lab.yaml").read_text().split("hosts:\n", 1)[1]
    extra = fleet_dir / "hosts" / "copy.yaml"
    extra.write_text("apiVersion: ostree-fleet/v1alpha1\nkind: HostInventory\nhosts:\n" + duplicate)
    first = load("hosts listed twice")
    assert not first.fleet
    assert any(p.code == "repo.duplicate-host" for p in first.problems)
    again = load("an unrelated stream change", replace("streams/staging.yaml", "9e1b", "7e1b"))
    assert cache.steps.reused >= 6  # inventory and membership again
    assert [p for p in again.problems if p.code == "repo.duplicate-host"] == [
        p for p in first.problems if p.code == "repo.duplicate-host"
    ]


def test_a_problem_in_an_unchanged_file_is_placed_on_its_line(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    """The cache keeps a valid file's text, not its positions; a cross-file rule that later
    finds a problem in that unchanged file still names the line."""
    cache = ParsedFileCache()
    load_fleet(GitRevisionSource(fleet_dir, commit_fleet(fleet_dir, "initial")), cache=cache)
    replace("streams/staging.yaml", "name: staging\n", "name: staged\n")(fleet_dir)
    renamed = commit_fleet(fleet_dir, "a stream renamed under the group that follows it")
    result = load_fleet(GitRevisionSource(fleet_dir, renamed), cache=cache)
    assert cache.hits  # the group's file came from the cache
    group = "groups/staging-lab.yaml"
    line = (fleet_dir / group).read_text().splitlines().index("stream: staging") + 1
    assert [(p.line, p.field) for p in result.problems if p.file == group] == [(line, "stream")]


def test_a_valid_load_keeps_its_documents_as_text_only(
    fleet_dir: Path, commit_fleet: Callable[[Path, str], str]
) -> None:
    """What makes the cache small: no cross-file rule of a valid fleet reads positions, so
    no kept document is composed again (one that is holds its positions for good)."""
    cache = ParsedFileCache()
    result = load_fleet(
        GitRevisionSource(fleet_dir, commit_fleet(fleet_dir, "initial")), cache=cache
    )
    assert result.fleet is not None
    documents = [o.document for o in cache._entries.values() if o.document is not None]
    assert documents
    assert [d.file for d in documents if d.yaml.composed] == []
