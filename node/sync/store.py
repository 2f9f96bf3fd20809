"""The sync engine's rows and the SQL that reads and writes them (migration 2).

Plain functions over a ``sqlite3.Connection``, meant to run inside :meth:`node.store.Database.write`
(one transaction each) or :meth:`~node.store.Database.read`. No asyncio, no tracker, no peer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

TWIN_STATES = ("linked", "pending", "paused", "unlinked")


def now() -> float:
    return time.time()


@dataclass
class TwinRow:
    id: int
    conn_id: bytes
    local_id: str | None
    local_key: str | None
    remote_id: str | None
    remote_key: str | None
    remote_url: str | None
    state: str
    last_sent_version: int
    last_sent_fingerprint: str | None
    last_sent_replica: str | None
    last_sent_at: float | None
    last_sent_values: str | None
    last_received_version: int
    last_received_replica: str | None
    last_received_at: float | None
    last_applied: str | None
    pending_replica: str | None
    pending_version: int | None
    last_result: str | None
    baseline_fingerprint: str | None
    created_at: float
    updated_at: float

    def received(self) -> dict[str, Any] | None:
        return json.loads(self.last_received_replica) if self.last_received_replica else None

    def applied(self) -> dict[str, Any] | None:
        return json.loads(self.last_applied) if self.last_applied else None


_TWIN_COLS = tuple(f.name for f in fields(TwinRow))
_TWIN_SELECT = f"SELECT {', '.join(_TWIN_COLS)} FROM twins"


def _twin(values: tuple[Any, ...] | None) -> TwinRow | None:
    if values is None:
        return None
    row = TwinRow(*values)
    row.conn_id = bytes(row.conn_id)
    return row


def twin_by_local(c: sqlite3.Connection, conn_id: bytes, local_id: str) -> TwinRow | None:
    return _twin(
        c.execute(f"{_TWIN_SELECT} WHERE conn_id = ? AND local_id = ?", (conn_id, local_id)).fetchone()
    )


def twin_by_remote(c: sqlite3.Connection, conn_id: bytes, remote_id: str) -> TwinRow | None:
    return _twin(
        c.execute(f"{_TWIN_SELECT} WHERE conn_id = ? AND remote_id = ?", (conn_id, remote_id)).fetchone()
    )


def twin_by_id(c: sqlite3.Connection, twin_id: int) -> TwinRow | None:
    return _twin(c.execute(f"{_TWIN_SELECT} WHERE id = ?", (twin_id,)).fetchone())


def twins_of_issue(c: sqlite3.Connection, key_or_id: str) -> list[TwinRow]:
    cur = c.execute(f"{_TWIN_SELECT} WHERE local_key = ? OR local_id = ? ORDER BY id", (key_or_id, key_or_id))
    return [r for r in (_twin(v) for v in cur.fetchall()) if r is not None]


def insert_twin(c: sqlite3.Connection, conn_id: bytes, **values: Any) -> int:
    t = now()
    values = {"conn_id": conn_id, "created_at": t, "updated_at": t, **values}
    cols = ", ".join(values)
    cur = c.execute(
        f"INSERT INTO twins ({cols}) VALUES ({', '.join('?' * len(values))})", list(values.values())
    )
    return int(cur.lastrowid or 0)


def update_twin(c: sqlite3.Connection, twin_id: int, **changes: Any) -> None:
    unknown = set(changes) - set(_TWIN_COLS)
    if unknown:
        raise ValueError(f"unknown twin columns {sorted(unknown)}")
    changes["updated_at"] = now()
    sets = ", ".join(f"{k} = ?" for k in changes)
    c.execute(f"UPDATE twins SET {sets} WHERE id = ?", [*changes.values(), twin_id])


# -- comments and attachments ------------------------------------------------------------------


def comment_map(c: sqlite3.Connection, conn_id: bytes, local_issue_id: str) -> dict[str, str]:
    """Remote comment id → local comment id, for comments this node created from the peer's."""
    cur = c.execute(
        "SELECT remote_comment_id, local_comment_id FROM twin_comments "
        "WHERE conn_id = ? AND local_issue_id = ? AND direction = 'in'",
        (conn_id, local_issue_id),
    )
    return {str(r): str(lc) for r, lc in cur.fetchall()}


def put_comments(
    c: sqlite3.Connection, conn_id: bytes, local_issue_id: str, pairs: Sequence[tuple[str, str]]
) -> None:
    """Record comments created here from the peer's: (local comment id, remote comment id) pairs."""
    c.executemany(
        "INSERT OR REPLACE INTO twin_comments VALUES (?, ?, ?, ?, 'in')",
        [(conn_id, local_issue_id, local_cid, remote_cid) for local_cid, remote_cid in pairs],
    )


def drop_comment(c: sqlite3.Connection, conn_id: bytes, local_issue_id: str, remote_comment_id: str) -> None:
    c.execute(
        "DELETE FROM twin_comments WHERE conn_id = ? AND local_issue_id = ? AND remote_comment_id = ?",
        (conn_id, local_issue_id, remote_comment_id),
    )


def received_comment_ids(c: sqlite3.Connection, conn_id: bytes, local_issue_id: str) -> set[str]:
    return set(comment_map(c, conn_id, local_issue_id).values())


def attachment_map(c: sqlite3.Connection, conn_id: bytes, local_issue_id: str) -> dict[str, str]:
    """Remote attachment id → local attachment id ("" while its content is still being fetched)."""
    cur = c.execute(
        "SELECT remote_attachment_id, COALESCE(local_attachment_id, '') FROM twin_attachments "
        "WHERE conn_id = ? AND local_issue_id = ? AND direction = 'in'",
        (conn_id, local_issue_id),
    )
    return {str(r): str(la) for r, la in cur.fetchall()}


def received_attachment_ids(c: sqlite3.Connection, conn_id: bytes, local_issue_id: str) -> set[str]:
    return {v for v in attachment_map(c, conn_id, local_issue_id).values() if v}


@dataclass
class Transfer:
    local_issue_id: str
    remote_attachment_id: str
    sha256: str
    filename: str
    mime_type: str
    size: int


def put_transfer(c: sqlite3.Connection, conn_id: bytes, t: Transfer) -> None:
    c.execute(
        "INSERT OR IGNORE INTO twin_attachments (conn_id, local_issue_id, local_attachment_id, "
        "remote_attachment_id, direction, sha256, filename, mime_type, size, state) "
        "VALUES (?, ?, NULL, ?, 'in', ?, ?, ?, ?, 'requested')",
        (conn_id, t.local_issue_id, t.remote_attachment_id, t.sha256, t.filename, t.mime_type, t.size),
    )


def transfers_for(c: sqlite3.Connection, conn_id: bytes, sha256: str) -> list[Transfer]:
    cur = c.execute(
        "SELECT local_issue_id, remote_attachment_id, sha256, filename, mime_type, size FROM "
        "twin_attachments "
        "WHERE conn_id = ? AND sha256 = ? AND state = 'requested' AND direction = 'in'",
        (conn_id, sha256),
    )
    return [Transfer(*v) for v in cur.fetchall()]


def finish_transfer(
    c: sqlite3.Connection,
    conn_id: bytes,
    local_issue_id: str,
    remote_attachment_id: str,
    *,
    local_attachment_id: str | None,
    error: str | None = None,
) -> None:
    c.execute(
        "UPDATE twin_attachments SET local_attachment_id = ?, state = ?, error = ? "
        "WHERE conn_id = ? AND local_issue_id = ? AND remote_attachment_id = ? AND direction = 'in'",
        (
            local_attachment_id,
            "failed" if error else "done",
            error,
            conn_id,
            local_issue_id,
            remote_attachment_id,
        ),
    )


def put_chunk(c: sqlite3.Connection, conn_id: bytes, sha256: str, offset: int, data: bytes) -> int:
    """Stage one chunk; returns how many bytes of this blob are staged so far."""
    c.execute("INSERT OR REPLACE INTO blob_chunks VALUES (?, ?, ?, ?)", (conn_id, sha256, offset, data))
    row = c.execute(
        "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM blob_chunks WHERE conn_id = ? AND sha256 = ?",
        (conn_id, sha256),
    ).fetchone()
    return int(row[0])


def read_chunks(c: sqlite3.Connection, conn_id: bytes, sha256: str) -> bytes:
    cur = c.execute(
        "SELECT data FROM blob_chunks WHERE conn_id = ? AND sha256 = ? ORDER BY offset", (conn_id, sha256)
    )
    return b"".join(bytes(d) for (d,) in cur.fetchall())


def drop_chunks(c: sqlite3.Connection, conn_id: bytes, sha256: str) -> None:
    c.execute("DELETE FROM blob_chunks WHERE conn_id = ? AND sha256 = ?", (conn_id, sha256))


# -- errors ---------------------------------------------------------------------------------------


def record_error(
    c: sqlite3.Connection,
    *,
    conn_id: bytes | None,
    entity: str | None,
    kind: str,
    message: str,
    line: int | None = None,
    paused: bool = False,
    state: str = "open",
    local_id: str | None = None,
    remote_id: str | None = None,
    direction: str | None = None,
) -> int:
    """One live row per (connection, entity, kind): repeated failures raise its count."""
    t = now()
    row = c.execute(
        "SELECT id FROM sync_errors WHERE conn_id IS ? AND entity IS ? AND kind = ? AND state != 'resolved'",
        (conn_id, entity, kind),
    ).fetchone()
    if row is not None:
        c.execute(
            "UPDATE sync_errors SET message = ?, line = ?, state = ?, paused = MAX(paused, ?), "
            "count = count + 1, last_seen = ?, local_id = COALESCE(?, local_id), "
            "remote_id = COALESCE(?, remote_id), direction = COALESCE(?, direction) WHERE id = ?",
            (message, line, state, int(paused), t, local_id, remote_id, direction, row[0]),
        )
        return int(row[0])
    cur = c.execute(
        "INSERT INTO sync_errors (conn_id, entity, local_id, remote_id, direction, kind, message, line, "
        "state, paused, count, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        (conn_id, entity, local_id, remote_id, direction, kind, message, line, state, int(paused), t, t),
    )
    return int(cur.lastrowid or 0)


def resolve_errors(
    c: sqlite3.Connection, *, conn_id: bytes, entity: str | None, kinds: tuple[str, ...] | None = None
) -> int:
    """Close live errors of an entity (after a success). Returns how many."""
    where = "conn_id = ? AND entity IS ? AND state != 'resolved'"
    args: list[Any] = [conn_id, entity]
    if kinds:
        where += f" AND kind IN ({', '.join('?' * len(kinds))})"
        args.extend(kinds)
    cur = c.execute(
        f"UPDATE sync_errors SET state = 'resolved', paused = 0, last_seen = ? WHERE {where}", [now(), *args]
    )
    return cur.rowcount


ERROR_COLS = (
    "id, conn_id, entity, local_id, remote_id, direction, kind, message, line, state, paused, count, "
    "first_seen, last_seen"
)


@dataclass
class ErrorRow:
    id: int
    conn_id: bytes | None
    entity: str | None
    local_id: str | None
    remote_id: str | None
    direction: str | None
    kind: str
    message: str
    line: int | None
    state: str
    paused: int
    count: int
    first_seen: float
    last_seen: float


def get_error(c: sqlite3.Connection, error_id: int) -> ErrorRow | None:
    v = c.execute(f"SELECT {ERROR_COLS} FROM sync_errors WHERE id = ?", (error_id,)).fetchone()
    return None if v is None else ErrorRow(*v)


def list_errors(c: sqlite3.Connection, include_resolved: bool) -> list[ErrorRow]:
    where = "" if include_resolved else "WHERE state != 'resolved'"
    cur = c.execute(f"SELECT {ERROR_COLS} FROM sync_errors {where} ORDER BY last_seen DESC, id DESC")
    return [ErrorRow(*v) for v in cur.fetchall()]


# -- cursors (for intake) -------------------------------------------------------------------------


def get_cursor(c: sqlite3.Connection, key: str) -> str | None:
    row = c.execute("SELECT value FROM cursors WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_cursor(c: sqlite3.Connection, key: str, value: str) -> None:
    c.execute("INSERT OR REPLACE INTO cursors (key, value) VALUES (?, ?)", (key, value))


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
