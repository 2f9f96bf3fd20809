"""``tandem relay``: a store-and-forward mailbox between private nodes.

When both nodes of a connection are private, neither can reach the other, so both dial a relay. The
relay only ever holds sealed envelopes: it parses the routing header (``protocol.read_header``) to
file each envelope in the mailbox of (recipient node id, connection id), and nothing else. It can
neither read a message (it has no keys) nor forge one (envelopes are authenticated end to end, and it
accepts a deposit only from the node the header names as sender).

What it must never do: hold keys, parse anything past the header, let one client's behaviour (garbage,
floods, a full mailbox) affect another client, or lose an envelope it acknowledged as stored (before
``max_age``, when the expiry sweep deletes what nobody collected).

Storage is bounded per mailbox, per sender node id (across all the mailboxes it deposits into, so one
identity cannot fill the relay for everyone) and for the whole relay. Node ids cost nothing to make, so
an open relay can still be filled by someone minting many identities; that needs a bound on who may
connect, which the relay leaves to the network in front of it.

Shape: one aiohttp app; one :class:`MailboxStore` (SQLite in WAL mode, one writer task that
commits deposits and deletions in groups, a separate read connection for delivery); one
:class:`_NodeSession` per authenticated WebSocket, with a delivery task that pushes stored envelopes
in relay-id order (woken by deposits and acks, never polling) and a reply task that answers deposits
in order. The wire format lives in :mod:`node.transport.relay_client`; ``docs/relay.md`` is the
operator's page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import aiosqlite
import click
import yarl
from aiohttp import web
from click.decorators import FC
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from node.tasks import cancel_and_wait
from node.transport.relay_client import (
    CLOSE_AUTH_FAILED,
    CLOSE_AUTH_TIMEOUT,
    CLOSE_REPLACED,
    PUSH_PREFIX,
    REFUSALS,
    REFUSE_AUTH,
    REFUSE_BAD_FRAME,
    REFUSE_FORGED_SENDER,
    REFUSE_MAILBOX_FULL,
    REFUSE_MALFORMED,
    REFUSE_RELAY_FULL,
    REFUSE_SENDER_FULL,
    REFUSE_TOO_LARGE,
    REFUSE_UNAVAILABLE,
    WS_PATH,
    auth_payload,
    random_challenge,
)
from protocol import InvalidMessage, MalformedEnvelope, PublicIdentity, read_header, render_node_id
from protocol.envelope import Header
from protocol.identity import b64, unb64

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DB_NAME = "relay.sqlite3"
INFO_NAME = "relay.json"

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the relay id; never reused, even after a restart
        recipient BLOB NOT NULL,
        connection BLOB NOT NULL,
        sender BLOB NOT NULL,
        size INTEGER NOT NULL,
        stored_at REAL NOT NULL,
        envelope BLOB NOT NULL
    );
    CREATE INDEX messages_by_recipient ON messages (recipient, id);
    """,
    # stored_at becomes wall-clock Unix time (version 1 wrote the event loop's monotonic clock, which
    # means nothing after a reboot); rows of unknown age start their max_age from the upgrade.
    2: """
    UPDATE messages SET stored_at = CAST(strftime('%s', 'now') AS REAL);
    CREATE INDEX messages_by_age ON messages (stored_at);
    """,
}


@dataclass(frozen=True)
class RelayLimits:
    """Every bound the relay enforces. Per connection = per (recipient node id, connection id)."""

    max_messages_per_connection: int = 10_000
    max_bytes_per_connection: int = 64 * 1024 * 1024
    max_message_bytes: int = 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    #: Stored FROM one authenticated sender node id, across all mailboxes.
    max_messages_per_sender: int = 4 * 10_000
    max_bytes_per_sender: int = 4 * 64 * 1024 * 1024
    #: Seconds an envelope may wait for its recipient before the expiry sweep deletes it.
    max_age: float = 30 * 24 * 3600.0
    #: Seconds between expiry sweeps (at most max_age / 2 apart).
    expiry_interval: float = 3600.0
    #: Pushed-but-unacked envelopes per node socket (flow control towards slow nodes).
    push_window: int = 256
    push_window_bytes: int = 8 * 1024 * 1024
    #: Deposits read from one socket but not yet answered; beyond it the relay stops reading it.
    max_pending_deposits: int = 1024
    auth_timeout: float = 10.0
    heartbeat: float = 20.0

    def __post_init__(self) -> None:
        for name in (
            "max_messages_per_connection",
            "max_bytes_per_connection",
            "max_message_bytes",
            "max_total_bytes",
            "max_messages_per_sender",
            "max_bytes_per_sender",
            "push_window",
            "push_window_bytes",
            "max_pending_deposits",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.auth_timeout <= 0 or self.heartbeat <= 0 or self.max_age <= 0 or self.expiry_interval <= 0:
            raise ValueError("timeouts must be positive")

    @property
    def sweep_every(self) -> float:
        return min(self.expiry_interval, self.max_age / 2)


class RelayStoreError(Exception):
    """The mailbox database cannot be used (newer schema, unwritable, closed)."""


MailboxKey = tuple[bytes, bytes]  # (recipient node id, connection id)


@dataclass
class _Usage:
    count: int = 0
    size: int = 0


_K = TypeVar("_K")


def _add_usage(table: dict[_K, _Usage], key: _K, count: int, size: int) -> None:
    usage = table.setdefault(key, _Usage())
    usage.count += count
    usage.size += size
    if usage.count <= 0:
        del table[key]


@dataclass
class _Insert:
    relay_id: int
    header: Header
    envelope: bytes
    future: asyncio.Future[int]


@dataclass
class _Delete:
    relay_ids: list[int]


@dataclass
class _Expire:
    cutoff: float  # delete what was stored before this Unix time
    future: asyncio.Future[int]


@dataclass(frozen=True)
class StoredEnvelope:
    relay_id: int
    connection_id: bytes
    size: int
    envelope: bytes


class MailboxStore:
    """The relay's durable mailboxes. Quotas are checked and reserved in memory at deposit time, so
    a refusal is immediate; rows are written by one writer task that commits in groups. Deletions
    (acks, expiry) are accounted from the rows the database actually deleted, so an envelope that
    expired while pushed and is acked afterwards is not subtracted twice."""

    def __init__(
        self,
        path: Path,
        limits: RelayLimits,
        *,
        on_committed: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.limits = limits
        self._on_committed = on_committed  # callable(set of recipient ids) after each insert commit
        self._clock = clock  # Unix time; stored_at and expiry use it
        self._write: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None
        self._usage: dict[MailboxKey, _Usage] = {}
        self._senders: dict[bytes, _Usage] = {}
        self.total_count = 0
        self.total_bytes = 0
        self._next_id = 1
        self._queue: asyncio.Queue[_Insert | _Delete | _Expire | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._failed: str | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._write = await aiosqlite.connect(self.path, isolation_level=None)
            await self._write.execute("PRAGMA journal_mode=WAL")
            await self._write.execute("PRAGMA synchronous=FULL")  # "stored" means on disk
            await self._migrate(self._write)
            self._read = await aiosqlite.connect(self.path, isolation_level=None)
            await self._read.execute("PRAGMA query_only=1")
            async with self._write.execute(
                "SELECT recipient, connection, COUNT(*), SUM(size) FROM messages GROUP BY 1, 2"
            ) as cursor:
                async for recipient, connection, count, size in cursor:
                    self._usage[(bytes(recipient), bytes(connection))] = _Usage(count, size)
                    self.total_count += count
                    self.total_bytes += size
            async with self._write.execute(
                "SELECT sender, COUNT(*), SUM(size) FROM messages GROUP BY 1"
            ) as cursor:
                async for sender, count, size in cursor:
                    self._senders[bytes(sender)] = _Usage(count, size)
            async with self._write.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'") as cur:
                row = await cur.fetchone()
            self._next_id = (row[0] if row else 0) + 1
        except sqlite3.Error as exc:
            await self.close()
            raise RelayStoreError(f"cannot open the relay database {self.path}: {exc}") from exc
        except RelayStoreError:
            await self.close()
            raise
        self._writer = asyncio.create_task(self._write_loop(), name="relay store writer")

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise RelayStoreError(
                f"the relay database {self.path} has schema version {version}, newer than this "
                f"relay understands ({SCHEMA_VERSION}); upgrade Tandem"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            await db.executescript(f"BEGIN; {_MIGRATIONS[number]} PRAGMA user_version = {number}; COMMIT;")

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while not self._queue.empty():  # queued behind the stop marker: answer rather than hang
            item = self._queue.get_nowait()
            if isinstance(item, _Insert | _Expire) and not item.future.done():
                item.future.set_exception(RelayStoreError("the relay store is closed"))
        for db in (self._read, self._write):
            if db is not None:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await db.close()
        self._read = self._write = None

    # -- quotas and usage

    @property
    def mailbox_count(self) -> int:
        return len(self._usage)

    @property
    def sender_count(self) -> int:
        return len(self._senders)

    def sender_usage(self, sender: bytes) -> tuple[int, int]:
        """(envelopes, bytes) stored from ``sender`` across all mailboxes."""
        usage = self._senders.get(sender)
        return (usage.count, usage.size) if usage else (0, 0)

    def refusal(self, header: Header, size: int) -> tuple[str, str] | None:
        """(reason, message) when this deposit does not fit, else None."""
        usage = self._usage.get((header.recipient, header.connection_id))
        count, used = (usage.count, usage.size) if usage else (0, 0)
        limits = self.limits
        if count + 1 > limits.max_messages_per_connection or used + size > limits.max_bytes_per_connection:
            return REFUSE_MAILBOX_FULL, (
                f"the mailbox of connection {header.connection_id.hex()} for node "
                f"{render_node_id(header.recipient)} is full ({count} messages, {used} bytes; limits "
                f"{limits.max_messages_per_connection} messages, {limits.max_bytes_per_connection} bytes); "
                "retry after the recipient has collected its messages"
            )
        sent, sent_bytes = self.sender_usage(header.sender)
        if sent + 1 > limits.max_messages_per_sender or sent_bytes + size > limits.max_bytes_per_sender:
            return REFUSE_SENDER_FULL, (
                f"node {render_node_id(header.sender)} already has {sent} messages, {sent_bytes} bytes "
                f"waiting on this relay across all its connections (limits {limits.max_messages_per_sender} "
                f"messages, {limits.max_bytes_per_sender} bytes per sender); retry after its recipients "
                "have collected them"
            )
        if self.total_bytes + size > limits.max_total_bytes:
            return REFUSE_RELAY_FULL, (
                f"the relay is full ({self.total_bytes} of {limits.max_total_bytes} bytes); retry later"
            )
        return None

    def _account(self, key: MailboxKey, sender: bytes, count: int, size: int) -> None:
        _add_usage(self._usage, key, count, size)
        _add_usage(self._senders, sender, count, size)
        self.total_count += count
        self.total_bytes += size

    # -- writes

    def deposit(self, header: Header, envelope: bytes) -> asyncio.Future[int]:
        """Reserve room and queue the envelope; the future resolves to its relay id once committed.
        The caller checks :meth:`refusal` first."""
        if self._writer is None or self._failed:
            raise RelayStoreError(self._failed or "the relay store is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        relay_id = self._next_id
        self._next_id += 1
        self._account((header.recipient, header.connection_id), header.sender, 1, len(envelope))
        self._queue.put_nowait(_Insert(relay_id, header, envelope, future))
        return future

    def delete(self, relay_ids: list[int]) -> None:
        """Queue the deletion of delivered envelopes (acked by their recipient); ids already gone
        (expired meanwhile) are skipped."""
        if relay_ids and self._writer is not None:
            self._queue.put_nowait(_Delete(list(relay_ids)))

    async def expire(self) -> int:
        """Delete every envelope stored more than ``limits.max_age`` seconds ago; how many were."""
        if self._writer is None or self._failed:
            raise RelayStoreError(self._failed or "the relay store is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Expire(self._clock() - self.limits.max_age, future))
        return await future

    async def _write_loop(self) -> None:
        assert self._write is not None
        db = self._write
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Insert | _Delete | _Expire] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < 512 and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            if not batch:
                continue
            inserts = [op for op in batch if isinstance(op, _Insert)]
            deletes = [relay_id for op in batch if isinstance(op, _Delete) for relay_id in op.relay_ids]
            expiries = [op for op in batch if isinstance(op, _Expire)]
            now = self._clock()
            deleted: list[tuple[int, MailboxKey, bytes, int]] = []  # (relay id, mailbox, sender, size)
            expired: list[int] = []
            try:
                await db.execute("BEGIN IMMEDIATE")
                if inserts:
                    await db.executemany(
                        "INSERT INTO messages (id, recipient, connection, sender, size, stored_at, envelope)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                op.relay_id,
                                op.header.recipient,
                                op.header.connection_id,
                                op.header.sender,
                                len(op.envelope),
                                now,
                                op.envelope,
                            )
                            for op in inserts
                        ],
                    )
                for start in range(0, len(deletes), 500):
                    chunk = deletes[start : start + 500]
                    deleted += await self._delete_returning(
                        db, f"id IN ({','.join('?' * len(chunk))})", chunk
                    )
                for expiry in expiries:
                    rows = await self._delete_returning(db, "stored_at < ?", [expiry.cutoff])
                    deleted += rows
                    expired.append(len(rows))
                await db.execute("COMMIT")
            except (sqlite3.Error, ValueError) as exc:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await db.execute("ROLLBACK")
                log.error("relay store: write failed: %s", exc)
                for op in inserts:
                    key = (op.header.recipient, op.header.connection_id)
                    self._account(key, op.header.sender, -1, -len(op.envelope))
                    if not op.future.done():
                        op.future.set_exception(RelayStoreError(f"the relay could not store it: {exc}"))
                for expiry in expiries:
                    if not expiry.future.done():
                        expiry.future.set_exception(RelayStoreError(f"the relay could not expire: {exc}"))
                continue
            for _, key, sender, size in deleted:
                self._account(key, sender, -1, -size)
            for expiry, count in zip(expiries, expired, strict=True):
                if not expiry.future.done():
                    expiry.future.set_result(count)
            for op in inserts:
                if not op.future.done():
                    op.future.set_result(op.relay_id)
            if inserts and self._on_committed is not None:
                self._on_committed({op.header.recipient for op in inserts})

    @staticmethod
    async def _delete_returning(
        db: aiosqlite.Connection, where: str, params: list[Any]
    ) -> list[tuple[int, MailboxKey, bytes, int]]:
        async with db.execute(
            f"DELETE FROM messages WHERE {where} RETURNING id, recipient, connection, sender, size", params
        ) as cursor:
            return [
                (row[0], (bytes(row[1]), bytes(row[2])), bytes(row[3]), row[4])
                for row in await cursor.fetchall()
            ]

    # -- reads

    async def fetch(self, recipient: bytes, after: int, limit: int) -> list[StoredEnvelope]:
        """Committed envelopes for ``recipient`` with relay id > ``after``, oldest first."""
        if self._read is None:
            raise RelayStoreError("the relay store is closed")
        async with self._read.execute(
            "SELECT id, connection, size, envelope FROM messages WHERE recipient = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (recipient, after, limit),
        ) as cursor:
            return [StoredEnvelope(row[0], bytes(row[1]), row[2], bytes(row[3])) async for row in cursor]


# ---------------------------------------------------------------------------------------------- metrics


class RelayMetrics:
    def __init__(self, relay: RelayServer) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("tandem_relay_mailboxes", "Mailboxes holding at least one envelope", registry=r).set_function(
            lambda: relay.store.mailbox_count
        )
        Gauge("tandem_relay_stored_messages", "Envelopes stored, not yet acked", registry=r).set_function(
            lambda: relay.store.total_count
        )
        Gauge("tandem_relay_stored_bytes", "Bytes of envelopes stored", registry=r).set_function(
            lambda: relay.store.total_bytes
        )
        Gauge("tandem_relay_connected_nodes", "Authenticated node connections", registry=r).set_function(
            lambda: len(relay.sessions)
        )
        Gauge("tandem_relay_senders", "Sender node ids with envelopes stored", registry=r).set_function(
            lambda: relay.store.sender_count
        )
        self.deposits = Counter("tandem_relay_deposits", "Envelopes stored", registry=r)
        self.deliveries = Counter(
            "tandem_relay_deliveries", "Envelopes pushed to their recipient", registry=r
        )
        self.acks = Counter("tandem_relay_acks", "Pushed envelopes acked and deleted", registry=r)
        self.expired = Counter(
            "tandem_relay_expired", "Envelopes deleted uncollected after max_age", registry=r
        )
        self.connections = Counter("tandem_relay_connections", "Successful authentications", registry=r)
        self.rejects = Counter(
            "tandem_relay_rejects", "Refused deposits, frames and logins by reason", ["reason"], registry=r
        )
        for reason in REFUSALS:
            self.rejects.labels(reason)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ---------------------------------------------------------------------------------------------- server


@dataclass(eq=False)
class _NodeSession:
    ws: web.WebSocketResponse
    node_id: bytes
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inflight: dict[int, tuple[MailboxKey, int]] = field(default_factory=dict)
    inflight_bytes: int = 0
    replies: asyncio.Queue[asyncio.Future[int] | dict[str, Any]] = field(default_factory=asyncio.Queue)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    unanswered: asyncio.Semaphore = field(default_factory=asyncio.Semaphore)

    async def send_json(self, frame: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_str(json.dumps(frame))


class RelayServer:
    """The relay as an object: ``await start(host, port)``, ``url``, ``await stop()``."""

    def __init__(
        self,
        home: Path,
        limits: RelayLimits | None = None,
        *,
        public_urls: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = Path(home)
        self.limits = limits or RelayLimits()
        self.public_urls = frozenset(public_urls)
        self.store = MailboxStore(
            self.home / DB_NAME, self.limits, on_committed=self._wake_recipients, clock=clock
        )
        self.sessions: dict[bytes, _NodeSession] = {}
        self.metrics = RelayMetrics(self)
        self._runner: web.AppRunner | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{WS_PATH}"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get(WS_PATH, self._handle_ws)
        app.router.add_get("/healthz", self._handle_health)
        app.router.add_get("/metrics", self._handle_metrics)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise RelayStoreError(
                f"cannot create the relay home {self.home}: {exc.strerror or exc}"
            ) from None
        await self.store.open()
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            await self.store.close()
            raise
        self.host = host
        self.port = int(self._runner.addresses[0][1])
        info = {"url": self.url, "host": self.host, "port": self.port, "pid": os.getpid()}
        tmp = self.home / (INFO_NAME + ".tmp")
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.home / INFO_NAME)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="relay expiry sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait([self._sweeper])
            self._sweeper = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.store.close()
        with contextlib.suppress(OSError):
            (self.home / INFO_NAME).unlink()

    async def _on_shutdown(self, app: web.Application) -> None:
        for session in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await session.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"relay shutting down")

    async def sweep(self) -> int:
        """Delete envelopes older than ``max_age`` now; how many were (also counted in /metrics)."""
        count = await self.store.expire()
        if count:
            self.metrics.expired.inc(count)
            log.info("relay: deleted %d envelopes uncollected for %s s", count, self.limits.max_age)
        return count

    async def _sweep_loop(self) -> None:
        """Sweep at start (the relay may have been down a long time), then every ``sweep_every``."""
        while True:
            try:
                await self.sweep()
            except (RelayStoreError, sqlite3.Error, ValueError) as exc:
                log.error("relay: expiry sweep failed: %s", exc)
            await asyncio.sleep(self.limits.sweep_every)

    def _wake_recipients(self, recipients: set[bytes]) -> None:
        for recipient in recipients:
            session = self.sessions.get(recipient)
            if session is not None:
                session.wake.set()

    # -- HTTP

    async def _handle_health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "connected_nodes": len(self.sessions), "stored_messages": self.store.total_count}
        )

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- WebSocket

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.limits.heartbeat,
            # Frames up to twice the limit get a polite refusal; beyond that aiohttp closes with 1009.
            max_msg_size=2 * self.limits.max_message_bytes + 1024,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {"error": f"this is a WebSocket endpoint: connect with a Tandem node to {WS_PATH}"},
                status=426,
                headers={"Upgrade": "websocket"},
            )
        await ws.prepare(request)
        try:
            node_id = await self._authenticate(request, ws)
        except (ConnectionError, RuntimeError):
            node_id = None  # gone during the handshake
        if node_id is None:
            return ws
        session = _NodeSession(ws, node_id, unanswered=asyncio.Semaphore(self.limits.max_pending_deposits))
        previous = self.sessions.get(node_id)
        self.sessions[node_id] = session
        if previous is not None:
            log.info("node %s reconnected; closing its previous connection", render_node_id(node_id))
            for task in previous.tasks:  # stop pushing to it now; its close handshake may take long
                task.cancel()
            closing = asyncio.create_task(
                previous.ws.close(code=CLOSE_REPLACED, message=b"replaced by a newer connection")
            )
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)
        self.metrics.connections.inc()
        session.tasks = [
            asyncio.create_task(self._deliver(session), name="relay deliver"),
            asyncio.create_task(self._reply(session), name="relay reply"),
        ]
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await session.unanswered.acquire()  # a client that never reads stops being read
                    session.replies.put_nowait(self._admit(session, msg.data))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(session, msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    self._count_transport_error(ws)
                    break
        finally:
            for task in session.tasks:
                task.cancel()
            for task in session.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.sessions.get(node_id) is session:
                del self.sessions[node_id]
        return ws

    def _count_transport_error(self, ws: web.WebSocketResponse) -> None:
        exc = ws.exception()
        if isinstance(exc, aiohttp.WebSocketError) and exc.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            self.metrics.rejects.labels(REFUSE_TOO_LARGE).inc()
        else:
            self.metrics.rejects.labels(REFUSE_BAD_FRAME).inc()
        log.info("relay: closing a connection after a transport error: %s", exc)

    async def _authenticate(self, request: web.Request, ws: web.WebSocketResponse) -> bytes | None:
        challenge = random_challenge()
        await ws.send_str(
            json.dumps(
                {
                    "type": "challenge",
                    "challenge": b64(challenge),
                    "max_message_bytes": self.limits.max_message_bytes,
                }
            )
        )
        try:
            msg = await ws.receive(timeout=self.limits.auth_timeout)
        except TimeoutError:
            await self._refuse_auth(ws, "no authentication within the time limit", CLOSE_AUTH_TIMEOUT)
            return None
        if msg.type != aiohttp.WSMsgType.TEXT:
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.ERROR):
                await self._refuse_auth(ws, "expected an auth frame first")
            return None
        try:
            frame = json.loads(msg.data)
            if not isinstance(frame, dict) or frame.get("type") != "auth":
                raise ValueError("expected an auth frame first")
            identity = PublicIdentity.from_json(frame.get("identity"))
            url = frame.get("url")
            if not isinstance(url, str):
                raise ValueError("auth frame lacks the relay url the node dialled")
            self._check_url(request, url)
            signature = unb64(frame.get("signature"))  # type: ignore[arg-type]
        except (ValueError, TypeError, InvalidMessage) as exc:
            await self._refuse_auth(ws, f"bad auth frame: {exc}")
            return None
        if not identity.verify(auth_payload(challenge, url), signature):
            await self._refuse_auth(ws, "bad signature over the challenge")
            return None
        node_id = identity.node_id
        await ws.send_str(
            json.dumps(
                {
                    "type": "welcome",
                    "node_id": render_node_id(node_id),
                    "max_message_bytes": self.limits.max_message_bytes,
                }
            )
        )
        return node_id

    def _check_url(self, request: web.Request, url: str) -> None:
        """The node signed the URL it dialled; it must be this relay's, or the answer could have been
        relayed from another server."""
        if self.public_urls:
            if url not in self.public_urls:
                raise ValueError(f"url {url!r} is not one of this relay's public URLs")
            return
        try:
            signed = yarl.URL(url)
            here = yarl.URL(f"{signed.scheme}://{request.host}")
        except (ValueError, TypeError):
            raise ValueError(f"unreadable url {url!r}") from None
        if signed.scheme not in ("ws", "wss") or signed.path != request.path:
            raise ValueError(f"url {url!r} is not this relay's WebSocket endpoint")
        if (signed.host or "").lower() != (here.host or "").lower() or signed.port != here.port:
            raise ValueError(f"url {url!r} names another host than this relay ({request.host})")

    async def _refuse_auth(
        self, ws: web.WebSocketResponse, message: str, code: int = CLOSE_AUTH_FAILED
    ) -> None:
        self.metrics.rejects.labels(REFUSE_AUTH).inc()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps({"type": "error", "reason": REFUSE_AUTH, "message": message}))
        await ws.close(code=code, message=b"authentication failed")

    # -- deposits

    def _admit(self, session: _NodeSession, data: bytes) -> asyncio.Future[int] | dict[str, Any]:
        limit = self.limits.max_message_bytes
        if len(data) > limit:
            return self._refusal(
                REFUSE_TOO_LARGE, f"envelope of {len(data)} bytes exceeds the limit of {limit}"
            )
        try:
            header = read_header(data)
        except MalformedEnvelope as exc:
            return self._refusal(REFUSE_MALFORMED, f"not a Tandem envelope: {exc}")
        if header.sender != session.node_id:
            return self._refusal(
                REFUSE_FORGED_SENDER,
                f"envelope names sender {render_node_id(header.sender)} but this connection "
                f"authenticated as {render_node_id(session.node_id)}",
            )
        refusal = self.store.refusal(header, len(data))
        if refusal is not None:
            return self._refusal(*refusal)
        try:
            return self.store.deposit(header, bytes(data))
        except RelayStoreError as exc:
            return {"type": "refused", "reason": REFUSE_UNAVAILABLE, "message": str(exc)}

    def _refusal(self, reason: str, message: str) -> dict[str, Any]:
        self.metrics.rejects.labels(reason).inc()
        return {"type": "refused", "reason": reason, "message": message}

    async def _reply(self, session: _NodeSession) -> None:
        while True:
            item = await session.replies.get()
            if isinstance(item, asyncio.Future):
                try:
                    relay_id = await item
                except RelayStoreError as exc:
                    frame: dict[str, Any] = {
                        "type": "refused",
                        "reason": REFUSE_UNAVAILABLE,
                        "message": str(exc),
                    }
                else:
                    self.metrics.deposits.inc()
                    frame = {"type": "stored", "id": relay_id}
            else:
                frame = item
            try:
                await session.send_json(frame)
            except (ConnectionError, RuntimeError):
                return
            session.unanswered.release()

    # -- acks and other text frames

    async def _on_text(self, session: _NodeSession, text: str) -> None:
        try:
            try:
                frame = json.loads(text)
            except ValueError:
                raise ValueError("text frame is not JSON") from None
            if not isinstance(frame, dict) or frame.get("type") != "ack":
                raise ValueError("expected an ack frame")
            ids = frame.get("ids")
            if not isinstance(ids, list) or not all(type(i) is int for i in ids):
                raise ValueError("ack frame needs 'ids': a list of relay ids")
        except ValueError as exc:
            self.metrics.rejects.labels(REFUSE_BAD_FRAME).inc()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await session.send_json({"type": "error", "reason": REFUSE_BAD_FRAME, "message": str(exc)})
            return
        acked: list[int] = []
        for relay_id in ids:
            entry = session.inflight.pop(relay_id, None)
            if entry is None:
                continue  # not pushed on this connection (stale or made up): nothing to delete
            session.inflight_bytes -= entry[1]
            acked.append(relay_id)
        if acked:
            self.metrics.acks.inc(len(acked))
            self.store.delete(acked)
            session.wake.set()

    # -- delivery

    async def _deliver(self, session: _NodeSession) -> None:
        cursor = 0
        limits = self.limits
        while True:
            room = limits.push_window - len(session.inflight)
            if room <= 0 or session.inflight_bytes >= limits.push_window_bytes:
                session.wake.clear()
                await session.wake.wait()
                continue
            session.wake.clear()  # before the query, so a commit after it is not missed
            try:
                batch = await self.store.fetch(session.node_id, cursor, room)
            except (RelayStoreError, sqlite3.Error, ValueError) as exc:
                log.error("relay: cannot read mailboxes: %s", exc)
                await session.ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=b"store unavailable")
                return
            if not batch:
                await session.wake.wait()
                continue
            for item in batch:
                if session.inflight_bytes >= limits.push_window_bytes:
                    break
                session.inflight[item.relay_id] = ((session.node_id, item.connection_id), item.size)
                session.inflight_bytes += item.size
                cursor = item.relay_id
                try:
                    async with session.send_lock:
                        await session.ws.send_bytes(PUSH_PREFIX.pack(item.relay_id) + item.envelope)
                except (ConnectionError, RuntimeError):
                    return
                self.metrics.deliveries.inc()


# ---------------------------------------------------------------------------------------------- CLI


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port); ValueError naming the problem."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, got {port}")
    return host, port


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h`` or ``30d`` → seconds (> 0); ValueError naming the problem."""
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"expected a duration such as 3600, 12h or 30d, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


async def serve(
    home: Path, host: str, port: int, limits: RelayLimits, public_urls: Iterable[str] = ()
) -> None:
    """Run a relay until SIGINT/SIGTERM."""
    relay = RelayServer(home, limits, public_urls=public_urls)
    await relay.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    click.echo(f"tandem relay ready: {relay.url}")
    log.info(
        "relay home %s; limits: %d messages / %d bytes per connection, %d messages / %d bytes per sender, "
        "%d bytes per message, %d bytes in all; envelopes expire after %s s",
        home,
        limits.max_messages_per_connection,
        limits.max_bytes_per_connection,
        limits.max_messages_per_sender,
        limits.max_bytes_per_sender,
        limits.max_message_bytes,
        limits.max_total_bytes,
        limits.max_age,
    )
    try:
        await stop.wait()
    finally:
        log.info("relay stopping")
        await relay.stop()


def _listen_callback(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _duration_callback(ctx: click.Context, param: click.Parameter, value: str | float) -> float:
    if isinstance(value, float):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _limit_option(field_name: str, minimum: int, help: str) -> Callable[[FC], FC]:
    """``--max-…`` for one :class:`RelayLimits` field, defaulting to the field's default."""
    return click.option(
        "--" + field_name.replace("_", "-"),
        type=click.IntRange(min=minimum),
        default=getattr(RelayLimits, field_name),
        show_default=True,
        help=help,
    )


@click.command("relay")
@click.option(
    "--listen",
    "listen",
    callback=_listen_callback,
    metavar="HOST:PORT",
    required=True,
    help="Address to listen on, HOST:PORT (port 0: any free port).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TANDEM_HOME",
    default=Path(".tandem"),
    show_default=True,
    help="Directory for the relay database (relay.sqlite3) and relay.json. Also $TANDEM_HOME.",
)
@_limit_option("max_messages_per_connection", 1, "Envelopes held per (recipient, connection) mailbox.")
@_limit_option("max_bytes_per_connection", 1, "Bytes held per (recipient, connection) mailbox.")
@_limit_option("max_message_bytes", 128, "Largest envelope accepted.")
@_limit_option("max_total_bytes", 1, "Bytes held by the whole relay.")
@_limit_option(
    "max_messages_per_sender", 1, "Envelopes held from one sender node, all its mailboxes together."
)
@_limit_option("max_bytes_per_sender", 1, "Bytes held from one sender node, all its mailboxes together.")
@click.option(
    "--max-age",
    callback=_duration_callback,
    metavar="DURATION",
    default="30d",
    show_default=True,
    help="Delete envelopes not collected within this time: seconds, or with s/m/h/d (12h, 30d).",
)
@click.option(
    "--public-url",
    "public_urls",
    multiple=True,
    help="URL nodes dial (ws:// or wss://, with path), when behind a proxy; repeatable.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def relay_command(
    listen: tuple[str, int],
    home: Path,
    max_messages_per_connection: int,
    max_bytes_per_connection: int,
    max_message_bytes: int,
    max_total_bytes: int,
    max_messages_per_sender: int,
    max_bytes_per_sender: int,
    max_age: float,
    public_urls: tuple[str, ...],
    log_level: str,
) -> None:
    """Run a relay: a store-and-forward mailbox for private nodes.

    It holds only sealed envelopes and can neither read nor forge them. Nodes connect by WebSocket
    to /relay/v1/ws; GET /healthz and GET /metrics (Prometheus) are served too.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = RelayLimits(
        max_messages_per_connection=max_messages_per_connection,
        max_bytes_per_connection=max_bytes_per_connection,
        max_message_bytes=max_message_bytes,
        max_total_bytes=max_total_bytes,
        max_messages_per_sender=max_messages_per_sender,
        max_bytes_per_sender=max_bytes_per_sender,
        max_age=max_age,
    )
    host, port = listen
    try:
        asyncio.run(serve(home, host, port, limits, public_urls))
    except RelayStoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass


__all__ = [
    "REFUSE_SENDER_FULL",
    "MailboxStore",
    "RelayLimits",
    "RelayMetrics",
    "RelayServer",
    "RelayStoreError",
    "parse_duration",
    "parse_listen",
    "relay_command",
    "serve",
]
