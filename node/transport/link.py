"""Peer links: one long-lived WebSocket per connection, and the small opening exchange on it.

The link protocol (documented for operators in ``docs/operations.md``). All envelopes travel as
binary frames; text frames carry only a refusal, after which the sender closes the socket::

    listener → dialer   binary  "TDC1" | challenge (32 random bytes)
    dialer → listener   binary  either a PAIR envelope (an acceptor that is not yet welcomed)
                                or "TDL1" | connection id (16) | dialer node id (15) | signature (64)
                                   signature = Ed25519(dialer) over
                                   "tandem-link-open-v1" | challenge | connection id | dialer node id
    both directions     binary  DATA envelopes (Hello first, then anything)
    either              text    {"error": {"code": "...", "message": "..."}}, then close

The challenge makes a recorded opening useless on another socket. The signature is checked against
the peer's signing key from the pairing (or, for a not-yet-accepted connection, from the invitation
code), so nobody else can take over a connection's link; envelopes are end-to-end encrypted anyway.
"""

from __future__ import annotations

import abc
import json
import os
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from protocol import NodeIdentity, PublicIdentity
from protocol.identity import NODE_ID_BYTES, SIGNATURE_BYTES

CHALLENGE_MAGIC = b"TDC1"
OPENING_MAGIC = b"TDL1"
CHALLENGE_BYTES = 32
OPEN_CONTEXT = b"tandem-link-open-v1"
CONNECTION_ID_BYTES = 16
OPENING_BYTES = len(OPENING_MAGIC) + CONNECTION_ID_BYTES + NODE_ID_BYTES + SIGNATURE_BYTES
PEER_PATH = "/peer/v1"


class LinkProtocolError(Exception):
    """A frame on a link does not follow the opening exchange."""


def new_challenge() -> bytes:
    return CHALLENGE_MAGIC + os.urandom(CHALLENGE_BYTES)


def parse_challenge(frame: bytes) -> bytes:
    if len(frame) != len(CHALLENGE_MAGIC) + CHALLENGE_BYTES or not frame.startswith(CHALLENGE_MAGIC):
        raise LinkProtocolError("the peer did not start with a link challenge")
    return frame[len(CHALLENGE_MAGIC) :]


def _signed_part(challenge: bytes, connection_id: bytes, node_id: bytes) -> bytes:
    return OPEN_CONTEXT + challenge + connection_id + node_id


def make_opening(identity: NodeIdentity, challenge: bytes, connection_id: bytes) -> bytes:
    signature = identity.sign(_signed_part(challenge, connection_id, identity.node_id))
    return OPENING_MAGIC + connection_id + identity.node_id + signature


@dataclass(frozen=True)
class Opening:
    connection_id: bytes
    node_id: bytes
    signature: bytes

    def verify(self, challenge: bytes, dialer: PublicIdentity) -> bool:
        return dialer.node_id == self.node_id and dialer.verify(
            _signed_part(challenge, self.connection_id, self.node_id), self.signature
        )


def is_opening(frame: bytes) -> bool:
    return frame.startswith(OPENING_MAGIC)


def parse_opening(frame: bytes) -> Opening:
    if len(frame) != OPENING_BYTES or not frame.startswith(OPENING_MAGIC):
        raise LinkProtocolError("malformed link opening")
    i = len(OPENING_MAGIC)
    conn = frame[i : i + CONNECTION_ID_BYTES]
    i += CONNECTION_ID_BYTES
    node = frame[i : i + NODE_ID_BYTES]
    return Opening(conn, node, frame[i + NODE_ID_BYTES :])


def refusal_frame(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def parse_refusal(text: str) -> tuple[str, str]:
    try:
        obj = json.loads(text)
        err = obj["error"]
        return str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return "unknown", text[:200]


class Link(abc.ABC):
    """One transport carrying a connection's envelopes."""

    kind: str  # "in" (the peer dialled us), "out" (we dialled), "relay"

    @abc.abstractmethod
    async def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def refuse(self, code: str, message: str) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    def describe(self) -> str:
        return self.kind


class WsLink(Link):
    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, kind: str) -> None:
        self.ws = ws
        self.kind = kind

    async def send(self, data: bytes) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_bytes(data)
        except (ConnectionError, RuntimeError, aiohttp.ClientError):
            # The reader notices the broken socket; unacked messages are resent on the next link.
            pass

    async def refuse(self, code: str, message: str) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_str(refusal_frame(code, message))
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                pass
        await self.close()

    async def close(self) -> None:
        if not self.ws.closed:
            try:
                await self.ws.close()
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                pass

    @property
    def closed(self) -> bool:
        return self.ws.closed
