"""One report/apply cycle: read the host, report it, do what the answer says, safely."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

from reconciler.agent import AGENT_VERSION
from reconciler.agent.deployments import HostStatus
from reconciler.agent.drain import DeferralFile, PreRebootHook, RebootDeferral, deferral_after
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


class LastApply(NamedTuple):
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
        reboot_command: List[str],
        runner: Runner,
        host_name: Optional[str] = None,
        boot_id_file: str = BOOT_ID_FILE,
        greenboot_file: Optional[str] = None,
        pre_reboot: Optional[PreRebootHook] = None,
        deferral_file: Optional[DeferralFile] = None,
    ) -> None:
        self.backend, self.runner = backend, runner
        self.reboot_command = reboot_command
        self.host_name = host_name
        self.boot_id_file = boot_id_file
        self.greenboot_file = greenboot_file
        self.last_apply: Optional[LastApply] = None
        self.known_assignment: Optional[str] = None
        self.pre_reboot = pre_reboot
        self.deferral_file = deferral_file or DeferralFile(None)
        #: A reboot the server allowed and the pre-reboot command held back (drain.py).
        self.deferral: Optional[RebootDeferral] = self.deferral_file.load()

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
        if self.deferral is not None:
            body["rebootDeferred"] = self.deferral.to_json()
        if self.host_name:
            body["host"] = self.host_name
        return body

    def apply(self, assignment: Dict[str, Any]) -> str:
        """Do what ``assignment`` says, if it is still needed; return what was done.

        Idempotent: a target already staged is not deployed again. A reboot happens only
        for an assignment that says `reboot` now, only once the target is staged, and only
        when the pre-reboot command (if any) succeeded; otherwise the reboot is deferred.
        """
        known = assignment.get("assignmentId")
        self.known_assignment = known if isinstance(known, str) else None
        action = assignment.get("action")
        target = assignment.get("target")
        target = target if isinstance(target, dict) else {}
        commit = str(target.get("commit") or "")
        if self.deferral is not None and (action, commit) != ("reboot", self.deferral.commit):
            self._defer(None)  # the server no longer asks for the reboot that was held back
        if action not in ("stage", "reboot", "unstage"):
            return "nothing to do"
        if action != "unstage":
            # What the server says goes into command lines and the origin file: accept only
            # what the fleet repo accepts (agent/rules.py), nothing that could pass as an
            # option, a path or a second line.
            problem = _invalid_target(target.get("commit"), target.get("remote"), target.get("ref"))
            if problem:
                return f"not applying: {problem}"
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
            held = self._drain(commit)
            if held:
                return held
            return self._attempt("reboot", commit, lambda: self.runner.run(self.reboot_command))
        return "target already staged"

    def _drain(self, commit: str) -> Optional[str]:
        """Run the pre-reboot command; why the reboot is held back, or None to go ahead."""
        if self.pre_reboot is None:
            self._defer(None)
            return None
        result = self.pre_reboot.run()
        if result.ok:
            self._defer(None)
            return None
        self._defer(deferral_after(self.deferral, commit, result))
        return f"reboot deferred: the pre-reboot command did not succeed ({result.message})"

    def _defer(self, deferral: Optional[RebootDeferral]) -> None:
        if deferral != self.deferral:
            self.deferral = deferral
            self.deferral_file.save(deferral)

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
