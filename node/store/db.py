"""SQLite access for one node: one writer thread, one reader thread, WAL.

Rules:

* Every write goes through :meth:`Database.write`, which runs a plain function on the single writer
  thread inside one ``BEGIN IMMEDIATE`` … ``COMMIT`` (datasette's ``execute_write_fn`` pattern).
  Writes are therefore serialised and each call is atomic: a durable step (assign a sequence number
  and store the envelope; store a delivered message and bump ``recv_next``) is one call.
* Reads go through :meth:`Database.read` on a second connection; WAL lets them run beside a write.
* ``journal_mode=WAL`` with ``synchronous=NORMAL``: a committed transaction survives the death of the
  process (``kill -9``) because it is in the WAL file; only a power loss or OS crash can lose the
  last few commits. ``synchronous=FULL`` (config ``store.synchronous``) closes that gap too.
* Nothing here knows about connections or messages; see :mod:`node.store.rows`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from node.store.migrations import MIGRATIONS, Migration

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]


class StoreError(Exception):
    """The database cannot be used (its message is for the operator)."""


class SchemaTooNew(StoreError):
    pass


def _connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    return int(row[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last migration; returns the resulting version."""
    latest = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current > latest:
        raise SchemaTooNew(
            f"this database was written by a newer Tandem (schema {current} > {latest}); upgrade tandem"
        )
    for migration in migrations:
        if migration.version <= current:
            continue
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\n;"
                f"UPDATE schema_version SET version = {int(migration.version)};\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"database migration {migration.version} ({migration.description}) failed: {exc}"
            ) from exc
        current = migration.version
    return current


class Database:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.path = path
        self._synchronous: Synchronous = synchronous
        self._migrations = migrations
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tandem-db-write")
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tandem-db-read")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self.version = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()

        def open_writer() -> int:
            try:
                self._wconn = _connect(self.path, self._synchronous)
                return migrate(self._wconn, self._migrations)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

        self.version = await loop.run_in_executor(self._writer, open_writer)

        def open_reader() -> None:
            self._rconn = _connect(self.path, self._synchronous)

        await loop.run_in_executor(self._reader, open_reader)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the writer thread in one transaction; commit, or roll back on error."""

        def run() -> T:
            conn = self._wconn
            if conn is None:
                raise StoreError("the database is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = self._rconn
            if conn is None:
                raise StoreError("the database is closed")
            return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()

        def close_writer() -> None:
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None

        def close_reader() -> None:
            if self._rconn is not None:
                self._rconn.close()
                self._rconn = None

        await loop.run_in_executor(self._writer, close_writer)
        await loop.run_in_executor(self._reader, close_reader)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)


def create_database(path: Path) -> int:
    """Create (or upgrade) a database synchronously; used by ``tandem init``."""
    conn = _connect(path, "FULL")
    try:
        return migrate(conn)
    finally:
        conn.close()
