"""Peer links: one long-lived WebSocket per connection.

The opening exchange on a link (challenge, opening or PAIR envelope, refusals) is wire format and
lives in :mod:`protocol.link` (PROTOCOL.md §7); it is re-exported here for the transport code.
"""

from __future__ import annotations

import abc
import os

import aiohttp
from aiohttp import web

from protocol.link import (
    CHALLENGE_BYTES,
    CHALLENGE_MAGIC,
    OPENING_MAGIC,
    LinkProtocolError,
    Opening,
    challenge_frame,
    is_opening,
    make_opening,
    parse_challenge,
    parse_opening,
    parse_refusal,
    refusal_frame,
)

__all__ = [
    "CHALLENGE_MAGIC",
    "OPENING_MAGIC",
    "OPEN_TIMEOUT",
    "PEER_PATH",
    "Link",
    "LinkProtocolError",
    "Opening",
    "WsLink",
    "is_opening",
    "make_opening",
    "new_challenge",
    "parse_challenge",
    "parse_opening",
    "parse_refusal",
    "refusal_frame",
]

PEER_PATH = "/peer/v1"
OPEN_TIMEOUT = 10.0  # seconds for each step of a link's opening exchange, on either side


def new_challenge() -> bytes:
    return challenge_frame(os.urandom(CHALLENGE_BYTES))


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
