from __future__ import annotations

import sqlite3
from pathlib import Path

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
    import asyncio

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
