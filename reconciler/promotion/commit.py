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

import contextlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath

import pygit2

from reconciler.durations import format_minutes
from reconciler.errors import GitRemoteUnavailable, PromotionImpossible
from reconciler.fleetrepo.loader import load_fleet
from reconciler.fleetrepo.models import Promotion
from reconciler.fleetrepo.sources import GitRevisionSource
from reconciler.fleetrepo.yamldoc import parse_yaml
from reconciler.git.auth import GitCredentials
from reconciler.git.remote import Built, branch_refspec, push_rebuilding
from reconciler.git.writer import CommitSigner, GitIdentity, create_commit
from reconciler.promotion.check import PromotionCheck, review_branch

#: The local ref a promotion commit is pushed from.
PROMOTION_REF = "refs/reconciler/promotion"
#: How far back the history is searched for an earlier promotion of the same commit.
HISTORY_DEPTH = 1000


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
        newline = "\r\n" if lines[after - 1].endswith("\r\n") else "\n"
        lines.insert(after, f"version: {json.dumps(version)}{newline}")
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
        credentials: GitCredentials | None = None,
    ) -> None:
        self.repo, self.watched_branch = repo, watched_branch
        self.identity, self.signer, self.subdirectory = identity, signer, subdirectory
        self.credentials = credentials or GitCredentials()

    def promote(self, check: PromotionCheck, at: datetime) -> PromotionWritten:
        """Push the promotion of ``check`` to the watched branch, or to a new review branch.

        It is built on the watched branch's tip, and only if that tip is the revision in force
        when the check was made (so verified by the gate: a refused or unjudged tip is never
        built upon and signed) and still declares what the check saw: the source stream at
        the promoted commit and the stream at the commit it ran.
        """
        policy = check.policy
        assert policy is not None, "a due check carries its stream's promotion policy"
        review = review_branch(policy.branch, check.commit) if policy.branch else None
        target = review or self.watched_branch
        refspecs = [branch_refspec(self.watched_branch)]
        if review is not None:
            refspecs.append(branch_refspec(review))
        return push_rebuilding(
            self.repo,
            refspecs,
            lambda attempt: self._build(check, at, review, target, attempt),
            PROMOTION_REF,
            f"refs/heads/{target}",
            credentials=self.credentials,
            fetching="before promoting",
            gave_up=f"{target} kept moving; the promotion will be tried again later",
        )

    def _build(
        self, check: PromotionCheck, at: datetime, review: str | None, target: str, attempt: int
    ) -> Built[PromotionWritten]:
        """One attempt on the tips just fetched: the promotion commit at PROMOTION_REF to
        push, or the reason there is nothing to push."""

        def written(outcome: PromotionOutcome, commit: str | None, why: str) -> PromotionWritten:
            return PromotionWritten(outcome, target, commit, attempt, why)

        base, review_tip = self._tips(review)
        if str(base.id) != check.revision_in_force:
            # The branch moved past the revision in force: to a tip the gate refused (an
            # unsigned commit, say) or has not judged yet. Building on it and signing the
            # result would launder its content through our own signature; wait until the
            # daemon takes a tip in, and promote on that.
            return Built(
                written(
                    PromotionOutcome.OVERTAKEN,
                    None,
                    f"{self.watched_branch} is at {str(base.id)[:12]}, not at the revision in "
                    f"force ({(check.revision_in_force or 'none')[:12]}); promoting only on "
                    "a revision the reconciler has verified and taken in",
                )
            )
        for tip in (base, review_tip):
            earlier = self._earlier_promotion(tip, check) if tip is not None else None
            if earlier is not None:
                return Built(
                    written(
                        PromotionOutcome.ALREADY_IN_HISTORY,
                        earlier,
                        f"{earlier[:12]} already promotes {check.commit[:12]}",
                    )
                )
        commit = self._commit_on(base, check, at)
        if commit is None:
            return Built(
                written(
                    PromotionOutcome.OVERTAKEN,
                    None,
                    f"{check.source} or {check.stream} changed on {self.watched_branch} since "
                    "the check; checking again once that revision is taken in",
                )
            )
        self.repo.references.create(PROMOTION_REF, commit, force=True)
        pushed = written(PromotionOutcome.PUSHED, str(commit), f"pushed to {target}")
        return Built(pushed, push=True)

    def _tips(self, review: str | None) -> tuple[pygit2.Commit, pygit2.Commit | None]:
        """The watched branch's tip as just fetched, and the review branch's if it exists."""
        try:
            base = self.repo.references[f"refs/remotes/origin/{self.watched_branch}"]
        except KeyError:
            raise GitRemoteUnavailable(
                f"branch {self.watched_branch} not found in the remote"
            ) from None
        tip: pygit2.Commit | None = None
        if review is not None:
            # A review branch that was merged and deleted may linger here (fetch does not
            # prune); it still holds that promotion, which is what it is searched for.
            with contextlib.suppress(KeyError):
                tip = self.repo.references[f"refs/remotes/origin/{review}"].peel(pygit2.Commit)
        return base.peel(pygit2.Commit), tip

    def _earlier_promotion(self, tip: pygit2.Commit, check: PromotionCheck) -> str | None:
        # Newest first and stop at the cap (a topological sort would read the whole history).
        walker = self.repo.walk(tip.id, pygit2.enums.SortMode.TIME)
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
        self, base: pygit2.Commit, check: PromotionCheck, at: datetime
    ) -> pygit2.Oid | None:
        """The promotion commit on top of ``base``, validated; None when the stream or its
        source no longer declares what the check saw."""
        assert check.policy is not None
        streams = _stream_files(GitRevisionSource(self.repo.path, str(base.id), self.subdirectory))
        for name in (check.stream, check.source):
            if name not in streams:
                raise PromotionImpossible(
                    f"stream {name} is not declared in the fleet repo any more"
                )
        path, text, declared = streams[check.stream]
        if declared != check.stream_commit or streams[check.source][2] != check.commit:
            return None
        edited = set_stream_commit(text, path, check.commit, check.version)
        full_path = str(PurePosixPath(self.subdirectory, path)) if self.subdirectory else path
        index = pygit2.Index()
        index.read_tree(base.tree)
        blob = self.repo.create_blob(edited.encode())
        index.add(pygit2.IndexEntry(full_path, blob, index[full_path].mode))
        tree = index.write_tree(self.repo)
        message = promotion_message(check, check.policy)
        commit = create_commit(self.repo, tree, [base.id], message, self.identity, at, self.signer)
        result = load_fleet(GitRevisionSource(self.repo.path, str(commit), self.subdirectory))
        if result.fleet is None:  # never push a fleet the reconciler itself would refuse
            first = result.errors[0]
            raise PromotionImpossible(
                f"the promotion would not validate: {first.location()}: {first.message}"
            )
        return commit


def _stream_files(source: GitRevisionSource) -> dict[str, tuple[str, str, object]]:
    """Each stream's file at one revision: name -> (path, text, the commit it declares)."""
    found = {}
    for file in source.files():
        if not file.path.startswith("streams/"):
            continue
        text = file.read().decode()
        document, _ = parse_yaml(file.path, text.encode())
        data = document.data if document else None
        if isinstance(data, dict) and data.get("kind") == "Stream":
            found[str(data.get("name"))] = (file.path, text, data.get("commit"))
    return found
