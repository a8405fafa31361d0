"""Replicas on one PostgreSQL database: which groups this one plans, by lease.

Every replica runs :meth:`Replicas.round` every ``ttl / 3`` (the daemon's lease loop): it
says it is alive, renews its leases, gives back what is above its fair share of the live
replicas and takes free or expired groups up to it (:meth:`reconciler.state.leases.
PostgresLeases.balance`). A group whose lease it took is *adopted* (its state and its
hosts' latest reports read again from the database, then planned); one it lost is
*relinquished* (plan forgotten, long-polls woken so their agents ask again). The Git
write-back has a lease of its own (:data:`~reconciler.serve.ownership.WRITEBACK`).

Safety does not depend on this loop being timely: every decision is written under the
lease's fencing token (:meth:`fence`), so a replica that was paused past its lease cannot
write, whatever it believes. Liveness does: a replica that stops renewing loses its groups
within ``ttl`` and the others take them at their next round.

A replica's holder id is its advertised URL plus a per-process nonce: the URL is where
others forward requests about its groups, the nonce keeps a restarted process from
inheriting a frozen predecessor's token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.serve.ownership import WRITEBACK, Fence
from reconciler.state.leases import Lease, LeaseLost, PostgresLeases
from reconciler.state.notifications import notify_in

#: Stop acting on a lease this long before it expires by our own clock: the database's
#: clock decides, and ours may run slow (the fence catches the rest).
SAFETY_MARGIN = 0.2  # of the ttl


@dataclass(frozen=True, slots=True)
class RoundResult:
    gained: tuple[str, ...]
    lost: tuple[str, ...]


def holder_url(holder: str) -> str:
    """Where a replica with holder id ``holder`` answers."""
    return holder.partition("#")[0]


class Replicas:
    """This replica's view of the leases; the :class:`~reconciler.serve.ownership.Ownership`
    the service and the API ask. ``round`` blocks (run it in a worker thread); the other
    methods only read what the last round left."""

    def __init__(self, leases: PostgresLeases, url: str) -> None:
        self.leases = leases
        self.url = url.rstrip("/")
        self.holder = f"{self.url}#{uuid.uuid4().hex[:12]}"
        self._held: dict[str, Lease] = {}
        # Leases taken but not yet adopted: planning one of these groups from the states read
        # before its lease was taken could repeat a decision its last holder made.
        self._taken: dict[str, Lease] = {}
        self._valid_until: dict[str, float] = {}  # group -> monotonic deadline, our clock
        self._others: dict[str, str] = {}  # group -> holder id, as of the last round

    # -- Ownership ----------------------------------------------------------------------

    def holds(self, group: str) -> bool:
        return group in self._held and time.monotonic() < self._valid_until.get(group, 0.0)

    def fence(self, group: str) -> Fence | None:
        lease = self._held.get(group)
        if lease is None:

            def lost(_: object) -> None:
                raise LeaseLost(f"this replica does not hold group {group!r}")

            return lost
        check = self.leases.fence(lease)

        def fenced_and_announced(connection: Any) -> None:
            # Store.save calls it first in the transaction that writes the decisions, with
            # that transaction's psycopg connection: the check, then the notification the
            # other replicas get when (and only if) the decisions commit.
            check(connection)
            notify_in(connection, group)

        return fenced_and_announced

    def holder_url(self, group: str) -> str | None:
        holder = self._others.get(group)
        return holder_url(holder) if holder is not None else None

    def look_up_holder(self, group: str) -> str | None:
        """Who holds ``group`` now, by the database (a lease taken since the last round)."""
        lease = self.leases.leases().get(group)
        if lease is None or lease.holder == self.holder:
            return None
        self._others[group] = lease.holder
        return holder_url(lease.holder)

    # -- the lease loop -----------------------------------------------------------------

    def round(self, groups: Iterable[str]) -> RoundResult:
        """One round of :meth:`PostgresLeases.balance` over ``groups`` and the write-back;
        the groups gained and lost since the last round."""
        started = time.monotonic()
        wanted = sorted({*groups, WRITEBACK})
        held = {lease.group: lease for lease in self.leases.balance(wanted, self.holder)}
        # Renewed at or after `started` by the database's clock: valid for ttl from then.
        valid = started + self.leases.ttl.total_seconds() * (1 - SAFETY_MARGIN)
        before = self._held.keys() | self._taken.keys()
        gained = held.keys() - before
        self._taken = {g: lease for g, lease in held.items() if g in gained or g in self._taken}
        self._held = {g: lease for g, lease in held.items() if g not in self._taken}
        self._valid_until = dict.fromkeys(held, valid)
        self._others = {
            group: lease.holder
            for group, lease in self.leases.leases().items()
            if lease.holder != self.holder
        }
        return RoundResult(gained=tuple(sorted(gained)), lost=tuple(sorted(before - held.keys())))

    def adopted(self, group: str) -> None:
        """``group``, gained at a round, now plans from what its last holder wrote: from now
        on this replica plans it (:meth:`holds`)."""
        lease = self._taken.pop(group, None)
        if lease is not None:
            self._held[group] = lease

    def give_up(self) -> None:
        """Release every lease now (a clean shutdown hands the groups over at once)."""
        for lease in (*self._held.values(), *self._taken.values()):
            self.leases.release(lease)
        self._held.clear()
        self._taken.clear()
        self._valid_until.clear()
