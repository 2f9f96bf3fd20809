"""SQLite access for one node: one writer thread, reads on the event loop's thread, WAL.

Rules:

* Every write goes through :meth:`Database.write`, which runs a plain function on the single writer
  thread inside one transaction (datasette's ``execute_write_fn`` pattern). Writes are therefore
  serialised and each call is atomic: a durable step (assign a sequence number and store the
  envelope; store a delivered message and bump ``recv_next``) is one call. A call returns only
  after its transaction committed; it raises, and nothing of it is kept, when it failed.
* Group commit: the writer takes every write queued while it was busy (at most
  ``MAX_BATCH``) and runs them in one ``BEGIN IMMEDIATE`` … ``COMMIT``, each inside its own
  ``SAVEPOINT``: a function that raises rolls back only its own savepoint. Should SQLite abandon
  the whole transaction (disk full, I/O error) or the ``COMMIT`` fail, every write of the batch
  raises. Results go back to the event loop once per batch.
* Reads go through :meth:`Database.read` and run on the calling event loop's thread with their own
  read-only connection: a point read in WAL costs a few µs, far less than a hop to a thread. A read
  is bounded: one that runs more than ``INLINE_READ_STEPS`` SQLite VM steps (a listing, a scan) or
  meets a lock is abandoned and run again on a reader thread, so the loop never stalls on it. Read
  functions must therefore have no side effects besides their result. WAL lets reads run beside a
  write, and every read starts after the writes already returned: reads see committed writes.
* ``journal_mode=WAL`` with ``synchronous=NORMAL``: a committed transaction survives the death of the
  process (``kill -9``) because it is in the WAL file; only a power loss or OS crash can lose the
  last few commits. ``synchronous=FULL`` (config ``store.synchronous``) closes that gap too.
* Nothing here knows about connections or messages; see :mod:`node.store.rows`.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from node.store.migrations import MIGRATIONS, Migration

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]

MAX_BATCH = 64  # writes committed together at most (bounds how long one write waits for others)
INLINE_READ_STEPS = 20_000  # SQLite VM steps a read may take on the loop before it moves to a thread
_PROGRESS_EVERY = 1_000
_YIELD_EVERY = 64  # inline reads between two yields to the loop (a loop of reads cannot hog it)
_RETRY_ON_THREAD = frozenset({sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


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


# A job: what to run, the future its caller awaits, and how: WRITE (``fn(conn)`` in the batch's
# transaction), READ (``fn(conn)``, no transaction) or CALL (``fn()``: open or close a connection).
WRITE, READ, CALL = 0, 1, 2
_Job = tuple[Callable[..., Any], "asyncio.Future[Any]", int]
_Outcome = tuple["asyncio.Future[Any]", BaseException | None, Any]


def _deliver(outcomes: list[_Outcome]) -> None:
    for fut, exc, value in outcomes:
        if fut.cancelled():
            continue
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)


class _ConnThread:
    """One thread owning one SQLite connection. Callers queue jobs; the thread takes every job
    waiting (up to ``MAX_BATCH``), runs consecutive writes as one transaction and hands the outcomes
    back to each caller's loop with one ``call_soon_threadsafe`` per batch, not one per job."""

    def __init__(self, name: str) -> None:
        self.conn: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._stopped = False

    def submit(self, fn: Callable[..., Any], kind: int) -> asyncio.Future[Any]:
        if self._stopped:
            raise StoreError("the database is closed")
        if not self._thread.is_alive():
            self._thread.start()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put((fn, fut, kind))
        return fut

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the jobs already queued and end the thread."""
        self._stopped = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _main(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            outcomes: list[_Outcome] = []
            writes: list[_Job] = []
            for job in batch:
                if job[1].cancelled():  # its caller gave up before it started: skip it
                    continue
                if job[2] == WRITE:
                    writes.append(job)
                    continue
                if writes:
                    outcomes += _run_writes(self.conn, writes)
                    writes = []
                outcomes.append(self._run_one(job))
            if writes:
                outcomes += _run_writes(self.conn, writes)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for outcome in outcomes:
                by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
            for loop, items in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, items)
                except RuntimeError:  # that loop is closed: nobody awaits these any more
                    pass

    def _run_one(self, job: _Job) -> _Outcome:
        fn, fut, kind = job
        try:
            if kind == CALL:
                return (fut, None, fn())
            if self.conn is None:
                raise StoreError("the database is closed")
            return (fut, None, fn(self.conn))
        except BaseException as exc:
            return (fut, exc, None)


def _run_writes(conn: sqlite3.Connection | None, jobs: list[_Job]) -> list[_Outcome]:
    """Writes: one transaction for the batch, one savepoint per write (see the module rules)."""
    if conn is None:
        closed = StoreError("the database is closed")
        return [(fut, closed, None) for _, fut, _ in jobs]
    failed: list[_Outcome] = []
    done: list[_Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for fn, fut, _ in jobs:
            conn.execute("SAVEPOINT tandem_write")
            try:
                value = fn(conn)
            except BaseException as exc:
                failed.append((fut, exc, None))
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO tandem_write")
                    conn.execute("RELEASE tandem_write")
                    continue
                # SQLite abandoned the whole transaction: the writes before this one are gone too.
                lost = StoreError(f"the write was rolled back with the batch it was committed in: {exc}")
                failed += [(f, lost, None) for f, _, _ in done]
                done = []
                conn.execute("BEGIN IMMEDIATE")
                continue
            conn.execute("RELEASE tandem_write")
            done.append((fut, None, value))
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        settled = {id(f) for f, _, _ in failed}
        return failed + [(fut, exc, None) for _, fut, _ in jobs if id(fut) not in settled]
    return failed + done


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
        self._writer = _ConnThread("tandem-db-write")
        self._reader = _ConnThread("tandem-db-read")  # reads that proved too long for the loop
        self._lconn: sqlite3.Connection | None = None  # reads on the loop's thread
        self._loop_thread: int | None = None
        self._steps = 0
        self._inline_reads = 0
        self.version = 0

    async def open(self) -> None:
        def open_writer() -> int:
            try:
                self._writer.conn = _connect(self.path, self._synchronous)
                return migrate(self._writer.conn, self._migrations)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot open the database {self.path}: {exc}") from exc

        self.version = await self._writer.submit(open_writer, CALL)
        self._reader.conn = await self._reader.submit(self._read_connection, CALL)
        self._lconn = self._read_connection()
        self._lconn.execute("PRAGMA busy_timeout=0")  # a lock sends the read to the reader thread
        self._lconn.set_progress_handler(self._progress, _PROGRESS_EVERY)
        self._loop_thread = threading.get_ident()

    def _read_connection(self) -> sqlite3.Connection:
        conn = _connect(self.path, self._synchronous)
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _progress(self) -> int:
        self._steps += _PROGRESS_EVERY
        return 1 if self._steps >= INLINE_READ_STEPS else 0

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the writer thread, atomically: returns once it is committed; raises,
        and nothing of it is kept, when it failed."""
        result: T = await self._writer.submit(fn, WRITE)
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a read-only connection. ``fn`` must have no side effects: a read that
        proves long on the loop is abandoned and run again on the reader thread."""
        conn = self._lconn
        if conn is None:
            raise StoreError("the database is closed")
        if threading.get_ident() == self._loop_thread:
            self._inline_reads += 1
            if self._inline_reads % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a loop of reads gives other tasks their turn now and then
            self._steps = 0
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _RETRY_ON_THREAD:
                    raise
        result: T = await self._reader.submit(fn, READ)
        return result

    async def close(self) -> None:
        lconn, self._lconn = self._lconn, None
        if lconn is not None:
            lconn.close()
        for thread in (self._writer, self._reader):
            if thread._thread.is_alive() and not thread._stopped:
                await thread.submit(functools.partial(_close, thread), CALL)
            thread.stop()


def _close(thread: _ConnThread) -> None:
    if thread.conn is not None:
        thread.conn.close()
        thread.conn = None


def create_database(path: Path) -> int:
    """Create (or upgrade) a database synchronously; used by ``tandem init``."""
    conn = _connect(path, "FULL")
    try:
        return migrate(conn)
    finally:
        conn.close()
