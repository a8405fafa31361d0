"""What each fleet file parsed and validated to, kept by its Git blob id across revisions.

Git names every file version by the hash of its content, so a file whose blob id is
unchanged reads, parses and validates exactly as before: a new revision only costs the files
it changed (plus the cross-file rules, which always run over the whole fleet). The key is
the blob id *with* the path and file mode, because the path decides the kind a file must
declare and appears in every problem; a file renamed with the same content is parsed again.

The cache holds the outcomes of the last :data:`LOADS_KEPT` loads (the revision in force and
the candidate judged against it) and drops the rest, so it never outgrows two revisions.

Optionally it is also kept on disk, one small pickle per file version, so a restart takes
the applied revision back without parsing it again. A pickle of validated models is only
as good as the code that made it: files live under a directory named after a fingerprint
of that code (:func:`code_fingerprint`), and anything unreadable is parsed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import platform
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydantic

import reconciler
from reconciler.fleetrepo.consistency import DeclaredNames
from reconciler.fleetrepo.reporter import LoadedDocument
from reconciler.fleetrepo.reuse import StepReuse
from reconciler.problems import Problem

logger = logging.getLogger(__name__)

#: Loads whose outcomes are kept: the revision in force and one candidate judged against it.
LOADS_KEPT = 2

#: (blob id, path, regular file): what decides a file's outcome, with the error room.
FileKey = tuple[str, str, bool]


@dataclass(frozen=True)
class FileOutcome:
    """The per-file part of validation: the document if it validated, its problems, the
    names it declares (for cross-file references), and the error room it was checked with
    (a file with errors may list fewer when less room was left)."""

    document: LoadedDocument | None
    problems: tuple[Problem, ...]
    declared: DeclaredNames
    room: int


class ParsedFileCache:
    """Outcomes of fleet files by blob id, for the last few loads; optionally on disk too.

    Not thread-safe: its owner serializes loads (the daemon holds the mirror lock).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._entries: dict[FileKey, FileOutcome] = {}
        self._last_used: dict[FileKey, int] = {}
        self._load = 0  # the number of the load in progress
        self._disk = _DiskCache(directory) if directory is not None else None
        self.hits = self.misses = 0  # since creation: what the benchmarks and logs show
        # The cross-file steps over every host, reused while their documents are the same
        # objects: what an unchanged blob gives back from this cache.
        self.steps = StepReuse()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: FileKey, room: int) -> FileOutcome | None:
        """The outcome of the file ``key`` names, if known and valid for ``room``."""
        outcome = self._entries.get(key)
        if outcome is None and self._disk is not None:
            outcome = self._disk.read(key)
            if outcome is not None:
                self._entries[key] = outcome
        if outcome is None or (outcome.problems and outcome.room != room):
            self.misses += 1
            return None
        self._last_used[key] = self._load
        self.hits += 1
        return outcome

    def store(self, key: FileKey, outcome: FileOutcome) -> None:
        self._entries[key] = outcome
        self._last_used[key] = self._load
        if self._disk is not None and not outcome.problems:  # only what a revision may use
            self._disk.write(key, outcome)

    def finish_load(self) -> None:
        """One load is over: forget files no recent load used (memory and disk)."""
        oldest_kept = self._load - LOADS_KEPT + 1
        stale = [key for key, used in self._last_used.items() if used < oldest_kept]
        for key in stale:
            del self._entries[key], self._last_used[key]
        if self._disk is not None and stale:
            self._disk.keep_only(self._entries.keys())
        self._load += 1


def code_fingerprint() -> str:
    """What a pickled outcome depends on besides its file: this reconciler's version and the
    source of the package that parses and validates, the pydantic and Python versions."""
    digest = hashlib.sha256()
    for part in (reconciler.__version__, pydantic.VERSION, platform.python_version()):
        digest.update(part.encode() + b"\0")
    package = Path(__file__).parent
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:24]


class _DiskCache:
    """One pickle per file version under ``<directory>/<code fingerprint>/``.

    Files are written to a temporary name and renamed, so a crash leaves either the whole
    file or none; a file that does not unpickle to an outcome is removed and parsed again.
    """

    def __init__(self, directory: Path) -> None:
        fingerprint = code_fingerprint()
        self.path = directory / fingerprint
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            for other in directory.iterdir():  # outcomes made by other code are useless
                if other.name != fingerprint and other.is_dir():
                    shutil.rmtree(other, ignore_errors=True)
        except OSError as exc:
            logger.warning("cannot keep parsed fleet files in %s: %s", directory, exc)

    def _file(self, key: FileKey) -> Path:
        blob, path, regular = key
        named = hashlib.sha256(f"{blob}\0{path}\0{regular}".encode()).hexdigest()[:32]
        return self.path / f"{named}.pickle"

    def read(self, key: FileKey) -> FileOutcome | None:
        file = self._file(key)
        try:
            with file.open("rb") as stream:
                stored_key, outcome = pickle.load(stream)
        except FileNotFoundError:
            return None
        except Exception as exc:  # truncated, or made by code this fingerprint missed
            logger.warning("parsing %s again: its cached outcome is unreadable: %s", key[1], exc)
            file.unlink(missing_ok=True)
            return None
        if stored_key != key or not isinstance(outcome, FileOutcome):
            file.unlink(missing_ok=True)
            return None
        return outcome

    def write(self, key: FileKey, outcome: FileOutcome) -> None:
        file = self._file(key)
        partial = file.with_suffix(f".{os.getpid()}.partial")
        try:
            with partial.open("wb") as stream:
                pickle.dump((key, outcome), stream, protocol=pickle.HIGHEST_PROTOCOL)
            partial.replace(file)
        except Exception as exc:  # a full disk costs the next start-up time, nothing else
            logger.warning("cannot keep the parsed %s on disk: %s", key[1], exc)
            partial.unlink(missing_ok=True)

    def keep_only(self, keys: Iterable[FileKey]) -> None:
        wanted = {self._file(key).name for key in keys}
        try:
            for file in self.path.iterdir():
                if file.name not in wanted:
                    file.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot prune parsed fleet files in %s: %s", self.path, exc)
