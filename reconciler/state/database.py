"""One small adapter over the two databases the state can live in: SQLite and PostgreSQL.

Queries are written once, with ``?`` placeholders and SQL both databases speak; the
PostgreSQL side turns the placeholders into psycopg's ``%s``. Every error of either driver
becomes :class:`~reconciler.errors.StoreUnavailable` here, at the edge that calls the library.

- :class:`SqliteDatabase`: one connection to a file in WAL mode, ``synchronous`` FULL (rollout
  state: a committed decision survives power loss) or NORMAL (reports, which agents send
  again). A lock serialises the threads that share it; a transaction is ``BEGIN IMMEDIATE``.
- :class:`PostgresDatabase`: a small connection pool, so the report writer thread and the
  loop thread never share a connection; each statement outside a transaction commits on its
  own, and a transaction holds one pooled connection from ``BEGIN`` to ``COMMIT``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool

from reconciler.errors import StoreUnavailable

Row = tuple[Any, ...]
Params = Sequence[Any]

#: Connections a PostgreSQL pool keeps at least and opens at most: the loop thread, the
#: report writer and the report readers of one process, with room to spare.
POOL_MIN = 1
POOL_MAX = 8
#: How long to wait for a pooled connection (or the first one) before the store is down.
POOL_TIMEOUT_SECONDS = 30.0

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Dialect(Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(_POSTGRES_SCHEMES)


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host))


def create_private(path: Path | str) -> None:
    """Create the database file readable by its owner only, if it does not exist yet
    (SQLite gives its -wal and -shm files the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


class Session:
    """Statements on one open connection (a transaction's, or one borrowed per statement).

    ``connection`` is the driver's own (``sqlite3.Connection`` or ``psycopg.Connection``),
    for a caller that needs what only its dialect can say (``SELECT ... FOR UPDATE``).
    """

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        # Any: the two drivers' connections share these methods but no common type.
        self.connection = connection
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        if self.dialect is Dialect.POSTGRESQL:
            return sql.replace("%", "%%").replace("?", "%s")
        return sql

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement; the rows it returns (none for a statement without)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return [] if cursor.description is None else list(cursor.fetchall())
        finally:
            cursor.close()

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def modify(self, sql: str, params: Params = ()) -> int:
        """Run one statement that changes rows; how many it changed."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._sql(sql), params)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = list(rows)
        if not batch:
            return
        cursor = self.connection.cursor()
        try:
            cursor.executemany(self._sql(sql), batch)
        finally:
            cursor.close()

    def batches(self, sql: str, size: int = 1000) -> Iterator[list[Row]]:
        """The rows of a query, ``size`` at a time (a copy of a large table never holds it
        all in memory)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._sql(sql), ())
            while rows := cursor.fetchmany(size):
                yield list(rows)
        finally:
            cursor.close()

    def script(self, sql: str) -> None:
        """Several statements without parameters (a schema migration)."""
        if self.dialect is Dialect.POSTGRESQL:
            self.connection.execute(sql)
        else:
            self.connection.executescript(sql)


class SqliteDatabase:
    """One connection to a SQLite file in WAL mode."""

    dialect = Dialect.SQLITE

    def __init__(
        self,
        path: Path | str,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        name: str = "state database",
    ) -> None:
        self.name = name
        try:
            create_private(path)
            # Opened where the daemon is built, used on the thread that runs its event loop
            # (DaemonThread builds in one thread and serves in another); the lock below
            # keeps threads from interleaving statements on it.
            self._db = sqlite3.connect(
                str(path), isolation_level=None, timeout=30, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {name} {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._session = Session(self._db, Dialect.SQLITE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self.name} error: {exc}") from exc

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        with self._lock, self._translated():
            return self._session.execute(sql, params)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with self._lock, self._translated():
            return self._session.fetchone(sql, params)

    def modify(self, sql: str, params: Params = ()) -> int:
        with self._lock, self._translated():
            return self._session.modify(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """``BEGIN IMMEDIATE`` (the write lock up front, so two writers never deadlock on
        an upgrade), committed when the block ends, rolled back if it raises."""
        with self._lock, self._translated():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT may leave it open
                    self._db.execute("ROLLBACK")
                raise

    def migrate(self, scripts: Sequence[str]) -> int:
        """Apply the scripts past the recorded version, one transaction per step."""
        with self._lock, self._translated():
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            for number, script in enumerate(scripts[version:], start=version + 1):
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {script}; DELETE FROM schema_version; "
                    f"INSERT INTO schema_version VALUES ({number}); COMMIT;"
                )
        return len(scripts)


#: The advisory lock held while migrating, so two processes starting at once on one
#: database apply each step once (any constant; this one spells "reconc").
MIGRATION_LOCK = 0x7265636F6E63


class PostgresDatabase:
    """A PostgreSQL database behind a small pool of autocommit connections."""

    dialect = Dialect.POSTGRESQL

    def __init__(
        self,
        url: str,
        max_connections: int = POOL_MAX,
        name: str = "state database",
        timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.url = redacted(url)
        try:
            # One connection first: a refused or misspelt database fails now with the
            # server's reason, where the pool would retry until its timeout.
            psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
            self._pool = psycopg_pool.ConnectionPool(
                url,
                min_size=POOL_MIN,
                max_size=max_connections,
                kwargs={"autocommit": True},
                timeout=timeout,
                open=False,
                name=name,
            )
            self._pool.open(wait=True, timeout=timeout)
        except psycopg.Error as exc:  # PoolTimeout is one: no connection could be made
            raise StoreUnavailable(f"cannot open {name} {self.url}: {exc}") from exc

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _connection(self) -> Iterator[Session]:
        try:
            with self._pool.connection() as connection:
                yield Session(connection, Dialect.POSTGRESQL)
        except psycopg.Error as exc:  # also PoolTimeout and PoolClosed
            raise StoreUnavailable(f"{self.name} error: {exc}") from exc

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        with self._connection() as session:
            return session.execute(sql, params)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with self._connection() as session:
            return session.fetchone(sql, params)

    def modify(self, sql: str, params: Params = ()) -> int:
        with self._connection() as session:
            return session.modify(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One pooled connection in a transaction: committed when the block ends, rolled
        back if it raises."""
        with self._connection() as session, session.connection.transaction():
            yield session

    def migrate(self, scripts: Sequence[str]) -> int:
        """Apply the scripts past the recorded version in one transaction, under an
        advisory lock: a second process starting at the same moment waits, then finds the
        schema current (PostgreSQL's DDL is transactional, so a failed step leaves none)."""
        with self.transaction() as session:
            session.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            session.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = session.fetchone("SELECT version FROM schema_version")
            version = row[0] if row else 0
            for number, script in enumerate(scripts[version:], start=version + 1):
                session.script(script)
                session.execute("DELETE FROM schema_version")
                session.execute("INSERT INTO schema_version VALUES (?)", (number,))
        return len(scripts)


#: Either database: the stores take one of these (or a location to open one).
Database: TypeAlias = SqliteDatabase | PostgresDatabase


def open_database(
    location: str | Path,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    name: str = "state database",
) -> Database:
    """A ``postgresql://`` (or ``postgres://``) URL's database, or else a SQLite file's."""
    if is_postgres_url(location):
        return PostgresDatabase(str(location), name=name)
    return SqliteDatabase(location, synchronous, name)


def schema_version(database: Database) -> int:
    """The schema version recorded in ``database`` (0: none yet)."""
    exists = (
        "SELECT 1 FROM sqlite_master WHERE name = 'schema_version'"
        if database.dialect is Dialect.SQLITE
        else "SELECT 1 FROM pg_tables WHERE tablename = 'schema_version' "
        "AND schemaname = current_schema()"
    )
    if database.fetchone(exists) is None:
        return 0
    row = database.fetchone("SELECT version FROM schema_version")
    return int(row[0]) if row else 0
