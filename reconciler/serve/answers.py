"""What the API sends a host: its assignment as JSON, shared by the hosts of a group that are
told the same thing, so that answering costs per kind of answer rather than per host."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

from reconciler.rollout.reasons import ReasonCode
from reconciler.serve.schemas import Assignment, ReasonOut

#: How soon an agent with work to do reports again, and the longest it stays silent.
BUSY_REPORT_SECONDS = 15
IDLE_REPORT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API sends a host: its assignment as JSON, with what a long-poll compares."""

    assignment_id: str
    group: str | None
    body: bytes


#: Stands for the host's name in an answer that hosts with equal plans share.
HOST_SLOT = "\x00host\x00"
HOST_SLOT_JSON = json.dumps(HOST_SLOT).encode()


@dataclass(frozen=True, slots=True)
class SharedAnswer:
    """An answer as JSON cut where the host's name goes, so that the hosts of a group with
    equal plans share one (an answer cache costs per kind of answer, not per host)."""

    assignment_id: str
    group: str | None
    head: bytes
    tail: bytes

    @classmethod
    def of(cls, assignment: Assignment) -> SharedAnswer:
        """``assignment``, made out to :data:`HOST_SLOT`."""
        body = assignment.model_dump_json(by_alias=True).encode()
        head, tail = body.split(HOST_SLOT_JSON)  # no other field holds a NUL: one cut
        return cls(assignment.assignment_id, assignment.group, head, tail)

    def to(self, host: str) -> Answer:
        name = json.dumps(host, ensure_ascii=False).encode()
        return Answer(self.assignment_id, self.group, b"".join((self.head, name, self.tail)))


def unmanaged_assignment(host: str) -> Assignment:
    return Assignment(
        host=host,
        group=None,
        action="none",
        state="unmanaged",
        target=None,
        reason=ReasonOut(code=ReasonCode.NOT_A_MEMBER, message="in the inventory but in no group"),
        report_after_seconds=IDLE_REPORT_SECONDS,
        assignment_id=assignment_id("none", "", "not_a_member"),
    )


def unmanaged_answer(host: str) -> Answer:
    """What a host of the inventory that no group selects is told: the same for all."""
    return _unmanaged_shared().to(host)


@functools.cache
def _unmanaged_shared() -> SharedAnswer:
    return SharedAnswer.of(unmanaged_assignment(HOST_SLOT))


@functools.lru_cache(maxsize=4096)  # few distinct ids: hosts share one string, not a copy each
def assignment_id(action: str, commit: str, code: str) -> str:
    return hashlib.sha256(f"{action}|{commit}|{code}".encode()).hexdigest()[:16]
