from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node.store import (
    LATEST_VERSION,
    MIGRATIONS,
    ConnectionRow,
    Database,
    Migration,
    SchemaTooNew,
    StoreError,
)
from node.store import rows as q


def _row(name: str = "c") -> ConnectionRow:
    return ConnectionRow(
        id=bytes(16),
        name=name,
        role="inviter",
        state="pending",
        link="listen",
        expires_at=1,
        created_at=0,
        updated_at=0,
    )


async def test_fresh_database_is_migrated_to_latest(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    await db.open()
    try:
        assert db.version == LATEST_VERSION
        mode = await db.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
        tables = await db.read(lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master")})
        assert {"connections", "outbox", "inbox", "schema_version"} <= tables
    finally:
        await db.close()


async def test_upgrade_keeps_data_and_runs_only_new_migrations(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(path)
    await db.open()
    await db.write(lambda c: q.insert_connection(c, _row()))
    await db.close()
    extra = Migration(LATEST_VERSION + 1, "add a column", "ALTER TABLE connections ADD COLUMN note TEXT;")
    db2 = Database(path, migrations=(*MIGRATIONS, extra))
    await db2.open()
    try:
        assert db2.version == LATEST_VERSION + 1
        names = await db2.read(lambda c: [r[0] for r in c.execute("SELECT name FROM connections")])
        assert names == ["c"]
        cols = await db2.read(lambda c: [r[1] for r in c.execute("PRAGMA table_info(connections)")])
        assert "note" in cols
    finally:
        await db2.close()


async def test_migration_3_deletes_closed_create_intents_and_keeps_open_ones(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(path, migrations=MIGRATIONS[:2])  # a store written before migration 3
    await db.open()
    for marker, done in (("open", 0), ("closed", 1)):
        await db.write(
            lambda c, m=marker, d=done: c.execute(
                "INSERT INTO intents (conn_id, remote_entity_id, marker, project, created_at, done) "
                "VALUES (?, '1', ?, 'ENG', 0, ?)",
                (bytes(16), m, d),
            )
        )
    await db.close()
    db = Database(path)
    await db.open()
    try:
        assert db.version == LATEST_VERSION >= 3
        assert await db.read(lambda c: [r[0] for r in c.execute("SELECT marker FROM intents")]) == ["open"]
    finally:
        await db.close()


async def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    bad = Migration(LATEST_VERSION + 1, "broken", "CREATE TABLE x (a INT); THIS IS NOT SQL;")
    db = Database(path, migrations=(*MIGRATIONS, bad))
    with pytest.raises(StoreError, match=r"migration .* failed"):
        await db.open()
    await db.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == LATEST_VERSION
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'x'").fetchone() is None
    conn.close()


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    db = Database(path)
    await db.open()
    await db.write(lambda c: c.execute("UPDATE schema_version SET version = 99"))
    await db.close()
    db2 = Database(path)
    with pytest.raises(SchemaTooNew, match=rf"newer Tandem \(schema 99 > {LATEST_VERSION}\); upgrade tandem"):
        await db2.open()
    await db2.close()


async def test_a_write_is_one_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    await db.open()
    try:
        await db.write(lambda c: q.insert_connection(c, _row()))

        def half(c: sqlite3.Connection) -> None:
            q.outbox_put(c, bytes(16), [(1, "probe", b"x")], 2, 0.0)
            raise RuntimeError("crash between the two statements")

        with pytest.raises(RuntimeError):
            await db.write(half)
        assert await db.read(lambda c: q.outbox_all(c, bytes(16))) == {}
        row = await db.read(lambda c: q.get_connection(c, bytes(16)))
        assert row is not None and row.send_next == 1
    finally:
        await db.close()


async def test_writes_are_serialised(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.db")
    await db.open()
    try:
        await db.write(lambda c: c.execute("CREATE TABLE n (v INT)"))
        await db.write(lambda c: c.execute("INSERT INTO n VALUES (0)"))

        def bump(c: sqlite3.Connection) -> None:
            (v,) = c.execute("SELECT v FROM n").fetchone()
            c.execute("UPDATE n SET v = ?", (v + 1,))

        await asyncio.gather(*(db.write(bump) for _ in range(200)))
        assert await db.read(lambda c: c.execute("SELECT v FROM n").fetchone()[0]) == 200
    finally:
        await db.close()


async def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    path.write_bytes(b"this is not a database" * 100)
    db = Database(path)
    with pytest.raises(StoreError, match="cannot open the database"):
        await db.open()
    await db.close()


# -- the writer's batches and the reads on the loop ------------------------------------------------


async def _open_with_table(tmp_path: Path) -> Database:
    db = Database(tmp_path / "t.db")
    await db.open()
    await db.write(lambda c: c.execute("CREATE TABLE n (v INT)"))
    return db


@contextlib.asynccontextmanager
async def _writer_held(db: Database) -> AsyncIterator[None]:
    """The writer thread is busy with a first write for the duration of the block: writes made in
    it queue up (and run as one batch once it is left)."""
    release = threading.Event()
    started = threading.Event()

    def blocker(c: sqlite3.Connection) -> None:
        started.set()
        assert release.wait(5)

    first = asyncio.ensure_future(db.write(blocker))
    await asyncio.to_thread(started.wait, 5)
    try:
        yield
    finally:
        release.set()
        await first


async def _queued_behind_a_blocker(
    db: Database, writes: list[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """Run ``writes`` as one batch: they are queued while the writer is held by a first write."""
    async with _writer_held(db):
        pending = [asyncio.ensure_future(db.write(w)) for w in writes]
        await asyncio.sleep(0)  # every write is queued before the writer is released
    return await asyncio.gather(*pending, return_exceptions=True)


def _insert(v: int) -> Callable[[sqlite3.Connection], int]:
    def run(c: sqlite3.Connection) -> int:
        c.execute("INSERT INTO n VALUES (?)", (v,))
        return v

    return run


async def test_a_failing_write_in_a_batch_rolls_back_only_itself(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:

        def half(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO n VALUES (2)")
            raise RuntimeError("crash after the insert")

        outcomes = await _queued_behind_a_blocker(db, [_insert(1), half, _insert(3)])
        assert outcomes[0] == 1 and outcomes[2] == 3
        assert isinstance(outcomes[1], RuntimeError)
        assert await db.read(lambda c: sorted(r[0] for r in c.execute("SELECT v FROM n"))) == [1, 3]
    finally:
        await db.close()


async def test_when_sqlite_abandons_the_transaction_the_whole_batch_before_it_raises(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:
        await db.write(lambda c: c.execute("CREATE TABLE boom (v INT)"))
        await db.write(
            lambda c: c.execute(
                "CREATE TRIGGER no_boom BEFORE INSERT ON boom BEGIN SELECT RAISE(ROLLBACK, 'boom'); END"
            )
        )
        outcomes = await _queued_behind_a_blocker(
            db, [_insert(1), lambda c: c.execute("INSERT INTO boom VALUES (1)"), _insert(3)]
        )
        assert isinstance(outcomes[0], StoreError) and "rolled back" in str(outcomes[0])
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert outcomes[2] == 3
        assert await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM n")]) == [3]
    finally:
        await db.close()


async def test_a_write_whose_caller_gave_up_before_it_ran_is_not_applied(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:
        async with _writer_held(db):
            doomed = asyncio.ensure_future(db.write(_insert(7)))
            await asyncio.sleep(0)
            doomed.cancel()
            await asyncio.sleep(0)
        await db.write(_insert(8))  # the writer has passed the cancelled write
        assert doomed.cancelled()
        assert await db.read(lambda c: [r[0] for r in c.execute("SELECT v FROM n")]) == [8]
    finally:
        await db.close()


async def test_a_read_sees_the_write_that_just_returned(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:
        for v in range(50):
            await db.write(_insert(v))
            assert await db.read(lambda c: c.execute("SELECT MAX(v) FROM n").fetchone()[0]) == v
    finally:
        await db.close()


async def test_a_long_read_moves_off_the_loop_and_returns_everything(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:
        await db.write(lambda c: c.executemany("INSERT INTO n VALUES (?)", ((v,) for v in range(20_000))))
        threads: list[int] = []

        def scan(c: sqlite3.Connection) -> int:
            threads.append(threading.get_ident())
            return sum(r[0] for r in c.execute("SELECT v FROM n"))

        assert await db.read(scan) == sum(range(20_000))
        assert threads[0] == threading.get_ident()  # tried on the loop first …
        assert threads[-1] != threading.get_ident()  # … and finished on the reader thread
        point: list[int] = []

        def one(c: sqlite3.Connection) -> int:
            point.append(threading.get_ident())
            return int(c.execute("SELECT v FROM n WHERE rowid = 5").fetchone()[0])

        assert await db.read(one) == 4
        assert point == [threading.get_ident()]  # a short read stays on the loop
    finally:
        await db.close()


async def test_a_read_cannot_write(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.read(lambda c: c.execute("INSERT INTO n VALUES (1)"))
        assert await db.read(lambda c: c.execute("SELECT COUNT(*) FROM n").fetchone()[0]) == 0
    finally:
        await db.close()


async def test_a_closed_database_says_so(tmp_path: Path) -> None:
    db = await _open_with_table(tmp_path)
    await db.close()
    with pytest.raises(StoreError, match="closed"):
        await db.read(lambda c: c.execute("SELECT 1").fetchone())
    with pytest.raises(StoreError, match="closed"):
        await db.write(_insert(1))
