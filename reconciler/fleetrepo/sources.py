"""Where fleet-repo files come from: a working directory, or a Git revision read with pygit2.

Both yield the same :class:`SourceFile` records, so validation and the daemon see exactly the
same bytes whether ops run the validator on a checkout or the daemon reads a pushed commit.
Reading a revision never checks anything out: trees and blobs are read from the object store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import pygit2

from reconciler.errors import FleetSourceUnavailable, GitRevisionNotFound

#: The files a fleet repo is made of; everything else in the repo (README, CI config) is ignored.
ROOT_FILE = "fleet.yaml"
KIND_DIRECTORIES = {"streams": "Stream", "groups": "Group", "hosts": "HostInventory"}
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SourceFile:
    """One fleet-repo file: its path relative to the fleet root (POSIX), size and content."""

    path: str
    size: int
    read: Callable[[], bytes]
    is_regular: bool = True
    #: Git's id of the content (None off Git): equal ids, equal bytes, so a cache of what
    #: the file parsed to may be keyed by it.
    blob_id: str | None = None

    @property
    def expected_kind(self) -> str:
        """The ``kind`` a file must declare, decided by where it lives."""
        if self.path == ROOT_FILE:
            return "Fleet"
        return KIND_DIRECTORIES[PurePosixPath(self.path).parts[0]]


class FleetSource(Protocol):
    """Something that lists the fleet-repo files of one state of the repo."""

    @property
    def revision(self) -> str | None:
        """Git commit id the files come from, or None for a working directory."""

    def files(self) -> Iterator[SourceFile]:
        """The fleet files, in a stable order."""


def _is_fleet_file(path: PurePosixPath) -> bool:
    if str(path) == ROOT_FILE:
        return True
    return (
        len(path.parts) >= 2
        and path.parts[0] in KIND_DIRECTORIES
        and path.suffix in YAML_SUFFIXES
        and not path.name.startswith(".")
    )


class DirectorySource:
    """The fleet files under a directory on disk (a checkout, or the example fleets)."""

    revision: str | None = None

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise FleetSourceUnavailable(f"{root} is not a directory")
        self.root = root

    def files(self) -> Iterator[SourceFile]:
        candidates = [self.root / ROOT_FILE] if (self.root / ROOT_FILE).exists() else []
        for directory in KIND_DIRECTORIES:
            if (self.root / directory).is_dir():
                candidates.extend(p for p in (self.root / directory).rglob("*"))
        for path in sorted(candidates):
            relative = PurePosixPath(path.relative_to(self.root).as_posix())
            if not _is_fleet_file(relative) or path.is_dir():
                continue
            # Symlinks could point outside the repo and are not what Git would store.
            regular = path.is_file() and not path.is_symlink()
            size = path.lstat().st_size
            yield SourceFile(str(relative), size, path.read_bytes, is_regular=regular)


class GitRevisionSource:
    """The fleet files of one commit of a Git repository, read without a checkout."""

    def __init__(self, repository: Path | str, rev: str = "HEAD", subdirectory: str = "") -> None:
        try:
            self.repo = pygit2.Repository(str(repository))
        except pygit2.GitError as exc:
            raise FleetSourceUnavailable(f"{repository} is not a Git repository: {exc}") from exc
        try:
            commit = self.repo.revparse_single(rev).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise GitRevisionNotFound(f"revision `{rev}` not found in {repository}") from exc
        self._revision = str(commit.id)
        self.tree = commit.tree
        if subdirectory:
            try:
                self.tree = self.repo[self.tree[subdirectory].id].peel(pygit2.Tree)
            except (KeyError, ValueError) as exc:
                raise FleetSourceUnavailable(
                    f"`{subdirectory}` is not a directory in revision {rev}"
                ) from exc

    @property
    def revision(self) -> str | None:
        return self._revision

    def files(self) -> Iterator[SourceFile]:
        entries = sorted(self._walk(self.tree, PurePosixPath()), key=lambda e: e[0])
        for path, blob_id, filemode in entries:
            if not _is_fleet_file(path):
                continue
            # The size from the object's header, the content only when read: a file whose
            # blob the parse cache knows is never inflated (400 inventory blobs of a 100k
            # fleet cost ~0.15 s to load, their headers ~3 ms).
            _, size = self.repo.odb.read_header(blob_id)
            yield SourceFile(
                str(path),
                size,
                functools.partial(_blob_bytes, self.repo, blob_id),
                is_regular=filemode != pygit2.enums.FileMode.LINK,
                blob_id=str(blob_id),
            )

    def _walk(
        self, tree: pygit2.Tree, prefix: PurePosixPath
    ) -> Iterator[tuple[PurePosixPath, pygit2.Oid, int]]:
        for entry in tree:
            path = prefix / str(entry.name)
            if entry.type_str == "tree":
                top = path.parts[0]
                if top in KIND_DIRECTORIES:
                    yield from self._walk(self.repo[entry.id].peel(pygit2.Tree), path)
            elif entry.type_str == "blob":
                yield path, entry.id, entry.filemode


def _blob_bytes(repo: pygit2.Repository, blob_id: pygit2.Oid) -> bytes:
    return bytes(repo[blob_id].peel(pygit2.Blob).data)
