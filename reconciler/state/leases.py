"""Per-group leases with fencing tokens, on PostgreSQL: one replica plans a group at a time.

A lease is one row of ``group_leases``: the group, the replica that holds it, its **fencing
token** and when it expires. Every time the lease passes to a *different* holder the token
grows by one (``acquire`` is one atomic ``INSERT ... ON CONFLICT DO UPDATE``), rows are never
deleted, so a group's tokens are strictly increasing and never reused; the same holder
renewing keeps its token. All times are the database's (``clock_timestamp()``): a replica's
own clock is never read, so a replica with a wrong clock cannot stretch its lease.

**Fencing** is the classic fencing-token scheme (Kleppmann, "How to do distributed locking",
2016): a lease alone cannot stop a holder that was paused (SIGSTOP, a long GC, a network cut)
and wakes up believing it still holds it, so the *storage* checks the token on every write.
:meth:`PostgresLeases.fence` gives the check to run as the first statement of the transaction
that writes a decision::

    SELECT token FROM group_leases
     WHERE group_name = %s AND holder = %s AND token = %s AND expires_at > clock_timestamp()
       FOR UPDATE

No row (the lease expired, was released or taken over) raises :class:`LeaseLost` and the
transaction writes nothing. A row is locked until that transaction ends, and ``acquire``,
``renew`` and ``release`` update that same row, so they wait for it. Precisely:

* a decision commits only in a transaction that, at its first statement, found the group's
  current token held by the writer and unexpired;
* no change of holder can happen between that check and the commit (it waits on the lock),
  so every takeover is ordered entirely before or entirely after each such transaction;
* once a takeover has committed (token N+1), no transaction fenced with token N can pass
  the check again, however long its replica was paused: a stale holder never writes.

The price: a holder paused *inside* such a transaction delays the takeover until its
connection ends (a killed process's connection is dropped at once). So the fence sets
``idle_in_transaction_session_timeout`` to half the ttl for its own transaction: the server
ends a frozen writer's session, rolling its write back whole, and the takeover goes on in
time; ``acquire`` gives up after ``lock_timeout`` (default: the ttl) and answers None.

**Timing.** A lease lives ``ttl``; call :meth:`PostgresLeases.balance` every ``ttl / 3``
(:attr:`PostgresLeases.renew_interval`), so two missed rounds still keep it. A replica that
stops calling loses its heartbeat and its leases at most ``ttl`` after its last round, and
the survivors pick its groups up at their next round: at most ``ttl + ttl / 3`` after its
last renewal.

**Holder ids must be unique per process** (:func:`new_holder_id`): a restarted process that
reused its predecessor's id would share its token with a frozen predecessor.

The tables (created if missing; to be folded into the store's versioned migrations)::

    CREATE TABLE group_leases (group_name TEXT PRIMARY KEY, holder TEXT NOT NULL,
                               token BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
    CREATE TABLE replicas (replica TEXT PRIMARY KEY, heartbeat_at TIMESTAMPTZ NOT NULL);
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from reconciler.errors import StoreUnavailable

LEASE_TABLES = """
CREATE TABLE IF NOT EXISTS group_leases (
    group_name  TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    token       BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    replica       TEXT PRIMARY KEY,
    heartbeat_at  TIMESTAMPTZ NOT NULL
);
"""

# Two replicas starting together would race on CREATE TABLE IF NOT EXISTS (a duplicate key
# in pg_type); an advisory lock makes creating the tables one at a time. Any fixed number.
_SCHEMA_LOCK = 0x6C65617365

_COLUMNS = "group_name, holder, token, expires_at"

# A new holder only when the lease expired; it gets the next token. The same holder keeps
# its token: nobody else held the group in between, or the holder would have changed.
_ACQUIRE = f"""
INSERT INTO group_leases AS held (group_name, holder, token, expires_at)
VALUES (%(group)s, %(holder)s, 1, clock_timestamp() + %(ttl)s)
ON CONFLICT (group_name) DO UPDATE
   SET token = CASE WHEN held.holder = EXCLUDED.holder THEN held.token ELSE held.token + 1 END,
       holder = EXCLUDED.holder,
       expires_at = clock_timestamp() + %(ttl)s
 WHERE held.holder = EXCLUDED.holder OR held.expires_at <= clock_timestamp()
RETURNING {_COLUMNS}
"""

# An unchanged token proves nobody took the group over, even if the lease lapsed meanwhile.
_RENEW = f"""
UPDATE group_leases SET expires_at = clock_timestamp() + %(ttl)s
 WHERE group_name = %(group)s AND holder = %(holder)s AND token = %(token)s
RETURNING {_COLUMNS}
"""

# Every lease of one holder renewed in one statement (one commit, one WAL flush per round,
# rather than one per group: 2,000 groups renewed every 5 s would be 400 flushes a second).
_RENEW_ALL = """
UPDATE group_leases AS held SET expires_at = clock_timestamp() + %(ttl)s
  FROM unnest(%(groups)s::text[], %(tokens)s::bigint[]) AS mine(group_name, token)
 WHERE held.group_name = mine.group_name AND held.token = mine.token
   AND held.holder = %(holder)s
RETURNING held.group_name, held.holder, held.token, held.expires_at
"""

_RELEASE = """
UPDATE group_leases SET expires_at = LEAST(expires_at, clock_timestamp())
 WHERE group_name = %(group)s AND holder = %(holder)s AND token = %(token)s
"""

_FENCE = """
SELECT token FROM group_leases
 WHERE group_name = %s AND holder = %s AND token = %s AND expires_at > clock_timestamp()
   FOR UPDATE
"""

_CURRENT = f"SELECT {_COLUMNS} FROM group_leases WHERE expires_at > clock_timestamp()"

_HEARTBEAT = """
INSERT INTO replicas (replica, heartbeat_at) VALUES (%(replica)s, clock_timestamp())
ON CONFLICT (replica) DO UPDATE SET heartbeat_at = clock_timestamp()
"""

_LIVE = """
SELECT replica FROM replicas WHERE heartbeat_at > clock_timestamp() - %(ttl)s ORDER BY replica
"""

FenceTarget: TypeAlias = "psycopg.Connection[Any] | psycopg.Cursor[Any]"
Fence: TypeAlias = Callable[[FenceTarget], None]


class LeaseLost(StoreUnavailable):
    """This replica no longer holds the group's lease (expired, released or taken over):
    the write was refused and nothing of it was written.

    A :class:`StoreUnavailable` because that is what it is to the writer — the store refused
    the write and a later pass may succeed (or find another replica owns the group) — so the
    reconcile path's existing handling of the world's faults applies unchanged: no traceback,
    the pass is dropped, nothing acted on.
    """


@dataclass(frozen=True, slots=True)
class Lease:
    """``holder`` plans ``group`` until ``expires_at`` (UTC, the database's clock); its
    writes carry ``token``."""

    group: str
    holder: str
    token: int
    expires_at: datetime


def new_holder_id() -> str:
    """A replica id unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def fair_share(groups: int, live: Sequence[str], holder: str) -> int:
    """How many of ``groups`` the replica ``holder`` should hold among the ``live`` ones:
    an even split, the remainder going to the first replicas in sorted order (10 groups over
    three replicas: 4, 3, 3). A holder not in ``live`` counts as one more live replica."""
    replicas = sorted({*live, holder})
    base, remainder = divmod(groups, len(replicas))
    return base + (1 if replicas.index(holder) < remainder else 0)


def _preference(holder: str, group: str) -> bytes:
    # Rendezvous hashing: each replica ranks the groups in its own stable order, so replicas
    # reaching for free groups at once rarely race for the same one.
    return hashlib.sha256(f"{holder}\0{group}".encode()).digest()


def _lease(row: tuple[Any, ...]) -> Lease:
    group, holder, token, expires_at = row
    return Lease(str(group), str(holder), int(token), expires_at.astimezone(UTC))


def check_fence(target: FenceTarget, lease: Lease, idle_limit: timedelta | None = None) -> None:
    """Run the fence for ``lease`` on ``target`` (inside the writing transaction); raise
    :class:`LeaseLost` when the lease is no longer this holder's.

    ``idle_limit``: for the rest of this transaction only, the server ends the session if it
    sits idle inside it that long. The fence locks the lease row; a writer frozen after it
    (SIGSTOP, a VM migration) would otherwise keep every takeover of the group waiting for
    as long as it is frozen. Its write is rolled back whole. Only this transaction carries
    the limit: other writers of the same pool (reports, a migration) are not cut short."""
    connection = target if isinstance(target, psycopg.Connection) else target.connection
    if connection.autocommit and connection.info.transaction_status == TransactionStatus.IDLE:
        # Outside a transaction the row lock would end with the statement: no fence at all.
        raise RuntimeError("a lease fence must run inside the transaction that writes")
    if idle_limit is not None:
        milliseconds = max(1, int(idle_limit.total_seconds() * 1000))
        target.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
            (f"{milliseconds}ms",),
        )
    try:
        row = target.execute(_FENCE, (lease.group, lease.holder, lease.token)).fetchone()
    except pg_errors.SerializationFailure as exc:  # REPEATABLE READ: taken over meanwhile
        raise LeaseLost(_lost_message(lease)) from exc
    if row is None:
        raise LeaseLost(_lost_message(lease))


def _lost_message(lease: Lease) -> str:
    return (
        f"replica {lease.holder!r} no longer holds the lease on group {lease.group!r} "
        f"(token {lease.token}): it expired, was released or was taken over; nothing written"
    )


class PostgresLeases:
    """The leases of one PostgreSQL database, for any number of replicas (thread-safe)."""

    def __init__(
        self,
        url: str,
        ttl: timedelta,
        *,
        lock_timeout: timedelta | None = None,
        max_connections: int = 4,
        fence_idle_limit: timedelta | None = None,
    ) -> None:
        """``fence_idle_limit``: how long a fenced transaction may sit idle before the server
        ends it (default: half the ttl; see :func:`check_fence`)."""
        if ttl <= timedelta(0):
            raise ValueError(f"a lease ttl must be positive, not {ttl}")
        self.ttl = ttl
        self.fence_idle_limit = fence_idle_limit or ttl / 2
        waited = lock_timeout if lock_timeout is not None else ttl
        milliseconds = max(1, int(waited / timedelta(milliseconds=1)))
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "options": f"-c lock_timeout={milliseconds}"},
            check=ConnectionPool.check_connection,
            timeout=max(5.0, ttl.total_seconds()),
            open=True,
        )
        try:
            with self._connection() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                connection.execute(LEASE_TABLES)
        except BaseException:
            self._pool.close()
            raise

    @property
    def renew_interval(self) -> timedelta:
        """How often a replica should call :meth:`balance`: a third of the ttl."""
        return self.ttl / 3

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresLeases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[TupleRow]]:
        try:
            with self._pool.connection() as connection:
                yield connection
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lease database unavailable: {exc}") from exc

    def acquire(self, group: str, holder: str) -> Lease | None:
        """Take ``group`` for ``holder`` if its lease is free or expired (a new token), or
        renew it if ``holder`` has it already (same token); None when another holds it, or
        is writing under it for longer than the lock timeout."""
        with self._connection() as connection:
            try:
                row = connection.execute(
                    _ACQUIRE, {"group": group, "holder": holder, "ttl": self.ttl}
                ).fetchone()
            except pg_errors.LockNotAvailable:
                return None
        return _lease(row) if row is not None else None

    def renew(self, lease: Lease) -> Lease | None:
        """Extend ``lease`` by the ttl, same token; None when it was taken over."""
        parameters = {
            "group": lease.group,
            "holder": lease.holder,
            "token": lease.token,
            "ttl": self.ttl,
        }
        with self._connection() as connection:
            row = connection.execute(_RENEW, parameters).fetchone()
        return _lease(row) if row is not None else None

    def renew_all(self, leases: Sequence[Lease]) -> list[Lease]:
        """:meth:`renew` for every lease of one holder at once; the ones still held."""
        if not leases:
            return []
        holders = {lease.holder for lease in leases}
        if len(holders) != 1:
            raise ValueError(f"renew_all renews one holder's leases, not {sorted(holders)}")
        parameters = {
            "groups": [lease.group for lease in leases],
            "tokens": [lease.token for lease in leases],
            "holder": holders.pop(),
            "ttl": self.ttl,
        }
        with self._connection() as connection:
            rows = connection.execute(_RENEW_ALL, parameters).fetchall()
        return [_lease(row) for row in rows]

    def release(self, lease: Lease) -> None:
        """Give ``lease`` up now (it expires; the row and its token stay)."""
        parameters = {"group": lease.group, "holder": lease.holder, "token": lease.token}
        with self._connection() as connection:
            connection.execute(_RELEASE, parameters)

    def leases(self) -> dict[str, Lease]:
        """The unexpired leases, by group."""
        with self._connection() as connection:
            rows = connection.execute(_CURRENT).fetchall()
        return {lease.group: lease for lease in map(_lease, rows)}

    def heartbeat(self, replica: str) -> None:
        """Say ``replica`` is alive (for the next ttl)."""
        with self._connection() as connection:
            connection.execute(_HEARTBEAT, {"replica": replica})

    def live_replicas(self) -> list[str]:
        """The replicas whose last heartbeat is younger than the ttl, sorted."""
        with self._connection() as connection:
            rows = connection.execute(_LIVE, {"ttl": self.ttl}).fetchall()
        return [str(replica) for (replica,) in rows]

    def fence(self, lease: Lease) -> Fence:
        """The check to run first in the transaction that writes a decision under ``lease``
        (``fence(cursor)``); see the module docstring for what it guarantees."""

        def check(target: FenceTarget) -> None:
            check_fence(target, lease, idle_limit=self.fence_idle_limit)

        return check

    def balance(self, groups: Sequence[str], holder: str) -> list[Lease]:
        """One round for ``holder``: heartbeat, renew what it holds, give back what is above
        its :func:`fair_share` among the live replicas (and leases of groups no longer in
        ``groups``), take free or expired groups up to it. Returns the leases it holds."""
        self.heartbeat(holder)
        wanted = set(groups)
        share = fair_share(len(wanted), self.live_replicas(), holder)
        current = self.leases()
        mine_now = [lease for lease in current.values() if lease.holder == holder]
        for lease in mine_now:
            if lease.group not in wanted:
                self.release(lease)
        held = self.renew_all([lease for lease in mine_now if lease.group in wanted])
        held.sort(key=lambda lease: _preference(holder, lease.group))
        for extra in held[share:]:
            self.release(extra)
        held = held[:share]
        mine = {lease.group for lease in held}
        others = {group for group, lease in current.items() if lease.holder != holder}
        for group in sorted(wanted - mine - others, key=lambda g: _preference(holder, g)):
            if len(held) >= share:
                break
            if (taken := self.acquire(group, holder)) is not None:
                held.append(taken)
        return sorted(held, key=lambda lease: lease.group)
