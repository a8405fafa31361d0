"""The rpm-ostree backend: read `rpm-ostree status --json`, stage with deploy or rebase.

Parsing is defensive: rpm-ostree's JSON has changed across releases, and a field the agent
does not understand must make it report "unknown", never crash.
"""

import json
from typing import Any, Dict, List, Optional

from reconciler.agent.deployments import Deployment, HostStatus, split_refspec
from reconciler.agent.runner import CommandFailed, Runner


def _deployment(raw: Dict[str, Any]) -> Deployment:
    checksum = raw["checksum"]
    if not isinstance(checksum, str):
        raise ValueError("checksum is not a string")
    base = raw.get("base-checksum") or checksum
    origin = raw.get("origin")
    return Deployment(
        checksum=checksum,
        base_checksum=str(base),
        version=raw.get("version") if isinstance(raw.get("version"), str) else None,
        origin=origin if isinstance(origin, str) else None,
        pinned=bool(raw.get("pinned", False)),
    )


def parse_status(text: str) -> HostStatus:
    """Interpret `rpm-ostree status --json`; an unexpected shape gives a status with ``error``."""
    try:
        data = json.loads(text)
        deployments: List[Dict[str, Any]] = data["deployments"]
        if not isinstance(deployments, list):
            raise ValueError("deployments is not a list")
        booted_index = next(i for i, d in enumerate(deployments) if d.get("booted"))
        booted = _deployment(deployments[booted_index])
        staged: Optional[Deployment] = None
        rollback: Optional[Deployment] = None
        # Deployments are listed in boot order: those before the booted one are pending
        # (staged) for the next boot; the first one after it is the rollback target.
        if booted_index > 0:
            staged = _deployment(deployments[0])
        if booted_index + 1 < len(deployments):
            rollback = _deployment(deployments[booted_index + 1])
        return HostStatus(
            booted=booted,
            staged=staged,
            rollback=rollback,
            transaction=data.get("transaction") is not None,
        )
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError) as exc:
        return HostStatus(error=f"cannot understand rpm-ostree status: {type(exc).__name__}: {exc}")


class RpmOstreeBackend:
    """Talks to rpm-ostree (through its CLI, which talks to rpm-ostreed)."""

    name = "rpm-ostree"

    def __init__(self, runner: Runner, command: str = "rpm-ostree") -> None:
        self.runner, self.command = runner, command

    def status(self) -> HostStatus:
        try:
            return parse_status(self.runner.run([self.command, "status", "--json"]))
        except CommandFailed as exc:
            return HostStatus(error=str(exc))

    def stage(
        self, commit: str, remote: Optional[str], ref: Optional[str], current: HostStatus
    ) -> None:
        """Deploy ``commit`` for the next boot; rebase when the origin has to change."""
        origin_remote, origin_ref = split_refspec(current.booted.origin if current.booted else None)
        wants_rebase = (remote, ref) != (None, None) and (
            (remote or origin_remote, ref or origin_ref) != (origin_remote, origin_ref)
        )
        if wants_rebase:
            refspec = f"{remote or origin_remote}:{ref or origin_ref}"
            self.runner.run([self.command, "rebase", refspec, commit])
        else:
            self.runner.run([self.command, "deploy", commit])

    def unstage(self) -> None:
        self.runner.run([self.command, "cleanup", "--pending"])
