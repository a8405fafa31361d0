"""One report/apply cycle: read the host, report it, do what the answer says, safely."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from reconciler.agent import AGENT_VERSION
from reconciler.agent.deployments import HostStatus
from reconciler.agent.greenboot import greenboot_status
from reconciler.agent.rules import (
    MEANINGS,
    REF_PATTERN,
    REMOTE_PATTERN,
    is_commit,
    is_ref,
    is_remote,
)
from reconciler.agent.runner import CommandFailed, Runner

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


@dataclass
class LastApply:
    action: str
    commit: str
    ok: bool
    error: Optional[str]
    at: str

    def to_json(self) -> Dict[str, Any]:
        return {
            "action": self.action,
            "commit": self.commit,
            "ok": self.ok,
            "error": self.error,
            "at": self.at,
        }


class Agent:
    """Builds reports and applies assignments through a backend (rpm-ostree or ostree)."""

    def __init__(
        self,
        backend: Any,
        reboot_command: list[str],
        runner: Runner,
        host_name: Optional[str] = None,
        boot_id_file: str = BOOT_ID_FILE,
        greenboot_file: Optional[str] = None,
    ) -> None:
        self.backend, self.runner = backend, runner
        self.reboot_command = reboot_command
        self.host_name = host_name
        self.boot_id_file = boot_id_file
        self.greenboot_file = greenboot_file
        self.last_apply: Optional[LastApply] = None
        self.known_assignment: Optional[str] = None

    def boot_id(self) -> Optional[str]:
        try:
            return Path(self.boot_id_file).read_text(errors="replace").strip() or None
        except OSError:
            return None

    def report(self, status: Optional[HostStatus] = None) -> Dict[str, Any]:
        """The report body: deployments, boot id, greenboot, last apply, agent version."""
        status = status or self.backend.status()
        kwargs = {"motd_file": self.greenboot_file} if self.greenboot_file else {}
        body: Dict[str, Any] = {
            "agentVersion": AGENT_VERSION,
            "backend": self.backend.name,
            "bootId": self.boot_id(),
            "booted": status.booted.to_json() if status.booted else None,
            "staged": status.staged.to_json() if status.staged else None,
            "rollback": status.rollback.to_json() if status.rollback else None,
            "transactionRunning": status.transaction,
            "statusError": status.error,
            "greenboot": greenboot_status(runner=self.runner, **kwargs),
            "lastApply": self.last_apply.to_json() if self.last_apply else None,
            "knownAssignment": self.known_assignment,
        }
        if self.host_name:
            body["host"] = self.host_name
        return body

    def apply(self, assignment: Dict[str, Any]) -> str:
        """Do what ``assignment`` says, if it is still needed; return what was done.

        Idempotent: a target already staged is not deployed again. A reboot happens only
        for an assignment that says `reboot` now and only once the target is staged.
        """
        known = assignment.get("assignmentId")
        self.known_assignment = known if isinstance(known, str) else None
        action = assignment.get("action")
        target = assignment.get("target")
        target = target if isinstance(target, dict) else {}
        if action not in ("stage", "reboot", "unstage"):
            return "nothing to do"
        if action != "unstage":
            # What the server says goes into command lines and the origin file: accept only
            # what the fleet repo accepts (agent/rules.py), nothing that could pass as an
            # option, a path or a second line.
            problem = _invalid_target(target.get("commit"), target.get("remote"), target.get("ref"))
            if problem:
                return f"not applying: {problem}"
        commit = str(target.get("commit") or "")
        status = self.backend.status()
        if status.error or status.booted is None:
            return f"not applying: cannot read the host's deployments ({status.error})"
        if status.transaction:
            return "not applying: an rpm-ostree transaction is running"
        if action == "unstage":
            if status.staged is None:
                return "nothing staged"
            return self._attempt("unstage", status.staged.base_checksum, self.backend.unstage)
        if status.booted.base_checksum == commit:
            return "already booted the target"
        staged = status.staged is not None and status.staged.base_checksum == commit
        if not staged:
            result = self._attempt(
                "stage",
                commit,
                lambda: self.backend.stage(commit, target.get("remote"), target.get("ref"), status),
            )
            if action == "stage" or not self.last_apply or not self.last_apply.ok:
                return result
        if action == "reboot":
            return self._attempt("reboot", commit, lambda: self.runner.run(self.reboot_command))
        return "target already staged"

    def _attempt(self, action: str, commit: str, work: Any) -> str:
        at = datetime.now(timezone.utc).isoformat()
        try:
            work()
        except CommandFailed as exc:
            self.last_apply = LastApply(action, commit, False, str(exc)[:2000], at)
            return f"{action} failed: {exc}"
        self.last_apply = LastApply(action, commit, True, None, at)
        return f"{action} {commit[:12]} done"


def _invalid_target(commit: Any, remote: Any, ref: Any) -> Optional[str]:
    """Why an assignment's target is unusable, or None when it is well-formed."""
    if not is_commit(commit):
        return f"target commit {_shown(commit)} is not an OSTree checksum (64 lowercase hex)"
    if remote is not None and not is_remote(remote):
        return f"target remote {_shown(remote)} is not {MEANINGS[REMOTE_PATTERN]}"
    if ref is not None and not is_ref(ref):
        return f"target ref {_shown(ref)} is not {MEANINGS[REF_PATTERN]}"
    return None


def _shown(value: Any) -> str:
    """A value from the server for a message: repr() escapes newlines; long ones are cut."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
