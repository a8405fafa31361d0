"""greenboot's verdict on the current boot, from what greenboot leaves on the host."""

from pathlib import Path
from typing import Optional

from reconciler.agent.runner import CommandFailed, Runner

#: greenboot writes "Boot Status is GREEN - Health Check SUCCESS" or
#: "Boot Status is RED - Health Check FAILURE!" here once its checks have run.
MOTD_FILE = "/run/motd.d/boot-status"


def greenboot_status(motd_file: str = MOTD_FILE, runner: Optional[Runner] = None) -> str:
    """``green``, ``red`` or ``unknown``."""
    try:
        text = Path(motd_file).read_text(errors="replace").upper()
    except OSError:
        text = ""
    if "BOOT STATUS IS GREEN" in text:
        return "green"
    if "BOOT STATUS IS RED" in text:
        return "red"
    if runner is not None:  # no motd yet: ask systemd how the health check unit ended
        try:  # exits 0 only when the unit failed
            runner.run(
                ["systemctl", "is-failed", "--quiet", "greenboot-healthcheck.service"], timeout=30
            )
            return "red"
        except CommandFailed:
            pass
    return "unknown"
