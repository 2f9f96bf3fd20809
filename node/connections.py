"""Connections: pairing, lifecycle (pending → active ⇄ deactivated, error, deleted) and durable,
exactly-once delivery over whatever link currently carries a connection.

Rules (the durable part; see also :mod:`protocol.session`):

1. Sending is ONE store transaction — assign sequence numbers, store the sealed envelopes in the
   outbox, bump ``send_next`` — and only then the bytes go to the link (if one is up). A message
   therefore exists on the wire only if it exists in the outbox.
2. Receiving is ONE store transaction — insert the delivered messages into the inbox and bump
   ``recv_next`` (plus any state change they cause, e.g. a Welcome activating the connection) —
   and only then the ack goes out. An acked message is therefore always in the inbox.
3. An ack deletes the acked outbox rows (in the background when the ack came alone: rows that
   outlive a crash only rebuild a session with more unacked, which the peer's Hello acks again before
   anything is resent). At start each :class:`~protocol.Session` is rebuilt from
   ``send_next``, ``recv_next`` and the outbox, so after ``kill -9`` at any point the peer's resend
   and our resend (after the Hellos on the next link) complete delivery, once, in order.
4. All work on one connection (send, receive, state change) is serialised by its lock, so the
   in-memory session and the store never disagree about order.
5. Refusals (code used, expired, deactivated, unknown connection) are answered, counted and leave
   both stores unchanged; an acceptor whose pairing is refused forgets the connection entirely.

Transport code (WebSocket listener, dialer, relay) calls :meth:`ConnectionManager.on_pair`,
:meth:`~ConnectionManager.open_link`, :meth:`~ConnectionManager.attach`,
:meth:`~ConnectionManager.on_frame` and :meth:`~ConnectionManager.detach`; the admin API calls the
rest. Nothing here opens sockets itself except through the dial loop and relay factories it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from node.config import Config
from node.metrics import ConnectionGauge, NodeMetrics
from node.store import ConnectionRow, Database
from node.store import rows as q
from node.transport.link import Link, Opening
from protocol import (
    AuthenticationFailed,
    Bye,
    ChannelKeys,
    EnvelopeError,
    HandshakeError,
    Hello,
    InvalidMessage,
    Invitation,
    InvitationError,
    MalformedEnvelope,
    Message,
    NodeIdentity,
    Ping,
    Pong,
    Probe,
    PublicIdentity,
    Reach,
    SessionError,
    Welcome,
    WrongRecipient,
    check_welcome,
    decode_invitation,
    encode_invitation,
    make_accept,
    peek_accept,
    verification_string,
    verify_accept,
    welcome_confirm,
)
from protocol.errors import (
    CorruptedInvitation,
    ExpiredInvitation,
    NotAnInvitation,
    TamperedInvitation,
    UnsupportedVersion,
)
from protocol.identity import b32, node_id_for, render_node_id

log = logging.getLogger(__name__)

SOFTWARE = "tandem/0.1"
MAX_PARKED = 32
LINK_MESSAGES = frozenset({"probe", "welcome", "bye"})  # handled here: stored already processed


# -- errors ---------------------------------------------------------------------------------------


class ManagerError(Exception):
    """An admin request that cannot be done; ``code`` and ``str()`` go to the client."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFound(ManagerError):
    status = 404
    code = "not_found"


class Conflict(ManagerError):
    status = 409
    code = "conflict"


class InvitationRefused(ManagerError):
    """A code that cannot be accepted (locally, or refused by the inviter's node)."""

    status = 400


class PeerUnreachable(ManagerError):
    status = 504
    code = "peer_unreachable"


_INVITATION_CODES: list[tuple[type[InvitationError], str]] = [
    (NotAnInvitation, "not_an_invitation"),
    (UnsupportedVersion, "invitation_version"),
    (CorruptedInvitation, "invitation_corrupted"),
    (TamperedInvitation, "invitation_tampered"),
    (ExpiredInvitation, "invitation_expired"),
]


def invitation_error_code(exc: InvitationError) -> str:
    for cls, code in _INVITATION_CODES:
        if isinstance(exc, cls):
            return code
    return "invitation_invalid"


class Refusal(Exception):
    """A link opening or pairing request we turn down. ``code``/``message`` go to the peer in a text
    frame; ``reason`` is the metrics label."""

    def __init__(self, code: str, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


# -- runtime state --------------------------------------------------------------------------------


@dataclass(eq=False)
class Runtime:
    """The live side of one connection: its row, session, current link and waiters."""

    row: ConnectionRow
    session: Any  # protocol.Session | None (Any keeps mypy quiet about the Optional dance below)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    link: Link | None = None
    link_since: float | None = None
    link_error: str | None = None
    inbox_unprocessed: int = 0
    last_contact: float | None = None
    acked: asyncio.Condition = field(default_factory=asyncio.Condition)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # acceptor: welcomed or refused
    refusal: ManagerError | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # dial loop: try now
    dialer: asyncio.Task[None] | None = None
    # Outbox rows the peer acked are deleted in the background (see ConnectionManager._forget_acked).
    acked_to_delete: int = 0
    ack_deleter: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.row.name

    def wants_link(self) -> bool:
        if self.row.state == "active":
            return True
        return self.row.state == "pending" and (self.row.role == "acceptor" or self.row.link == "dial")


@dataclass(frozen=True)
class ProbeReport:
    sent: int
    first_seq: int
    last_seq: int
    acked: bool
    elapsed_ms: float
    rate_per_s: float
    rtt_ms: list[float]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sent": self.sent,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "acked": self.acked,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "messages_per_s": round(self.rate_per_s, 1),
        }
        if self.rtt_ms:
            ordered = sorted(self.rtt_ms)
            out["rtt_ms"] = {
                "min": round(ordered[0], 3),
                "p50": round(statistics.median(ordered), 3),
                "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
                "max": round(ordered[-1], 3),
            }
        return out


DialLoop = Callable[["ConnectionManager", Runtime], Coroutine[Any, Any, None]]


class RelayHub:
    """What the manager needs from relay mode (see :mod:`node.transport.via_relay`)."""

    async def ensure(self, url: str) -> None:
        raise NotImplementedError

    def link_for(self, url: str) -> Link | None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


Listener = Callable[[str, int, Message], Awaitable[None]]


def _now() -> float:
    return time.time()


def _nonce() -> bytes:
    return os.urandom(24)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def invitation_of(code: str) -> Invitation:
    """Decode a code we stored ourselves (its signature is re-checked; expiry is not)."""
    return decode_invitation(code, now=0)


def connection_id_text(conn_id: bytes) -> str:
    return b32(conn_id)


# -- the manager ----------------------------------------------------------------------------------


class ConnectionManager:
    def __init__(
        self,
        identity: NodeIdentity,
        config: Config,
        db: Database,
        *,
        peer_url: Callable[[], str | None],
        dial_loop: DialLoop | None = None,
        relays: RelayHub | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.db = db
        self._peer_url = peer_url
        self._dial_loop = dial_loop
        self.relays = relays
        self.runtimes: dict[bytes, Runtime] = {}
        self.metrics = NodeMetrics(self._gauges)
        self._parked: dict[bytes, list[asyncio.Future[Runtime]]] = {}
        self._listeners: list[Listener] = []
        self._deleted: set[bytes] = set()  # refused at once, never parked
        self._closing = False

    @property
    def node_name(self) -> str:
        return self.config.node.name

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        rows = await self.db.read(lambda c: q.list_connections(c, include_deleted=True))
        for row in rows:
            if row.state == "deleted":
                self._deleted.add(row.id)
                continue
            rt = Runtime(row, await self._load_session(row))
            rt.last_contact = row.last_contact
            rt.inbox_unprocessed = await self.db.read(
                functools.partial(q.inbox_unprocessed_count, conn_id=row.id)
            )
            self.runtimes[row.id] = rt
        for rt in list(self.runtimes.values()):
            await self._ensure_transport(rt)

    async def stop(self) -> None:
        self._closing = True
        for futures in self._parked.values():
            for fut in futures:
                fut.cancel()
        self._parked.clear()
        tasks = [rt.dialer for rt in self.runtimes.values() if rt.dialer is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for rt in self.runtimes.values():
            if rt.link is not None:
                await rt.link.close()
        for rt in self.runtimes.values():
            if rt.ack_deleter is not None:
                with contextlib.suppress(Exception):
                    await rt.ack_deleter
        if self.relays is not None:
            await self.relays.close()

    def add_listener(self, listener: Listener) -> None:
        """``await listener(connection_name, seq, message)`` after each delivered message is stored
        (for the sync engine). Called in order; an exception is logged, not retried."""
        self._listeners.append(listener)

    async def _load_session(self, row: ConnectionRow) -> Any:
        from protocol import Session

        keys = self._keys(row)
        if keys is None:
            return None
        unacked = await self.db.read(lambda c: q.outbox_all(c, row.id))
        return Session(keys, send_next=row.send_next, recv_next=row.recv_next, unacked=unacked)

    def _keys(self, row: ConnectionRow) -> ChannelKeys | None:
        if row.peer_sign is None or row.peer_box is None or row.state == "deleted":
            return None
        return ChannelKeys.derive(self.identity, row.id, row.peer_sign, row.peer_box)

    async def _ensure_transport(self, rt: Runtime) -> None:
        """Start whatever carries this connection: a dial loop, a relay, or nothing (we listen)."""
        if self._closing:
            return
        if rt.row.link == "relay" and self.relays is not None and rt.row.url:
            if rt.row.state in ("pending", "active"):
                await self.relays.ensure(rt.row.url)  # a pending inviter must hear the PAIR too
            link = self.relays.link_for(rt.row.url)
            if link is not None and rt.wants_link():
                await self.attach(rt, link)
            return
        if not rt.wants_link():
            return
        if rt.row.link == "dial" and self._dial_loop is not None:
            if rt.dialer is None or rt.dialer.done():
                rt.dialer = asyncio.create_task(self._dial_loop(self, rt), name=f"dial {rt.name}")
            else:
                rt.wake.set()

    # -- lookups ----------------------------------------------------------------------------------

    def get(self, name: str) -> Runtime:
        for rt in self.runtimes.values():
            if rt.row.name == name:
                return rt
        raise NotFound(f"no connection named {name!r}")

    def _gauges(self) -> list[ConnectionGauge]:
        return [
            ConnectionGauge(
                rt.name,
                len(rt.session.unacked()) if rt.session is not None else 0,
                rt.inbox_unprocessed,
                rt.link is not None,
                rt.row.state,
            )
            for rt in self.runtimes.values()
        ]

    def reach_label(self, row: ConnectionRow) -> str:
        return {"listen": "public", "dial": "private-dials-out", "relay": "relay"}[row.link]

    def verification(self, row: ConnectionRow) -> str | None:
        if row.peer_sign is None or row.peer_box is None:
            return None
        peer = PublicIdentity(row.peer_sign, row.peer_box)
        if row.role == "inviter":
            return verification_string(row.id, self.identity.public, peer)
        return verification_string(row.id, peer, self.identity.public)

    def view(self, rt: Runtime) -> dict[str, Any]:
        row = rt.row
        peer_id = render_node_id(node_id_for(row.peer_sign)) if row.peer_sign else None
        if rt.link is not None:
            link_state = "up"
        elif rt.wants_link():
            link_state = "down"
        else:
            link_state = "off"
        return {
            "name": row.name,
            "id": connection_id_text(row.id),
            "state": row.state,
            "error": row.error,
            "role": row.role,
            "reach": self.reach_label(row),
            "url": row.url,
            "project": row.project,
            "peer": {"name": row.peer_name, "node_id": peer_id},
            "link": {
                "state": link_state,
                "via": rt.link.describe() if rt.link is not None else None,
                "since": _iso(rt.link_since),
                "last_error": rt.link_error,
            },
            "last_contact": _iso(rt.last_contact),
            "queues": {
                "outbox_unacked": len(rt.session.unacked()) if rt.session is not None else 0,
                "inbox_unprocessed": rt.inbox_unprocessed,
            },
            "sequence": {
                "send_next": rt.session.send_next if rt.session is not None else row.send_next,
                "recv_next": rt.session.recv_next if rt.session is not None else row.recv_next,
            },
            "verification": self.verification(row),
            "expires_at": _iso(row.expires_at) if row.state == "pending" else None,
        }

    def health(self) -> tuple[str, list[dict[str, Any]]]:
        items = []
        degraded = False
        for rt in self.runtimes.values():
            up = rt.link is not None
            if rt.row.state == "error" or (rt.row.state == "active" and not up):
                degraded = True
            items.append({"name": rt.name, "state": rt.row.state, "link": "up" if up else "down"})
        return ("degraded" if degraded else "ok"), items

    # -- invitations ------------------------------------------------------------------------------

    async def _unique_name(self, wanted: str | None, fallback: str) -> str:
        if wanted:
            wanted = wanted.strip()
            if not wanted or len(wanted) > 100 or any(ch in wanted for ch in "/\\\n\r\t"):
                raise ManagerError(
                    "a connection name must be 1-100 characters, without slashes or control characters",
                    "invalid_name",
                )
            if await self.db.read(lambda c: q.name_taken(c, wanted)):
                raise Conflict(f"a connection named {wanted!r} already exists", "name_taken")
            return wanted
        base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in fallback.lower()).strip("-")
        base = base[:60] or "connection"
        candidate, n = base, 1
        while await self.db.read(functools.partial(q.name_taken, name=candidate)):
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    async def invite(
        self,
        *,
        name: str | None = None,
        peer_url: str | None = None,
        relay: str | None = None,
        expires_seconds: int = 86400,
        project: str | None = None,
    ) -> tuple[str, Runtime]:
        if peer_url and relay:
            raise ManagerError("give either a peer URL or a relay, not both", "conflicting_options")
        if not 60 <= expires_seconds <= 90 * 86400:
            raise ManagerError("an invitation must expire between 1 minute and 90 days", "invalid_expiry")
        if relay:
            reach, link, url = Reach("relay", relay), "relay", relay
        elif peer_url:
            reach, link, url = Reach("dial", peer_url), "dial", peer_url
        else:
            own = self._peer_url()
            if own is None:
                raise ManagerError(
                    "this node is private (it listens for no peers): give --peer-url (the other node's "
                    "public URL, which this node will dial) or --relay URL",
                    "private_node_needs_reach",
                )
            reach, link, url = Reach("public", own), "listen", None
        conn_id = os.urandom(16)
        conn_name = await self._unique_name(name, f"invite-{b32(conn_id)[:6]}")
        now = _now()
        invitation = Invitation(
            connection_id=conn_id,
            inviter=self.identity.public,
            inviter_name=self.node_name,
            reach=reach,
            secret=os.urandom(32),
            expires_at=int(now) + expires_seconds,
            connection_name=conn_name,
            project=project,
        )
        code = encode_invitation(invitation, self.identity)
        row = ConnectionRow(
            id=conn_id,
            name=conn_name,
            role="inviter",
            state="pending",
            link=cast(q.LinkMode, link),
            expires_at=invitation.expires_at,
            created_at=now,
            updated_at=now,
            url=url,
            project=project,
            code=code,
        )
        await self.db.write(lambda c: q.insert_connection(c, row))
        rt = Runtime(row, None)
        self.runtimes[conn_id] = rt
        await self._ensure_transport(rt)
        log.info("invitation issued for connection %r (%s)", conn_name, self.reach_label(row))
        return code, rt

    async def accept(
        self,
        code: str,
        *,
        name: str | None = None,
        project: str | None = None,
        wait_seconds: float | None = None,
    ) -> Runtime:
        try:
            invitation = decode_invitation(code, now=int(_now()))
        except InvitationError as exc:
            raise InvitationRefused(str(exc), invitation_error_code(exc)) from None
        if invitation.inviter.node_id == self.identity.node_id:
            raise InvitationRefused("this invitation was issued by this very node", "own_invitation")
        existing = self.runtimes.get(invitation.connection_id)
        if existing is not None:
            raise InvitationRefused(
                f"this invitation was already accepted here (connection {existing.name!r})",
                "invitation_used",
            )
        own_url = self._peer_url()
        if invitation.reach.mode == "public":
            link, url = "dial", invitation.reach.url
        elif invitation.reach.mode == "dial":
            if own_url is None:
                raise InvitationRefused(
                    "this invitation expects this node to be reachable at "
                    f"{invitation.reach.url}, but this node is private; ask the inviter for an invitation "
                    "through a relay",
                    "needs_public_node",
                )
            link, url = "listen", None
        elif invitation.reach.mode == "relay":
            link, url = "relay", invitation.reach.url
        else:
            raise InvitationRefused(
                "the invitation does not say how to reach the inviter", "invitation_invalid"
            )
        reach = Reach("public", own_url) if own_url else Reach("private")
        conn_name = await self._unique_name(name, invitation.connection_name or invitation.inviter_name)
        pair = make_accept(self.identity, invitation, self.node_name, reach, _nonce())
        now = _now()
        row = ConnectionRow(
            id=invitation.connection_id,
            name=conn_name,
            role="acceptor",
            state="pending",
            link=cast(q.LinkMode, link),
            expires_at=invitation.expires_at,
            created_at=now,
            updated_at=now,
            url=url,
            project=project or invitation.project,
            code="".join(code.split()),
            peer_name=invitation.inviter_name,
            peer_sign=invitation.inviter.sign_public,
            peer_box=invitation.inviter.box_public,
            pair_envelope=pair,
            own_reach=json.dumps(reach.to_json()),
        )
        await self.db.write(lambda c: q.insert_connection(c, row))
        rt = Runtime(row, await self._load_session(row))
        self.runtimes[row.id] = rt
        for fut in self._parked.pop(row.id, []):
            if not fut.done():
                fut.set_result(rt)
        await self._ensure_transport(rt)
        wait = self.config.links.accept_wait_seconds if wait_seconds is None else wait_seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):  # (not wait_for: see node/tasks.py)
                await rt.settled.wait()
        if rt.refusal is not None:
            raise rt.refusal
        return rt

    def _reach_for(self, row: ConnectionRow) -> Reach:
        """The reach this node declared when it accepted (part of the pairing transcript)."""
        if row.own_reach:
            return Reach.from_json(json.loads(row.own_reach))
        own = self._peer_url()
        return Reach("public", own) if own else Reach("private")

    # -- admin operations -------------------------------------------------------------------------

    async def set_active(self, name: str, active: bool) -> Runtime:
        rt = self.get(name)
        async with rt.lock:
            state = rt.row.state
            if active:
                if state == "active":
                    return rt
                if state not in ("deactivated", "error"):
                    raise Conflict(f"connection {name!r} is {state} and cannot be activated", "bad_state")
                if rt.session is None:
                    raise Conflict(f"connection {name!r} was never paired", "bad_state")
                await self._set_state(rt, "active", None)
            else:
                if state == "deactivated":
                    return rt
                if state not in ("active", "error"):
                    raise Conflict(f"connection {name!r} is {state} and cannot be deactivated", "bad_state")
                await self._set_state(rt, "deactivated", None)
        if active:
            rt.link_error = None
            await self._ensure_transport(rt)
        else:
            await self._drop_link(rt)
        log.info("connection %r %s", name, "activated" if active else "deactivated")
        return rt

    async def delete(self, name: str, *, bye_wait: float = 2.0) -> None:
        rt = self.get(name)
        if rt.session is not None and rt.row.state == "active" and rt.link is not None:
            # Tell the peer, best effort: wait briefly for the ack of the Bye.
            with contextlib.suppress(ManagerError):
                [seq] = await self.send(rt, [Bye(reason="connection deleted by its admin")])
                await self.wait_acked(rt, seq, bye_wait)
        async with rt.lock:
            row = rt.row

            def forget(c: sqlite3.Connection) -> None:
                if row.state == "pending" and row.role == "inviter":
                    q.delete_connection_row(c, row.id)  # an unused invitation leaves no trace
                    return
                c.execute("DELETE FROM outbox WHERE conn_id = ?", (row.id,))
                q.update_connection(
                    c,
                    row.id,
                    state="deleted",
                    code=None,
                    peer_sign=None,
                    peer_box=None,
                    accept_request=None,
                    pair_envelope=None,
                    updated_at=_now(),
                )

            await self.db.write(forget)
            row.state = "deleted"
            self.runtimes.pop(row.id, None)
            self._deleted.add(row.id)
        if rt.dialer is not None:
            rt.dialer.cancel()
        await self._drop_link(rt)
        log.info("connection %r deleted", name)

    async def inbox(self, name: str, after: int, limit: int) -> list[dict[str, Any]]:
        rt = self.get(name)
        rows = await self.db.read(lambda c: q.inbox_page(c, rt.row.id, after, limit))
        out = []
        for r in rows:
            try:
                body: Any = json.loads(r.body)
            except ValueError:
                body = None
            out.append(
                {
                    "seq": r.seq,
                    "type": r.type,
                    "message": body,
                    "received_at": r.received_at,
                    "processed": r.processed_at is not None,
                }
            )
        return out

    async def mark_processed(self, rt: Runtime, seqs: Sequence[int]) -> int:
        """Mark inbox rows of ``rt`` processed (the ones that get no reply); returns how many were not yet."""
        changed = await self.db.write(lambda c: q.inbox_mark_processed(c, rt.row.id, list(seqs), _now()))
        rt.inbox_unprocessed = max(0, rt.inbox_unprocessed - changed)
        return changed

    # -- sending ----------------------------------------------------------------------------------

    async def send(
        self,
        rt: Runtime,
        messages: Sequence[Message],
        processed: Sequence[int] = (),
    ) -> list[int]:
        """Queue sequenced messages durably, then push them if the link is up. Returns their seqs.
        ``processed``: inbox rows of ``rt`` these messages answer, marked processed in the same
        transaction (a reply and its mark are kept together or not at all)."""
        async with rt.lock:
            if rt.session is None or rt.row.state in ("pending", "deleted"):
                raise Conflict(f"connection {rt.name!r} is {rt.row.state}: nothing can be sent", "bad_state")
            session = rt.session
            items: list[tuple[int, str, bytes]] = []
            for message in messages:
                seq, env = session.send(message, _nonce())
                items.append((seq, message.t, env))
            try:
                marked = await self.db.write(
                    lambda c: q.outbox_put_replies(
                        c, rt.row.id, items, session.send_next, list(processed), _now()
                    )
                )
            except BaseException:
                rt.session = await self._load_session(rt.row)  # the store is the truth
                raise
            rt.row.send_next = session.send_next
            rt.inbox_unprocessed = max(0, rt.inbox_unprocessed - marked)
            self.metrics.messages_sent.labels(rt.name).inc(len(items))
            link = rt.link
            if link is not None and rt.row.state == "active":
                for _, _, env in items:
                    await link.send(env)
        return [seq for seq, _, _ in items]

    async def wait_acked(self, rt: Runtime, seq: int, timeout: float) -> bool:  # noqa: ASYNC109
        async def until() -> None:
            async with rt.acked:
                await rt.acked.wait_for(lambda: rt.session is None or rt.session.peer_acked >= seq)

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            return False
        return True

    async def probe(
        self,
        name: str,
        *,
        count: int,
        wait: bool = True,
        timeout: float = 60.0,  # noqa: ASYNC109 (bounds the wait for acks; part of the API)
        sequential: bool = False,
        payload_bytes: int = 0,
        batch: int = 200,
    ) -> ProbeReport:
        rt = self.get(name)
        run = uuid.uuid4().hex[:8]
        filler = "x" * payload_bytes

        def make(n: int) -> Probe:
            return Probe(
                n=n,
                sent_ms=int(_now() * 1000),
                payload=json.dumps({"run": run, "t": _now(), "fill": filler}),
            )

        t0 = time.perf_counter()
        rtts: list[float] = []
        seqs: list[int] = []
        acked = True
        if sequential:
            for n in range(count):
                t = time.perf_counter()
                [seq] = await self.send(rt, [cast(Message, make(n))])
                seqs.append(seq)
                if not await self.wait_acked(rt, seq, timeout):
                    acked = False
                    break
                rtts.append((time.perf_counter() - t) * 1000)
        else:
            for start in range(0, count, batch):
                chunk = [cast(Message, make(n)) for n in range(start, min(count, start + batch))]
                seqs.extend(await self.send(rt, chunk))
            if wait and seqs:
                acked = await self.wait_acked(rt, seqs[-1], timeout)
        elapsed = time.perf_counter() - t0
        if not wait:
            acked = False
        return ProbeReport(
            sent=len(seqs),
            first_seq=seqs[0] if seqs else 0,
            last_seq=seqs[-1] if seqs else 0,
            acked=acked,
            elapsed_ms=elapsed * 1000,
            rate_per_s=len(seqs) / elapsed if elapsed > 0 else 0.0,
            rtt_ms=rtts,
        )

    # -- state ------------------------------------------------------------------------------------

    async def _set_state(self, rt: Runtime, state: q.State, error: str | None) -> None:
        """Persist a state change (caller holds the lock)."""
        now = _now()
        await self.db.write(
            lambda c: q.update_connection(c, rt.row.id, state=state, error=error, updated_at=now)
        )
        if rt.row.state != state:
            log.info("connection %r: %s → %s%s", rt.name, rt.row.state, state, f" ({error})" if error else "")
        rt.row.state = state
        rt.row.error = error
        rt.row.updated_at = now

    async def _drop_link(self, rt: Runtime) -> None:
        link = rt.link
        if link is not None:
            self.detach(rt, link)
            if link.kind != "relay":
                await link.close()

    async def _fail_acceptance(self, rt: Runtime, error: ManagerError) -> None:
        """The inviter refused our pairing: forget the connection as if it never was."""
        async with rt.lock:
            if rt.row.state != "pending" or rt.row.role != "acceptor":
                return
            await self.db.write(lambda c: q.delete_connection_row(c, rt.row.id))
            self.runtimes.pop(rt.row.id, None)
            rt.row.state = "deleted"
        rt.refusal = error
        rt.settled.set()
        log.warning("pairing of %r refused by the inviter: %s", rt.name, error)

    # -- transport callbacks ----------------------------------------------------------------------

    async def park(self, conn_id: bytes) -> Runtime | None:
        """Wait (bounded) for a connection we do not know yet: a private inviter may dial us before
        our admin has pasted its code. Returns None on timeout or when too many wait already."""
        if sum(len(v) for v in self._parked.values()) >= MAX_PARKED or self._closing:
            return None
        fut: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
        self._parked.setdefault(conn_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, self.config.links.park_seconds)
        except (TimeoutError, asyncio.CancelledError):
            return None
        finally:
            waiting = self._parked.get(conn_id, [])
            if fut in waiting:
                waiting.remove(fut)
            if not waiting:
                self._parked.pop(conn_id, None)

    async def open_link(self, opening: Opening, challenge: bytes, link: Link) -> Runtime:
        """A dialer opened a link for a connection (we are the listener). Raises Refusal."""
        rt = self.runtimes.get(opening.connection_id)
        if rt is None and opening.connection_id not in self._deleted:
            rt = await self.park(opening.connection_id)
        if rt is None:
            raise Refusal("unknown_connection", "this node has no such connection", "unknown_connection")
        row = rt.row
        if row.peer_sign is None or row.peer_box is None:
            raise Refusal(
                "not_paired", "this connection is not paired yet: send the pairing request", "refused"
            )
        if not opening.verify(challenge, PublicIdentity(row.peer_sign, row.peer_box)):
            raise Refusal(
                "bad_signature", "the link opening is not signed by this connection's peer", "bad_signature"
            )
        self._check_open(rt)
        await self.attach(rt, link)
        return rt

    def _check_open(self, rt: Runtime) -> None:
        state = rt.row.state
        if state == "deactivated":
            raise Refusal("deactivated", "the peer has deactivated this connection")
        if state in ("error", "deleted"):
            raise Refusal("connection_closed", f"the peer's side of this connection is {state}")

    async def on_pair(self, data: bytes, link: Link | None) -> Runtime:
        """An acceptor's PAIR envelope reached us (the inviter). Raises Refusal; on success the link
        (if any) is attached and the Welcome is queued as sequence 1."""
        try:
            header, request = peek_accept(self.identity, data)
        except MalformedEnvelope as exc:
            raise Refusal("malformed", str(exc), "garbage") from None
        except WrongRecipient as exc:
            raise Refusal("wrong_recipient", str(exc), "wrong_recipient") from None
        except EnvelopeError as exc:
            raise Refusal("authentication", str(exc), "authentication") from None
        except (HandshakeError, InvalidMessage) as exc:
            raise Refusal("pairing_failed", str(exc), "invalid_message") from None
        rt = self.runtimes.get(header.connection_id)
        if rt is None or rt.row.role != "inviter":
            raise Refusal(
                "unknown_invitation",
                "the inviter's node has no such invitation "
                "(it was deleted, or the code is from another node)",
                "unknown_connection",
            )
        async with rt.lock:
            row = rt.row
            if row.state == "pending":
                if row.code is None:
                    raise Refusal("unknown_invitation", "the invitation was withdrawn", "unknown_connection")
                invitation = invitation_of(row.code)
                if _now() >= invitation.expires_at:
                    raise Refusal("invitation_expired", "this invitation code has expired: ask for a new one")
                try:
                    transcript = verify_accept(invitation, request)
                except HandshakeError as exc:
                    raise Refusal("pairing_failed", str(exc), "authentication") from None
                await self._complete_pairing(rt, invitation, request.to_bytes(), transcript, request)
            elif row.accept_request == request.to_bytes() and row.state != "deleted":
                # The same acceptor retransmitting the same accept (it did not get our Welcome yet).
                self._check_open(rt)
                if rt.session is None or 1 not in dict(rt.session.unacked()):
                    raise Refusal("invitation_used", "this invitation code was already used")
            else:
                raise Refusal(
                    "invitation_used",
                    "this invitation code was already used: each code works once; ask for a new one",
                )
        if link is not None:
            await self.attach(rt, link)
        return rt

    async def _complete_pairing(
        self, rt: Runtime, invitation: Invitation, request_bytes: bytes, transcript: bytes, request: Any
    ) -> None:
        from protocol import Session

        row = rt.row
        acceptor: PublicIdentity = request.acceptor
        keys = ChannelKeys.derive(self.identity, row.id, acceptor.sign_public, acceptor.box_public)
        session = Session(keys)
        welcome = Welcome(confirm=welcome_confirm(invitation, transcript), name=self.node_name)
        seq, env = session.send(welcome, _nonce())
        now = _now()
        peer_name = request.acceptor_name or "peer"

        def commit(c: sqlite3.Connection) -> None:
            q.update_connection(
                c,
                row.id,
                state="active",
                peer_name=peer_name,
                peer_sign=acceptor.sign_public,
                peer_box=acceptor.box_public,
                accept_request=request_bytes,
                updated_at=now,
                last_contact=now,
            )
            q.outbox_put(c, row.id, [(seq, "welcome", env)], session.send_next, now)

        await self.db.write(commit)
        row.state, row.peer_name = "active", peer_name
        row.peer_sign, row.peer_box = acceptor.sign_public, acceptor.box_public
        row.accept_request, row.send_next = request_bytes, session.send_next
        rt.session = session
        rt.last_contact = now
        self.metrics.messages_sent.labels(rt.name).inc()
        log.info("connection %r paired with %r (%s)", rt.name, peer_name, acceptor.node_id_text)

    async def attach(self, rt: Runtime, link: Link) -> None:
        """Make ``link`` the connection's current link and say Hello on it."""
        old = rt.link
        rt.link = link
        rt.link_since = _now()
        rt.link_error = None
        if old is not None and old is not link:
            self.metrics.link_changes.labels(rt.name, "down").inc()
            if old.kind != "relay":
                await old.close()
        if old is not link:
            self.metrics.link_changes.labels(rt.name, "up").inc()
            log.info("connection %r: link up (%s)", rt.name, link.describe())
        if rt.row.role == "acceptor" and rt.row.state == "pending" and link.kind != "out":
            if rt.row.pair_envelope is not None:
                await link.send(rt.row.pair_envelope)
        if rt.session is not None:
            # What is committed (a frame of the old link may be opened and not yet stored).
            await link.send(rt.session.hello(_nonce(), software=SOFTWARE, recv_next=rt.row.recv_next))

    def detach(self, rt: Runtime, link: Link) -> None:
        if rt.link is link:
            rt.link = None
            rt.link_since = None
            self.metrics.link_changes.labels(rt.name, "down").inc()
            log.info("connection %r: link down", rt.name)

    async def on_refused(self, rt: Runtime, code: str, message: str) -> None:
        """The peer's node refused our link opening or pairing request (we dialled)."""
        if rt.row.role == "acceptor" and rt.row.state == "pending":
            await self._fail_acceptance(rt, InvitationRefused(f"the inviter's node refused: {message}", code))
            return
        rt.link_error = f"peer refused the link ({code}): {message}"

    async def on_frame(self, rt: Runtime, link: Link, data: bytes) -> bool:
        """One binary frame from the peer on a connection's link. Returns False when it was rejected
        (counted); the link and the connection's state are left as they were."""
        if rt.session is None or rt.row.state == "deleted":
            self.metrics.reject("unknown_connection")
            return False
        if rt.row.state == "deactivated":
            return False  # not consumed: the peer resends after reactivation
        async with rt.lock:
            session = rt.session
            if session is None:
                return False
            try:
                received = session.receive(data)
            except MalformedEnvelope:
                self.metrics.reject("garbage")
                return False
            except WrongRecipient:
                self.metrics.reject("wrong_recipient")
                return False
            except AuthenticationFailed:
                self.metrics.reject("authentication")
                return False
            except EnvelopeError:
                self.metrics.reject("garbage")
                return False
            except SessionError as exc:
                self.metrics.reject("session")
                log.warning("connection %r: peer broke the sequence rules: %s", rt.name, exc)
                return False
            except InvalidMessage:
                self.metrics.reject("invalid_message")
                return False
            now = _now()
            rt.last_contact = now
            if received.duplicate:
                self.metrics.reject("replayed")
            state_change: tuple[q.State, str | None] | None = None
            items: list[tuple[int, str, bytes, float | None]] = []
            for (seq, message), body in zip(received.delivered, received.plaintexts, strict=True):
                processed = now if message.t in LINK_MESSAGES or message.t not in _ENGINE_TYPES else None
                items.append((seq, message.t, body, processed))  # as received: it decoded to ``message``
                if isinstance(message, Welcome) and rt.row.role == "acceptor" and rt.row.state == "pending":
                    state_change = self._check_welcome(rt, message)
                elif isinstance(message, Bye):
                    state_change = ("error", "the peer deleted this connection" + _reason(message.reason))
            acked_upto = session.peer_acked
            if received.newly_acked and not items:
                self._forget_acked(rt, acked_upto)  # an ack alone: no transaction to wait for
            elif items:
                row = rt.row

                def commit(c: sqlite3.Connection) -> None:
                    q.inbox_put(c, row.id, items, session.recv_next, now)
                    if received.newly_acked:
                        q.outbox_ack(c, row.id, acked_upto)
                    if state_change is not None:
                        fields: dict[str, Any] = {
                            "state": state_change[0],
                            "error": state_change[1],
                            "updated_at": now,
                        }
                        if state_change[0] == "active":
                            fields["pair_envelope"] = None
                            fields["peer_name"] = row.peer_name
                        q.update_connection(c, row.id, **fields)

                try:
                    await self.db.write(commit)
                except BaseException:
                    rt.session = await self._load_session(rt.row)
                    raise
                rt.row.recv_next = session.recv_next
                if state_change is not None:
                    old = rt.row.state
                    rt.row.state, rt.row.error = state_change
                    log.info("connection %r: %s → %s", rt.name, old, rt.row.state)
                    if rt.row.state == "active":
                        rt.row.pair_envelope = None
            unprocessed = sum(1 for item in items if item[3] is None)
            rt.inbox_unprocessed += unprocessed
            if items:
                self.metrics.messages_received.labels(rt.name).inc(len(items))
            if items or received.duplicate:
                await link.send(session.ack(_nonce()))
            for message in received.control:
                if isinstance(message, Hello):
                    for _, env in session.unacked():
                        await link.send(env)
                elif isinstance(message, Ping):
                    await link.send(session.control(Pong(sent_ms=message.sent_ms), _nonce()))
        if received.newly_acked:
            async with rt.acked:
                rt.acked.notify_all()
        if state_change is not None:
            rt.settled.set()
            if state_change[0] == "error":
                await self._drop_link(rt)
        if self._listeners and items:
            for seq, message in received.delivered:
                for listener in self._listeners:
                    try:
                        await listener(rt.name, seq, message)
                    except Exception:
                        log.exception("listener failed on message %d of %r", seq, rt.name)
        return True

    def _forget_acked(self, rt: Runtime, upto: int) -> None:
        """Delete the outbox rows up to ``upto`` in the background. Durability does not need them
        gone at once: rows the peer acked that survive a crash only rebuild a session with too much
        unacked, which the peer's Hello acks again on the next link before anything is resent."""
        rt.acked_to_delete = max(rt.acked_to_delete, upto)
        if rt.ack_deleter is None or rt.ack_deleter.done():
            rt.ack_deleter = asyncio.create_task(self._delete_acked(rt), name=f"outbox acks {rt.name}")

    async def _delete_acked(self, rt: Runtime) -> None:
        deleted = 0
        conn_id = rt.row.id
        while rt.acked_to_delete > deleted:
            upto = rt.acked_to_delete
            try:
                await self.db.write(functools.partial(q.outbox_ack, conn_id=conn_id, upto=upto))
            except Exception as exc:  # the next ack, or the next start, deletes them
                log.warning("connection %r: acked outbox rows not deleted yet: %s", rt.name, exc)
                return
            deleted = upto

    def _check_welcome(self, rt: Runtime, welcome: Welcome) -> tuple[q.State, str | None]:
        row = rt.row
        if row.code is None:
            return ("error", "welcome received but the invitation code is gone")
        try:
            invitation = invitation_of(row.code)
            check_welcome(
                invitation, self.identity.public, self.node_name, self._reach_for(row), welcome.confirm
            )
        except (HandshakeError, InvitationError) as exc:
            return ("error", f"the inviter's welcome does not verify: {exc}")
        if welcome.name:
            row.peer_name = welcome.name
        return ("active", None)


_ENGINE_TYPES = frozenset({"replica", "result", "unlink", "blob", "blob_request"})


def _reason(text: str) -> str:
    return f": {text}" if text else ""


__all__ = [
    "Conflict",
    "ConnectionManager",
    "InvitationRefused",
    "ManagerError",
    "NotFound",
    "PeerUnreachable",
    "ProbeReport",
    "Refusal",
    "RelayHub",
    "Runtime",
    "invitation_error_code",
]
