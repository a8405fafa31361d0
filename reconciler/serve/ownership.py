"""Which groups this process plans, and how its decisions prove it still may.

One `reconciler serve` on SQLite plans every group (:class:`SingleNode`). Replicas on one
PostgreSQL database share the groups by leases (:mod:`reconciler.serve.replicas`): each group
is planned by the one replica holding its lease, every decision it writes is checked against
the lease's fencing token in the same transaction, and a request about a group held
elsewhere is forwarded to its holder. The service and the API ask only this protocol, so the
single-node path is exactly what it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: Run first inside the transaction that writes a decision; raises if the lease is lost.
Fence = Callable[[Any], None]

#: The pseudo-group whose lease lets a replica write back to Git (notes, promotion commits).
WRITEBACK = "__writeback__"


class Ownership(Protocol):
    def holds(self, group: str) -> bool:
        """Whether this process plans ``group`` now."""
        ...

    def fence(self, group: str) -> Fence | None:
        """The check a decision about ``group`` must pass when written (None: no check)."""
        ...

    def holder_url(self, group: str) -> str | None:
        """Where requests about a group held elsewhere go (None: here, or nobody yet)."""
        ...

    def look_up_holder(self, group: str) -> str | None:
        """:meth:`holder_url` read afresh from where the leases are (blocking)."""
        ...


class SingleNode:
    """The only reconciler: it holds every group and needs no fence."""

    def holds(self, group: str) -> bool:
        return True

    def fence(self, group: str) -> Fence | None:
        return None

    def holder_url(self, group: str) -> str | None:
        return None

    def look_up_holder(self, group: str) -> str | None:
        return None
