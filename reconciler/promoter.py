"""Writing a promotion into the fleet repo: one commit that changes the promoted stream's
commit, as auditable as a human's merge.

The commit changes only the ``commit:`` (and ``version:``) lines of the stream's file, keeps
every comment, is validated as a whole fleet before it is pushed, carries trailers that say
why (``Promoted-From``, ``Soaked-For``, ``Healthy-Hosts``, ``Source-Revision``), is authored by
the configured identity and signed when a key is configured. It is pushed as a fast-forward
only: when someone pushed first, the edit is made again on their tip (a rebase of a one-file
change) and pushed again. The history is searched for an earlier promotion of the same
commit first, so a promotion is never made twice, even by a reconciler that lost its state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath

import pygit2

from reconciler.durations import format_minutes
from reconciler.errors import GitPushRejected, GitRemoteUnavailable, PromotionImpossible
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.models import Promotion
from reconciler.fleetrepo.sources import GitRevisionSource
from reconciler.fleetrepo.yamldoc import parse_yaml
from reconciler.gitwriter import CommitSigner, GitIdentity, create_commit, push
from reconciler.promotion import PromotionCheck

#: The local ref a promotion commit is pushed from.
PROMOTION_REF = "refs/reconciler/promotion"
#: How far back the history is searched for an earlier promotion of the same commit.
HISTORY_DEPTH = 1000
MAX_ATTEMPTS = 5


class PromotionOutcome(StrEnum):
    PUSHED = "pushed"
    ALREADY_IN_HISTORY = "already_in_history"  # Git already holds this promotion
    OVERTAKEN = "overtaken"  # someone changed the stream meanwhile; nothing to do now


@dataclass(frozen=True)
class PromotionWritten:
    outcome: PromotionOutcome
    branch: str
    commit: str | None  # the promotion commit (pushed, or found in the history)
    rebased: int = 0  # times it was made again on a tip someone else pushed
    message: str = ""


def promotion_message(check: PromotionCheck, policy: Promotion) -> str:
    """Subject, a paragraph that says why, and the trailers auditors and tools read."""
    version = f" {check.version}" if check.version else f" {check.commit[:12]}"
    hosts = ", ".join(check.healthy_hosts)
    return (
        f"{check.stream}: promote{version} from {check.source}\n"
        "\n"
        f"{check.source} has run {check.commit[:12]} for {format_minutes(check.soaked_for)} "
        f"on {len(check.healthy_hosts)} healthy hosts ({hosts}) with no failure. The "
        f"promotion policy of {check.stream} asks for {format_minutes(policy.soak_time)} on "
        f"at least {policy.min_healthy_hosts}. Made by the fleet reconciler; revert this "
        "commit to undo it (the commit will not be promoted again).\n"
        "\n"
        f"Promoted-From: {check.source}\n"
        f"Promoted-To: {check.stream}\n"
        f"Promoted-Commit: {check.commit}\n"
        f"Soaked-For: {format_minutes(check.soaked_for)}\n"
        f"Healthy-Hosts: {len(check.healthy_hosts)}\n"
        f"Source-Revision: {check.source_revision or 'unknown'}\n"
    )


def trailers(message: str) -> dict[str, str]:
    """The ``Key: value`` trailers of a commit message's last paragraph."""
    last = message.strip().split("\n\n")[-1]
    found = {}
    for line in last.splitlines():
        key, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key):
            found[key] = value.strip()
    return found


def set_stream_commit(text: str, file: str, commit: str, version: str | None) -> str:
    """``text`` of a stream file with its top-level ``commit`` (and ``version``) replaced,
    leaving every other line, and the comments on these lines, as they were."""
    document, _problems = parse_yaml(file, text.encode())
    if document is None or not isinstance(document.data, dict):
        raise PromotionImpossible(f"{file} is not a YAML mapping")
    lines = text.splitlines(keepends=True)

    def replace_value(key: str, value: str) -> None:
        index = document.positions[(key,)].line - 1
        match = re.match(rf"^({key}:[ \t]*)(\"[^\"]*\"|'[^']*'|[^\s#]+)(.*)$", lines[index], re.S)
        if match is None:
            raise PromotionImpossible(
                f"{file}:{index + 1}: cannot edit `{key}` (not a plain scalar)"
            )
        lines[index] = match.group(1) + value + match.group(3)

    replace_value("commit", _scalar(commit))
    if version is not None and "version" in document.data:
        replace_value("version", json.dumps(version))
    elif version is not None:
        after = document.positions[("commit",)].line
        lines.insert(after, f"version: {json.dumps(version)}\n")
    elif "version" in document.data:  # a version that no longer describes the commit misleads
        del lines[document.positions[("version",)].line - 1]
    return "".join(lines)


def _scalar(commit: str) -> str:
    # An all-digit commit id would be read back as a number; quote only then.
    return json.dumps(commit) if commit.isdigit() else commit


class PromotionWriter:
    """Makes and pushes promotion commits in the daemon's bare mirror of the fleet repo."""

    def __init__(
        self,
        repo: pygit2.Repository,
        watched_branch: str,
        identity: GitIdentity,
        signer: CommitSigner | None = None,
        subdirectory: str = "",
    ) -> None:
        self.repo, self.watched_branch = repo, watched_branch
        self.identity, self.signer, self.subdirectory = identity, signer, subdirectory

    def promote(
        self, check: PromotionCheck, policy: Promotion, expected_commit: str, at: datetime
    ) -> PromotionWritten:
        """Push the promotion of ``check`` to the review branch or the watched branch.

        ``expected_commit`` is what the stream runs in the revision the check was made on;
        a tip where it is something else was changed by someone since, and is left alone.
        """
        branch = policy.branch or self.watched_branch
        for attempt in range(MAX_ATTEMPTS):
            base = self._fetch(branch)
            earlier = self._earlier_promotion(base, check)
            if earlier is not None:
                return PromotionWritten(
                    PromotionOutcome.ALREADY_IN_HISTORY,
                    branch,
                    earlier,
                    attempt,
                    f"{earlier[:12]} on {branch} already promotes {check.commit[:12]}",
                )
            commit = self._commit_on(base, check, policy, expected_commit, at)
            if commit is None:
                return PromotionWritten(
                    PromotionOutcome.OVERTAKEN,
                    branch,
                    None,
                    attempt,
                    f"stream {check.stream} changed on {branch} since; checking again",
                )
            self.repo.references.create(PROMOTION_REF, commit, force=True)
            try:
                push(self.repo, PROMOTION_REF, f"refs/heads/{branch}")
            except GitPushRejected:
                continue  # someone pushed first: make the same change on their tip
            return PromotionWritten(
                PromotionOutcome.PUSHED, branch, str(commit), attempt, f"pushed to {branch}"
            )
        raise GitPushRejected(f"{branch} kept moving; the promotion will be tried again later")

    def _fetch(self, branch: str) -> pygit2.Commit:
        """The tip to build on: the branch's, or the watched branch's for a new review branch."""
        refspecs = [f"+refs/heads/{self.watched_branch}:refs/remotes/origin/{self.watched_branch}"]
        if branch != self.watched_branch:
            refspecs.append(f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        try:
            self.repo.remotes["origin"].fetch(refspecs)
        except (pygit2.GitError, KeyError, OSError) as exc:
            raise GitRemoteUnavailable(f"cannot fetch before promoting: {exc}") from exc
        for name in (branch, self.watched_branch):
            try:
                return self.repo.references[f"refs/remotes/origin/{name}"].peel(pygit2.Commit)
            except KeyError:
                continue
        raise GitRemoteUnavailable(f"branch {self.watched_branch} not found in the remote")

    def _earlier_promotion(self, tip: pygit2.Commit, check: PromotionCheck) -> str | None:
        walker = self.repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL)
        for depth, commit in enumerate(walker):
            if depth >= HISTORY_DEPTH:
                break
            found = trailers(commit.message)
            if (
                found.get("Promoted-To") == check.stream
                and found.get("Promoted-Commit") == check.commit
            ):
                return str(commit.id)
        return None

    def _commit_on(
        self,
        base: pygit2.Commit,
        check: PromotionCheck,
        policy: Promotion,
        expected_commit: str,
        at: datetime,
    ) -> pygit2.Oid | None:
        """The promotion commit on top of ``base``, validated; None when the stream moved."""
        source = GitRevisionSource(self.repo.path, str(base.id), self.subdirectory)
        path, text = self._stream_file(source, check.stream)
        document, _ = parse_yaml(path, text.encode())
        declared = (
            document.data.get("commit") if document and isinstance(document.data, dict) else None
        )
        if declared != expected_commit:
            return None
        edited = set_stream_commit(text, path, check.commit, check.version)
        full_path = str(PurePosixPath(self.subdirectory, path)) if self.subdirectory else path
        index = pygit2.Index()
        index.read_tree(base.tree)
        blob = self.repo.create_blob(edited.encode())
        index.add(pygit2.IndexEntry(full_path, blob, index[full_path].mode))
        tree = index.write_tree(self.repo)
        commit = create_commit(
            self.repo,
            tree,
            [base.id],
            promotion_message(check, policy),
            self.identity,
            at,
            self.signer,
        )
        result = load_fleet(GitRevisionSource(self.repo.path, str(commit), self.subdirectory))
        if result.fleet is None:  # never push a fleet the reconciler itself would refuse
            first = result.errors[0]
            raise PromotionImpossible(
                f"the promotion would not validate: {first.location()}: {first.message}"
            )
        return commit

    def _stream_file(self, source: GitRevisionSource, stream: str) -> tuple[str, str]:
        for file in source.files():
            if not file.path.startswith("streams/"):
                continue
            text = file.read().decode()
            document, _ = parse_yaml(file.path, text.encode())
            data = document.data if document else None
            if (
                isinstance(data, dict)
                and data.get("kind") == "Stream"
                and data.get("name") == stream
            ):
                return file.path, text
        raise PromotionImpossible(f"stream {stream} is not declared in the fleet repo any more")
