"""What blocks a group's rollout or the whole revision, as the daemon would decide it: a halt
that no new `resume` value lifts, a dependency that has not completed the commit, a commit its
OSTree repository does not hold or cannot be asked about. Each is a :class:`Blocker`, data
with a code and a sentence."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.fleetrepo.fleet import Fleet, Target
from reconciler.ostree.commits import CheckResult, CommitCheck
from reconciler.review.live import LiveGroup, LiveState
from reconciler.review.model import Blocker, BlockerCode, ChangeKind, CommitRef, GroupReview
from reconciler.rollout.spec import GroupSpec

TROUBLE = frozenset({CheckResult.MISSING, CheckResult.UNCHECKABLE})


def halt_blockers(
    live_group: LiveGroup, spec: GroupSpec, to: CommitRef, blockers: list[Blocker], notes: list[str]
) -> None:
    """A halt holds until Git changes the desired commit or sets a new `resume` value, the
    same test the planner makes (``resume_if_asked``)."""
    if live_group.commit != to.commit:
        notes.append(
            "starts a new rollout, which ends the halted rollout to "
            + CommitRef(live_group.commit, live_group.version).label
        )
    elif spec.resume_token and spec.resume_token != live_group.halt_resume_token:
        notes.append(f"resumes the halted rollout (`resume: {spec.resume_token}`)")
    else:
        blockers.append(
            Blocker(
                BlockerCode.HALTED,
                f"{live_group.reason}; set a new `resume` value once the cause is understood",
            )
        )


def dependency_blockers(
    proposed: Fleet,
    base: Fleet | None,
    live: LiveState | None,
    spec: GroupSpec,
    earlier: Mapping[str, GroupReview],
) -> list[Blocker]:
    """A group opens its first wave for a commit only once every group it depends on has
    completed that commit (rule 8). Without live state, a dependency that moves to the commit
    in this same change is a wait; one that runs another commit blocks."""
    target, label = spec.target.commit, _ref(spec.target).label
    blockers = []
    for dependency in spec.depends_on:
        theirs = _ref(proposed.target(dependency))
        why = f"waits for {dependency} to complete {label}"
        if live is not None:
            seen = live.groups.get(dependency)
            if seen is not None and target in seen.completed_commits:
                continue
            if seen is not None and seen.commit == target:
                why += f" (it is {seen.phase})"
        elif (
            base is not None
            and dependency in base.groups
            and theirs.commit == target == base.target(dependency).commit
        ):
            continue  # declared on it before this change; without --against, assumed done
        dep_review = earlier.get(dependency)
        if theirs.commit != target:
            why += f"; {dependency} is set to run {theirs.label}"
            blockers.append(Blocker(BlockerCode.DEPENDS_ON_PENDING, why))
        elif dep_review is not None and dep_review.blocked:
            why += f"; {dependency} is blocked"
            blockers.append(Blocker(BlockerCode.DEPENDS_ON_PENDING, why))
        else:
            if dep_review is not None and dep_review.kind in (ChangeKind.NEW, ChangeKind.COMMIT):
                why += ", which this change also starts there"
            blockers.append(Blocker(BlockerCode.DEPENDS_ON_PENDING, why, blocking=False))
    return blockers


def commit_blockers(to: CommitRef, check: CommitCheck | None) -> list[Blocker]:
    """The group's share of a failed preflight of its stream or pin (the whole revision is
    refused for it)."""
    if check is None:
        return []
    if check.result is CheckResult.MISSING:
        return [
            Blocker(
                BlockerCode.COMMIT_MISSING,
                f"{to.label} ({to.commit[:12]}) is not in its OSTree repository; "
                "the reconciler refuses the revision",
            )
        ]
    return [
        Blocker(
            BlockerCode.COMMIT_UNCHECKABLE,
            f"cannot check that {to.label} ({to.commit[:12]}) is in its OSTree repository; "
            "the reconciler refuses the revision",
        )
    ]


def check_blocker(check: CommitCheck) -> Blocker:
    if check.result is CheckResult.MISSING:
        return Blocker(
            BlockerCode.COMMIT_MISSING,
            f"{check.subject}: commit {check.commit[:12]} is not in {', '.join(check.urls)}; "
            "the reconciler refuses the whole revision",
        )
    return Blocker(
        BlockerCode.COMMIT_UNCHECKABLE,
        f"{check.subject}: cannot check commit {check.commit[:12]}: {check.detail}; "
        "the reconciler refuses a revision it cannot check",
    )


def _ref(target: Target) -> CommitRef:
    return CommitRef(target.commit, target.version)
