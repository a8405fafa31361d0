"""The drain hook: a command that must succeed before the agent reboots the host.

A host that carries live work (calls, sessions) can be told to reboot by the server at any
moment the rollout allows. ``--pre-reboot-command`` lets the host say "not yet": the agent
runs it before every reboot the server allows, and reboots only when it exits 0. A non-zero
exit, a timeout (the whole process group is killed) or a command that cannot start defers
the reboot: the agent reports ``rebootDeferred`` (since when, the command's last output line)
and tries again on its next cycle, for as long as the server still asks for a reboot into
the same commit.

The deferral is kept in a small JSON file in the state directory, so ``since`` survives an
agent restart (and every ``--once`` run from a timer is a restart): the server measures how
long the host has been draining from it.
"""

import contextlib
import json
import logging
import os
import signal
import subprocess
from datetime import datetime, timezone
from typing import Any, Dict, List, NamedTuple, Optional

from reconciler.agent.files import write_atomically

log = logging.getLogger("reconciler-agent")

#: The longest ``message`` the report carries (the wire contract's limit).
MAX_MESSAGE = 256
DEFERRAL_FILE_NAME = "reboot-deferral.json"
#: How long the output of a killed command may take to drain from its pipe.
_AFTER_KILL = 2.0


class HookResult(NamedTuple):
    """How one run of the pre-reboot command ended."""

    exit_code: Optional[int]  # None when it timed out or could not start
    timed_out: bool
    message: str  # its last non-empty output line, or a sentence saying what happened

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class RebootDeferral(NamedTuple):
    """A reboot into ``commit`` held back since ``since`` because the command failed."""

    commit: str
    since: str  # ISO-8601 UTC, the first deferral of this reboot
    message: str
    exit_code: Optional[int]
    timed_out: bool

    def to_json(self) -> Dict[str, Any]:
        """The report's ``rebootDeferred`` field."""
        return {
            "since": self.since,
            "message": self.message,
            "exitCode": self.exit_code,
            "timedOut": self.timed_out,
        }


class PreRebootHook:
    """Runs the pre-reboot command in its own process group, with a timeout."""

    def __init__(self, argv: List[str], timeout: float) -> None:
        self.argv, self.timeout = argv, timeout

    def run(self) -> HookResult:
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout kills it all
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            return HookResult(None, False, _cut(f"cannot start {self.argv[0]}: {exc}"))
        try:
            output, _ = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            output = _kill_group(process)
            last = _last_line(output, self.argv)
            message = f"timed out after {self.timeout:g}s"
            return HookResult(
                None, True, _cut(message + ("; last output: " + last if last else ""))
            )
        last = _last_line(output, self.argv)
        code = process.returncode
        if code == 0:
            return HookResult(0, False, _cut(last or "exited 0"))
        if code < 0:
            return HookResult(code, False, _cut(last or f"killed by signal {-code}"))
        return HookResult(code, False, _cut(last or f"exited {code} with no output"))


def _kill_group(process: "subprocess.Popen[str]") -> str:
    """Kill the command and everything it started; whatever it printed until then."""
    with contextlib.suppress(ProcessLookupError):  # it ended just as the timeout expired
        os.killpg(process.pid, signal.SIGKILL)
    try:
        output, _ = process.communicate(timeout=_AFTER_KILL)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
        process.kill()
        if process.stdout is not None:
            process.stdout.close()
        process.wait()
        return ""
    return output or ""


def _last_line(output: Optional[str], argv: List[str]) -> str:
    """Log every output line of the command; return the last non-empty one."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    for line in lines:
        log.info("pre-reboot command %s: %s", argv[0], line)
    return lines[-1] if lines else ""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def deferral_after(
    previous: Optional[RebootDeferral], commit: str, result: HookResult
) -> RebootDeferral:
    """The deferral after ``result`` failed: ``since`` is kept for the same reboot."""
    same = previous is not None and previous.commit == commit
    since = previous.since if previous is not None and same else _now()
    return RebootDeferral(commit, since, result.message, result.exit_code, result.timed_out)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class DeferralFile:
    """The deferral on disk (or nowhere, with no path): survives a restart of the agent."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path

    def load(self) -> Optional[RebootDeferral]:
        if not self.path:
            return None
        try:
            with open(self.path, encoding="utf-8") as handle:
                raw = json.load(handle)
            exit_code = raw["exitCode"]
            return RebootDeferral(
                str(raw["commit"]),
                str(raw["since"]),
                str(raw["message"]),
                exit_code if isinstance(exit_code, int) else None,
                bool(raw["timedOut"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the reboot deferral in %s: %s", self.path, exc)
            return None

    def save(self, deferral: Optional[RebootDeferral]) -> None:
        """Keep ``deferral`` (None: remove the file); a failure is logged, not raised:
        the deferral still holds in memory, only a restart would forget its ``since``."""
        if not self.path:
            return
        try:
            if deferral is None:
                if os.path.lexists(self.path):
                    os.unlink(self.path)
                return
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
            body = dict(deferral.to_json(), commit=deferral.commit)
            write_atomically(self.path, json.dumps(body, sort_keys=True) + "\n")
        except OSError as exc:
            log.warning("cannot keep the reboot deferral in %s: %s", self.path, exc)
