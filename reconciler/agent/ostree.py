"""The plain-ostree backend: `ostree pull` and `ostree admin deploy` into a sysroot.

Used on hosts without rpm-ostree and, with `--sysroot`, in tests against a real sysroot
that was never booted. Such a sysroot has no booted deployment; `--booted-commit-file`
names a file holding the checksum to treat as booted, which a simulated reboot writes.
"""

import re
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from reconciler.agent.deployments import Deployment, HostStatus, split_refspec
from reconciler.agent.runner import CommandFailed, Runner

_HEADER = re.compile(
    r"^(?P<mark>[* ]) (?P<os>\S+) (?P<checksum>[0-9a-f]{64})\.\d+"
    r"(?P<flags>(?: \([a-z]+\))*)\s*$"
)


def parse_admin_status(text: str) -> List[Tuple[bool, Deployment]]:
    """Deployments from `ostree admin status`, in boot order, each with whether it is booted."""
    found: List[Dict[str, Any]] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        detail = line.strip()
        if header:
            found.append(
                {
                    "booted": header.group("mark") == "*",
                    "checksum": header.group("checksum"),
                    "version": None,
                    "origin": None,
                    "pinned": False,
                }
            )
        elif found and detail.startswith("Version:"):
            found[-1]["version"] = detail.split(":", 1)[1].strip()
        elif found and detail.startswith("origin refspec:"):
            found[-1]["origin"] = detail.split(":", 1)[1].strip()
        elif found and detail == "Pinned: yes":
            found[-1]["pinned"] = True
    return [
        (
            d["booted"],
            Deployment(d["checksum"], d["checksum"], d["version"], d["origin"], d["pinned"]),
        )
        for d in found
    ]


class OstreeBackend:
    """Talks to `ostree admin` for one OS in one sysroot."""

    name = "ostree"

    def __init__(
        self,
        runner: Runner,
        os_name: str,
        sysroot: Optional[str] = None,
        booted_commit_file: Optional[str] = None,
        command: str = "ostree",
    ) -> None:
        self.runner, self.os_name, self.command = runner, os_name, command
        self.sysroot = sysroot
        self.booted_commit_file = booted_commit_file

    def _admin(self, *args: str) -> List[str]:
        sysroot = [f"--sysroot={self.sysroot}"] if self.sysroot else []
        return [self.command, "admin", *args, *sysroot]

    def _repo(self) -> str:
        return str(Path(self.sysroot or "/") / "ostree" / "repo")

    def status(self) -> HostStatus:
        try:
            listed = parse_admin_status(self.runner.run(self._admin("status")))
        except CommandFailed as exc:
            return HostStatus(error=str(exc))
        if not listed:
            return HostStatus(error="ostree admin status lists no deployment")
        booted_index = next((i for i, (booted, _) in enumerate(listed) if booted), None)
        if booted_index is None and self.booted_commit_file:
            try:
                simulated = Path(self.booted_commit_file).read_text(errors="replace").strip()
            except OSError:
                simulated = ""
            booted_index = next(
                (i for i, (_, d) in enumerate(listed) if d.checksum == simulated), None
            )
        if booted_index is None:
            return HostStatus(error="no booted deployment in this sysroot")
        deployments = [d for _, d in listed]
        return HostStatus(
            booted=deployments[booted_index],
            staged=deployments[0] if booted_index > 0 else None,
            rollback=(
                deployments[booted_index + 1] if booted_index + 1 < len(deployments) else None
            ),
        )

    def stage(
        self, commit: str, remote: Optional[str], ref: Optional[str], current: HostStatus
    ) -> None:
        origin_remote, origin_ref = split_refspec(current.booted.origin if current.booted else None)
        remote, ref = remote or origin_remote, ref or origin_ref
        if remote is None:
            raise CommandFailed(
                "no OSTree remote to pull from: the assignment names none and "
                "the booted deployment has no remote in its origin"
            )
        self.runner.run([self.command, f"--repo={self._repo()}", "pull", remote, commit])
        with tempfile.NamedTemporaryFile("w", suffix=".origin") as origin:
            # Keep the origin on remote:ref, not on the bare checksum, so later upgrades
            # and our own reports still know which stream the host follows.
            origin.write(
                f"[origin]\nrefspec={remote}:{ref}\n" if ref else f"[origin]\nrefspec={commit}\n"
            )
            origin.flush()
            self.runner.run(
                self._admin(
                    "deploy", f"--os={self.os_name}", f"--origin-file={origin.name}", commit
                )
            )

    def unstage(self) -> None:
        self.runner.run(self._admin("undeploy", "0"))
