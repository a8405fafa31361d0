"""Whether the new commits of a fleet revision are in their OSTree repositories.

One rule shared by the daemon's revision gate (which refuses a revision naming a commit its
repository does not hold, or cannot be asked about) and `reconciler plan` (which shows it to
reviewers before the merge): each stream or pin commit that is new against the base revision
is asked for in its stream's repository; a pin, in the repositories of the streams with its
remote (any stream's when it names none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from reconciler.errors import OstreeRepoUnavailable
from reconciler.fleetrepo.fleet import Fleet

CommitChecker = Callable[[str, str], bool]  # (repository URL, commit) -> exists?


class CheckResult(StrEnum):
    PRESENT = "present"
    MISSING = "missing"
    UNCHECKABLE = "uncheckable"  # the repository could not be asked
    SKIPPED = "skipped"  # no checker (--no-commit-check) or no repository URL declared


@dataclass(frozen=True)
class CommitCheck:
    """Whether a new stream or pin commit is in its OSTree repository, as the daemon asks."""

    subject: str  # stream_subject() or pin_subject(): what was checked, and the key to it
    commit: str
    urls: tuple[str, ...]
    result: CheckResult
    detail: str


def stream_subject(stream: str) -> str:
    """The subject of the check of a stream's commit: `stream production`."""
    return f"stream {stream}"


def pin_subject(group: str) -> str:
    """The subject of the check of a group's pin: `group callservers-fra-dsp (pinned)`."""
    return f"group {group} (pinned)"


def commit_checks(
    proposed: Fleet, base: Fleet | None, exists: CommitChecker | None
) -> tuple[CommitCheck, ...]:
    """Ask for each stream and pin commit that is new against ``base``, in the repositories
    the daemon asks (a pin: those of the streams with its remote, any stream's without)."""
    checks: list[CommitCheck] = []
    answers: dict[tuple[str, str], bool | str] = {}
    for name, stream in sorted(proposed.streams.items()):
        before = base.streams.get(name) if base else None
        if before is not None and before.commit == stream.commit:
            continue
        urls: tuple[str, ...] = (stream.url,) if stream.url else ()
        checks.append(_check(stream_subject(name), stream.commit, urls, exists, answers))
    for name, group in sorted(proposed.groups.items()):
        pin = group.pin
        old = base.groups.get(name) if base else None
        if pin is None or (
            old is not None and old.pin is not None and old.pin.commit == pin.commit
        ):
            continue
        urls = tuple(
            sorted(
                {
                    s.url
                    for s in proposed.streams.values()
                    if s.url and (pin.remote is None or s.remote == pin.remote)
                }
            )
        )
        checks.append(_check(pin_subject(name), pin.commit, urls, exists, answers))
    return tuple(checks)


def _check(
    subject: str,
    commit: str,
    urls: tuple[str, ...],
    exists: CommitChecker | None,
    answers: dict[tuple[str, str], bool | str],
) -> CommitCheck:
    if exists is None or not urls:
        why = "not asked (--no-commit-check)" if urls else "no repository URL declared"
        return CommitCheck(subject, commit, urls, CheckResult.SKIPPED, why)
    unreachable = []
    for url in urls:
        if (url, commit) not in answers:
            try:
                answers[url, commit] = exists(url, commit)
            except OstreeRepoUnavailable as exc:
                answers[url, commit] = str(exc)
        answer = answers[url, commit]
        if answer is True:
            return CommitCheck(subject, commit, urls, CheckResult.PRESENT, f"in {url}")
        if isinstance(answer, str):
            unreachable.append(answer)
    if unreachable:
        return CommitCheck(subject, commit, urls, CheckResult.UNCHECKABLE, "; ".join(unreachable))
    return CommitCheck(subject, commit, urls, CheckResult.MISSING, f"not in {', '.join(urls)}")
