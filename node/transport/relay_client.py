"""The node's side of a relay: one long-lived WebSocket to ``tandem relay``, both directions.

A private node whose peer is private too cannot be reached by it, so both dial the same relay (see
:mod:`node.transport.relay` and ``docs/relay.md``). This module also defines the relay's wire format
(the server imports it from here), so the two ends cannot drift apart.

Wire format (``/relay/v1/ws``; text frames are JSON objects with a ``type``)::

    relay → node   {"type": "challenge", "challenge": b64(32 random bytes), "max_message_bytes": N}
    node  → relay  {"type": "auth", "identity": PublicIdentity.to_json(), "url": URL, "signature": b64}
                   signature = Ed25519 over AUTH_LABEL | challenge | URL (UTF-8), URL being the relay
                   URL exactly as the node dialled it (the relay checks its host and path are its own,
                   so a rogue relay cannot pass a node's answer on to another relay)
    relay → node   {"type": "welcome", "node_id": "K3F2-…", "max_message_bytes": N}
                   or {"type": "error", "reason": "auth", "message": …} and close code 4401

    node  → relay  binary frame = one sealed envelope (a deposit)
    relay → node   {"type": "stored", "id": RELAY_ID}            one reply per deposit, in deposit order
                   {"type": "refused", "reason": R, "message": …} R in REFUSALS
    relay → node   binary frame = RELAY_ID (u64 big-endian) | envelope   (a push, in relay-id order)
    node  → relay  {"type": "ack", "ids": [RELAY_ID, …]}          after the node has processed them

Semantics the node relies on:

* **Deposit: at least once.** :meth:`RelayClient.send` returns the relay id once the relay has the
  envelope in its database. Until then the client keeps it and re-sends it, in order, on every new
  connection; a lost "stored" reply therefore means the relay may hold it twice. The peer's session
  drops duplicates by sequence number.
* **Push: at least once, in order per mailbox.** The client acks a relay id only after
  ``on_envelope`` returned without raising, so a node that dies before persisting gets the envelope
  again. ``on_envelope`` must raise only for faults worth a retry (its store is unavailable); an
  envelope it judges bad (garbage, replay, not for it) it must count and return normally, or the relay
  would offer it again forever. When it raises, the client drops the connection and reconnects with
  backoff, and the relay pushes everything unacked again from the first.
* **Back-pressure.** A full mailbox is :class:`RelayFull`: the envelope was *not* stored; the node's
  outbox keeps it and retries later. :class:`RelayUnavailable` means no stored reply came within the
  timeout (it may or may not be stored). :class:`RelayRefused` is permanent for that envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl

from node.transport.backoff import Backoff
from protocol.identity import NodeIdentity, b64, unb64

log = logging.getLogger(__name__)

WS_PATH = "/relay/v1/ws"
AUTH_LABEL = b"tandem-relay-auth-v1\x00"
CHALLENGE_BYTES = 32
PUSH_PREFIX = struct.Struct(">Q")

#: WebSocket close codes (4000–4999 are for applications).
CLOSE_AUTH_FAILED = 4401
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_HANDLER_FAILED = 4500

_CLOSE_GRACE = 5.0  # seconds close() lets an on_envelope call in progress finish

#: Reasons a relay refuses something; also the ``reason`` label of its reject counter.
REFUSE_AUTH = "auth"
REFUSE_MALFORMED = "malformed"
REFUSE_TOO_LARGE = "too-large"
REFUSE_FORGED_SENDER = "forged-sender"
REFUSE_MAILBOX_FULL = "mailbox-full"
REFUSE_RELAY_FULL = "relay-full"
REFUSE_SENDER_FULL = "sender-full"
REFUSE_BAD_FRAME = "bad-frame"
REFUSE_UNAVAILABLE = "unavailable"
REFUSALS = (
    REFUSE_AUTH,
    REFUSE_MALFORMED,
    REFUSE_TOO_LARGE,
    REFUSE_FORGED_SENDER,
    REFUSE_MAILBOX_FULL,
    REFUSE_RELAY_FULL,
    REFUSE_SENDER_FULL,
    REFUSE_BAD_FRAME,
    REFUSE_UNAVAILABLE,
)
_FULL = frozenset({REFUSE_MAILBOX_FULL, REFUSE_RELAY_FULL, REFUSE_SENDER_FULL})


def auth_payload(challenge: bytes, url: str) -> bytes:
    """The bytes a node signs to prove its identity to a relay."""
    return AUTH_LABEL + challenge + url.encode("utf-8")


def relay_ws_url(url: str) -> str:
    """The WebSocket URL to dial for a relay given as ``ws(s)://`` or ``http(s)://``, with or without
    the path: ``https://relay.example`` → ``wss://relay.example/relay/v1/ws``."""
    parsed = yarl.URL(url)
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parsed.scheme not in schemes or not parsed.host:
        raise ValueError(f"not a relay URL (need ws://, wss://, http:// or https://): {url!r}")
    parsed = parsed.with_scheme(schemes[parsed.scheme])
    if parsed.path in ("", "/"):
        parsed = parsed.with_path(WS_PATH)
    return str(parsed)


# ---------------------------------------------------------------------------------------------- errors


class RelayError(Exception):
    """Base of everything :class:`RelayClient` raises.

    ::

        RelayError
        ├── RelayUnavailable   not stored within the timeout, or the client is closed: retry later
        ├── RelayFull          the relay refused it for lack of room (back-pressure): retry later
        └── RelayRefused       the relay refused this envelope for good (too large, malformed, …)
    """


class RelayUnavailable(RelayError):
    pass


class RelayFull(RelayError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RelayRefused(RelayError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _ConnectionLost(Exception):
    """Internal: the relay broke the protocol or the connection; reconnect."""


# ---------------------------------------------------------------------------------------------- client


@dataclass(eq=False)
class _Deposit:
    envelope: bytes
    future: asyncio.Future[int]
    generation: int = 0  # the connection it was last written to (0: none yet)


@dataclass
class _Link:
    ws: aiohttp.ClientWebSocketResponse
    generation: int
    awaiting: deque[_Deposit] = field(default_factory=deque)  # written, reply pending, in order
    pushes: asyncio.Queue[tuple[int, bytes] | None] = field(default_factory=asyncio.Queue)


OnEnvelope = Callable[[bytes], Awaitable[None]]


class RelayClient:
    """A node's connection to one relay: reconnects forever, resends what is not yet stored, pushes
    what the relay holds for this node to ``on_envelope``. See the module docstring for semantics."""

    def __init__(
        self,
        relay_url: str,
        identity: NodeIdentity,
        on_envelope: OnEnvelope,
        *,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        heartbeat: float = 20.0,
        connect_timeout: float = 10.0,
        send_timeout: float = 30.0,
        ack_batch: int = 64,
    ) -> None:
        self.url = relay_ws_url(relay_url)
        self._identity = identity
        self._on_envelope = on_envelope
        self._session = session
        self._own_session = session is None
        self._backoff = backoff if backoff is not None else Backoff(base=0.5, cap=30.0)
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._ack_batch = ack_batch
        self._pending: deque[_Deposit] = deque()  # not yet stored, in send order
        self._link: _Link | None = None
        self._generation = 0
        self._write_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._handler_failed = False
        self._halted: str | None = None
        #: Largest envelope the relay accepts, learnt at connection time.
        self.max_message_bytes: int | None = None
        #: Why the last connection attempt failed or ended (for status displays); None when fine.
        self.last_error: str | None = None
        self.connects = 0

    # -- lifecycle

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._closed:
            raise RelayUnavailable("relay client is closed")
        if self._task is not None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name=f"relay-client {self.url}")

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (the API)
        """Wait until authenticated at the relay; RelayUnavailable after ``timeout`` seconds."""
        if self._halted:
            raise RelayUnavailable(f"relay client stopped: {self._halted}")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise RelayUnavailable(
                f"not connected to relay {self.url} after {timeout}s"
                + (f": {self.last_error}" if self.last_error else "")
            ) from None

    def _halt(self, reason: str) -> None:
        self._halted = reason
        for deposit in self._pending:
            if not deposit.future.done():
                deposit.future.set_exception(RelayUnavailable(reason))
        self._pending.clear()

    async def close(self) -> None:
        """Stop for good. Sends still waiting raise RelayUnavailable."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for deposit in self._pending:
            if not deposit.future.done():
                deposit.future.set_exception(RelayUnavailable("relay client closed"))
        self._pending.clear()
        if self._own_session and self._session is not None:
            await self._session.close()

    # -- deposits

    async def send(self, envelope: bytes, *, timeout: float | None = None) -> int:  # noqa: ASYNC109
        """Deposit one sealed envelope; return its relay id once the relay has stored it.

        Waits for a connection and re-sends across reconnects for up to ``timeout`` seconds (default
        ``send_timeout``), then raises RelayUnavailable. Concurrent sends keep the order in which
        they were called. Raises RelayFull (back-pressure) or RelayRefused (permanent)."""
        if self._closed or self._halted:
            raise RelayUnavailable(
                f"relay client stopped: {self._halted}" if self._halted else "relay client is closed"
            )
        if not isinstance(envelope, (bytes, bytearray)) or not envelope:
            raise RelayRefused("malformed", "an envelope must be non-empty bytes")
        if self.max_message_bytes is not None and len(envelope) > self.max_message_bytes:
            raise RelayRefused(
                REFUSE_TOO_LARGE,
                f"envelope of {len(envelope)} bytes exceeds the relay's limit of "
                f"{self.max_message_bytes} bytes",
            )
        deposit = _Deposit(bytes(envelope), asyncio.get_running_loop().create_future())
        self._pending.append(deposit)
        async with self._write_lock:
            link = self._link
            if link is not None and self.connected:
                await self._write(link, deposit)
        try:
            return await asyncio.wait_for(
                asyncio.shield(deposit.future), self._send_timeout if timeout is None else timeout
            )
        except TimeoutError:
            self._forget(deposit)
            raise RelayUnavailable(
                f"relay {self.url} did not confirm storing the envelope in time"
                + (f" ({self.last_error})" if self.last_error else "")
            ) from None
        except asyncio.CancelledError:
            self._forget(deposit)
            raise

    def _forget(self, deposit: _Deposit) -> None:
        # Stays in link.awaiting if written, so replies still line up with deposits.
        with contextlib.suppress(ValueError):
            self._pending.remove(deposit)
        if not deposit.future.done():
            deposit.future.cancel()

    async def _write(self, link: _Link, deposit: _Deposit) -> None:
        """Write one deposit to ``link``; the caller holds ``_write_lock``."""
        if deposit.generation == link.generation or deposit.future.done():
            return
        deposit.generation = link.generation
        link.awaiting.append(deposit)
        try:
            await link.ws.send_bytes(deposit.envelope)
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            pass  # the reader sees the connection die; the deposit is resent on the next one

    # -- connection loop

    async def _run(self) -> None:
        assert self._session is not None
        down_logged = False
        while not self._closed:
            try:
                ws = await asyncio.wait_for(
                    self._session.ws_connect(
                        self.url,
                        heartbeat=self._heartbeat,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self._connect_timeout),
                        max_msg_size=0,  # the relay bounds what it pushes; 0 = no client-side limit
                    ),
                    self._connect_timeout,
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._set_down(f"cannot reach relay: {exc or type(exc).__name__}", not down_logged)
                down_logged = True
                await self._backoff.sleep()
                continue
            try:
                await self._authenticate(ws)
                down_logged = False
                if not self._handler_failed:
                    self._backoff.reset()
                await self._serve(ws)
                self._set_down(_close_reason(ws), True)
                if ws.close_code == CLOSE_REPLACED:
                    # Another client with this node's key took over (the node runs twice, or an old
                    # client was never closed). Reconnecting would just fight it: stop here.
                    log.error("relay %s: %s; this client stops", self.url, self.last_error)
                    self._halt(self.last_error or "replaced")
                    return
            except _ConnectionLost as exc:
                self._set_down(str(exc), not down_logged)
                down_logged = True
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._set_down(f"connection to relay failed: {exc or type(exc).__name__}", not down_logged)
                down_logged = True
            except Exception as exc:  # a bug must not end the reconnect loop for good
                log.exception("relay %s: unexpected error; reconnecting", self.url)
                self._set_down(f"unexpected error: {exc!r}", False)
                down_logged = True
            finally:
                self._connected.clear()
                self._link = None
                await ws.close()
            await self._backoff.sleep()

    def _set_down(self, reason: str, log_it: bool) -> None:
        self.last_error = reason
        if log_it:
            log.warning("relay %s: %s", self.url, reason)

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        hello = await _receive_json(ws, self._connect_timeout)
        if hello.get("type") != "challenge":
            raise _ConnectionLost(f"relay spoke first with {hello.get('type')!r}, expected a challenge")
        try:
            challenge = unb64(hello["challenge"])
        except (KeyError, ValueError, TypeError):
            raise _ConnectionLost("relay sent an unreadable challenge") from None
        if len(challenge) != CHALLENGE_BYTES:
            raise _ConnectionLost("relay sent a challenge of the wrong length")
        await ws.send_str(
            json.dumps(
                {
                    "type": "auth",
                    "identity": self._identity.public.to_json(),
                    "url": self.url,
                    "signature": b64(self._identity.sign(auth_payload(challenge, self.url))),
                }
            )
        )
        answer = await _receive_json(ws, self._connect_timeout)
        if answer.get("type") == "error":
            raise _ConnectionLost(f"relay refused authentication: {answer.get('message', answer)}")
        if answer.get("type") != "welcome":
            raise _ConnectionLost(f"relay answered {answer.get('type')!r} instead of welcome")
        limit = answer.get("max_message_bytes")
        self.max_message_bytes = limit if isinstance(limit, int) and limit > 0 else None

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._generation += 1
        link = _Link(ws, self._generation)
        async with self._write_lock:
            self._link = link
            self.connects += 1
            self.last_error = None
            log.info("relay %s: connected as %s", self.url, self._identity.node_id_text)
            self._connected.set()
            for deposit in list(self._pending):  # resend what is not stored yet, oldest first
                await self._write(link, deposit)
        consumer = asyncio.create_task(self._consume(link), name="relay-client consumer")
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    data: bytes = msg.data
                    if len(data) <= PUSH_PREFIX.size:
                        raise _ConnectionLost("relay pushed a frame too short to hold an envelope")
                    (relay_id,) = PUSH_PREFIX.unpack_from(data)
                    link.pushes.put_nowait((relay_id, data[PUSH_PREFIX.size :]))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(link, msg.data)
                else:
                    break
        finally:
            self._connected.clear()
            # Let the consumer finish the envelope in hand (never cut a node's write in half),
            # but process nothing more from this connection: the relay redelivers it.
            link.pushes.put_nowait(None)
            if self._closed:  # closing: give the handler a moment, then stop it
                done, _ = await asyncio.wait({consumer}, timeout=_CLOSE_GRACE)
                if not done:
                    consumer.cancel()
            else:
                await asyncio.wait({consumer})

    def _on_text(self, link: _Link, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            raise _ConnectionLost("relay sent a text frame that is not JSON") from None
        if not isinstance(frame, dict):
            raise _ConnectionLost("relay sent a JSON frame that is not an object")
        kind = frame.get("type")
        if kind in ("stored", "refused"):
            if not link.awaiting:
                raise _ConnectionLost(f"relay sent {kind!r} for a deposit never made")
            deposit = link.awaiting.popleft()
            with contextlib.suppress(ValueError):
                self._pending.remove(deposit)
            if deposit.future.done():
                return  # the sender gave up meanwhile
            if kind == "stored" and isinstance(frame.get("id"), int):
                deposit.future.set_result(frame["id"])
                return
            reason = str(frame.get("reason", "unknown"))
            message = str(frame.get("message", f"relay refused the envelope ({reason})"))
            error = RelayFull(reason, message) if reason in _FULL else RelayRefused(reason, message)
            deposit.future.set_exception(error)
        elif kind == "error":
            log.warning("relay %s reports: %s", self.url, frame.get("message", frame))
        else:
            log.debug("relay %s: ignoring frame type %r", self.url, kind)

    async def _consume(self, link: _Link) -> None:
        acks: list[int] = []
        while True:
            item = await link.pushes.get()
            if item is None or link.ws.closed:
                return
            relay_id, envelope = item
            try:
                await self._on_envelope(envelope)
            except Exception:
                log.exception("relay %s: processing a pushed envelope failed; reconnecting", self.url)
                self._handler_failed = True
                await self._flush_acks(link, acks)
                await link.ws.close(code=CLOSE_HANDLER_FAILED, message=b"envelope handler failed")
                return
            self._handler_failed = False
            acks.append(relay_id)
            if link.pushes.empty() or len(acks) >= self._ack_batch:
                await self._flush_acks(link, acks)

    async def _flush_acks(self, link: _Link, acks: list[int]) -> None:
        if not acks:
            return
        frame = json.dumps({"type": "ack", "ids": acks})
        acks.clear()
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await link.ws.send_str(frame)


async def _receive_json(ws: aiohttp.ClientWebSocketResponse, wait: float) -> dict[str, Any]:
    try:
        msg = await ws.receive(timeout=wait)
    except TimeoutError:
        raise _ConnectionLost("relay did not answer in time") from None
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise _ConnectionLost(_close_reason(ws) if ws.closed else "relay sent binary during authentication")
    try:
        frame = json.loads(msg.data)
    except ValueError:
        raise _ConnectionLost("relay sent a frame that is not JSON") from None
    if not isinstance(frame, dict):
        raise _ConnectionLost("relay sent a JSON frame that is not an object")
    return frame


def _close_reason(ws: aiohttp.ClientWebSocketResponse) -> str:
    code = ws.close_code
    if code == CLOSE_REPLACED:
        return "relay closed this connection: another connection with the same node id replaced it"
    if code == CLOSE_HANDLER_FAILED:
        return "processing a pushed envelope failed; reconnecting so the relay pushes it again"
    if code == CLOSE_AUTH_FAILED:
        return "relay refused authentication"
    return f"relay closed the connection (code {code})"


def random_challenge() -> bytes:
    return os.urandom(CHALLENGE_BYTES)


__all__ = [
    "AUTH_LABEL",
    "WS_PATH",
    "RelayClient",
    "RelayError",
    "RelayFull",
    "RelayRefused",
    "RelayUnavailable",
    "auth_payload",
    "relay_ws_url",
]
