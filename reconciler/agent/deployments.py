"""What the agent knows about the host's deployments, in the shape it reports them."""

from typing import Any, Dict, NamedTuple, Optional, Tuple


class Deployment(NamedTuple):
    """One OSTree deployment. ``base_checksum`` is the commit that came from the remote; it
    differs from ``checksum`` when packages are layered on top."""

    checksum: str
    base_checksum: str
    version: Optional[str] = None
    origin: Optional[str] = None  # refspec, e.g. "callos:callos/9/x86_64/production"
    pinned: bool = False

    def to_json(self) -> Dict[str, Any]:
        return {
            "checksum": self.checksum,
            "baseChecksum": self.base_checksum,
            "version": self.version,
            "origin": self.origin,
            "pinned": self.pinned,
        }


class HostStatus(NamedTuple):
    """The deployments of interest: booted, the one staged for next boot, and the rollback.

    ``error`` is set (and the rest may be empty) when the status could not be read or
    understood; the agent reports it instead of crashing.
    """

    booted: Optional[Deployment] = None
    staged: Optional[Deployment] = None
    rollback: Optional[Deployment] = None
    transaction: bool = False
    error: Optional[str] = None


def split_refspec(refspec: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """``"remote:ref"`` -> ``("remote", "ref")``; a bare ref has no remote."""
    if not refspec:
        return None, None
    if ":" in refspec:
        remote, ref = refspec.split(":", 1)
        return remote or None, ref
    return None, refspec
