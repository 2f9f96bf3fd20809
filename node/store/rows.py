"""Typed rows and the SQL that reads and writes them. Plain functions over a ``sqlite3.Connection``,
meant to run inside :meth:`node.store.Database.write` / :meth:`~node.store.Database.read`."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any, Literal

Role = Literal["inviter", "acceptor"]
State = Literal["pending", "active", "deactivated", "error", "deleted"]
LinkMode = Literal["listen", "dial", "relay"]


@dataclass
class ConnectionRow:
    id: bytes
    name: str
    role: Role
    state: State
    link: LinkMode
    expires_at: int
    created_at: float
    updated_at: float
    error: str | None = None
    url: str | None = None
    project: str | None = None
    code: str | None = None
    peer_name: str | None = None
    peer_sign: bytes | None = None
    peer_box: bytes | None = None
    accept_request: bytes | None = None
    pair_envelope: bytes | None = None
    own_reach: str | None = None
    send_next: int = 1
    recv_next: int = 1
    last_contact: float | None = None


_COLUMNS = tuple(f.name for f in fields(ConnectionRow))


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> ConnectionRow:
    names = [d[0] for d in cursor.description]
    return ConnectionRow(**dict(zip(names, values, strict=True)))


def insert_connection(conn: sqlite3.Connection, row: ConnectionRow) -> None:
    values = [getattr(row, c) for c in _COLUMNS]
    conn.execute(
        f"INSERT INTO connections ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
        values,
    )


def update_connection(conn: sqlite3.Connection, conn_id: bytes, **changes: Any) -> None:
    unknown = set(changes) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown connection columns {sorted(unknown)}")
    sets = ", ".join(f"{k} = ?" for k in changes)
    conn.execute(f"UPDATE connections SET {sets} WHERE id = ?", [*changes.values(), conn_id])


def get_connection(conn: sqlite3.Connection, conn_id: bytes) -> ConnectionRow | None:
    cur = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM connections WHERE id = ?", (conn_id,))
    values = cur.fetchone()
    return None if values is None else _row(cur, values)


def find_connection(conn: sqlite3.Connection, name: str) -> ConnectionRow | None:
    cur = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM connections WHERE name = ? AND state != 'deleted'", (name,)
    )
    values = cur.fetchone()
    return None if values is None else _row(cur, values)


def list_connections(conn: sqlite3.Connection, *, include_deleted: bool = False) -> list[ConnectionRow]:
    where = "" if include_deleted else "WHERE state != 'deleted'"
    cur = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM connections {where} ORDER BY created_at, name")
    return [_row(cur, v) for v in cur.fetchall()]


def name_taken(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM connections WHERE name = ? AND state != 'deleted'", (name,)).fetchone()
        is not None
    )


def delete_connection_row(conn: sqlite3.Connection, conn_id: bytes) -> None:
    """Remove every trace of a connection (only for one that never got anywhere)."""
    conn.execute("DELETE FROM outbox WHERE conn_id = ?", (conn_id,))
    conn.execute("DELETE FROM inbox WHERE conn_id = ?", (conn_id,))
    conn.execute("DELETE FROM connections WHERE id = ?", (conn_id,))


# -- outbox -------------------------------------------------------------------------------------


def outbox_put(
    conn: sqlite3.Connection, conn_id: bytes, items: list[tuple[int, str, bytes]], send_next: int, now: float
) -> None:
    conn.executemany(
        "INSERT INTO outbox (conn_id, seq, type, envelope, created_at) VALUES (?, ?, ?, ?, ?)",
        [(conn_id, seq, t, env, now) for seq, t, env in items],
    )
    conn.execute("UPDATE connections SET send_next = ? WHERE id = ?", (send_next, conn_id))


def outbox_put_replies(
    conn: sqlite3.Connection,
    conn_id: bytes,
    items: list[tuple[int, str, bytes]],
    send_next: int,
    answered: list[int],
    now: float,
) -> int:
    """:func:`outbox_put`, and the inbox rows these messages answer marked processed in the same
    transaction (a reply and its mark are kept together or not at all); returns the rows marked."""
    outbox_put(conn, conn_id, items, send_next, now)
    return inbox_mark_processed(conn, conn_id, answered, now) if answered else 0


def outbox_ack(conn: sqlite3.Connection, conn_id: bytes, upto: int) -> None:
    conn.execute("DELETE FROM outbox WHERE conn_id = ? AND seq <= ?", (conn_id, upto))


def outbox_all(conn: sqlite3.Connection, conn_id: bytes) -> dict[int, bytes]:
    cur = conn.execute("SELECT seq, envelope FROM outbox WHERE conn_id = ? ORDER BY seq", (conn_id,))
    return {int(seq): bytes(env) for seq, env in cur.fetchall()}


def outbox_has(conn: sqlite3.Connection, conn_id: bytes, seq: int) -> bool:
    row = conn.execute("SELECT 1 FROM outbox WHERE conn_id = ? AND seq = ?", (conn_id, seq)).fetchone()
    return row is not None


# -- inbox --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxRow:
    seq: int
    type: str
    body: bytes
    received_at: float
    processed_at: float | None


def inbox_put(
    conn: sqlite3.Connection,
    conn_id: bytes,
    items: list[tuple[int, str, bytes, float | None]],
    recv_next: int,
    now: float,
) -> None:
    conn.executemany(
        "INSERT INTO inbox (conn_id, seq, type, body, received_at, processed_at) VALUES (?, ?, ?, ?, ?, ?)",
        [(conn_id, seq, t, body, now, processed) for seq, t, body, processed in items],
    )
    conn.execute(
        "UPDATE connections SET recv_next = ?, last_contact = ? WHERE id = ?", (recv_next, now, conn_id)
    )


def inbox_page(conn: sqlite3.Connection, conn_id: bytes, after: int, limit: int) -> list[InboxRow]:
    cur = conn.execute(
        "SELECT seq, type, body, received_at, processed_at FROM inbox WHERE conn_id = ? AND seq > ? "
        "ORDER BY seq LIMIT ?",
        (conn_id, after, limit),
    )
    return [InboxRow(int(s), str(t), bytes(b), float(r), p) for s, t, b, r, p in cur.fetchall()]


def inbox_unprocessed_count(conn: sqlite3.Connection, conn_id: bytes) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM inbox WHERE conn_id = ? AND processed_at IS NULL", (conn_id,)
    ).fetchone()
    return int(row[0])


def inbox_mark_processed(conn: sqlite3.Connection, conn_id: bytes, seqs: list[int], now: float) -> int:
    cur = conn.executemany(
        "UPDATE inbox SET processed_at = ? WHERE conn_id = ? AND seq = ? AND processed_at IS NULL",
        [(now, conn_id, s) for s in seqs],
    )
    return cur.rowcount
