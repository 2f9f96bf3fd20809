"""Fixtures for the relay suite: a real relay on 127.0.0.1 (port chosen by the OS), real node
identities, real sealed envelopes, and clients that reconnect quickly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.transport.backoff import Backoff
from node.transport.relay import RelayLimits, RelayServer
from node.transport.relay_client import RelayClient, auth_payload
from protocol import ChannelKeys, NodeIdentity
from protocol.identity import b64, unb64

CONNECTION_ID = bytes(range(16))


def identity(name: str) -> NodeIdentity:
    return NodeIdentity.from_seed(hashlib.sha512(name.encode()).digest())


def channel(me: NodeIdentity, peer: NodeIdentity, connection_id: bytes = CONNECTION_ID) -> ChannelKeys:
    return ChannelKeys.derive(me, connection_id, peer.public.sign_public, peer.public.box_public)


def seal(keys: ChannelKeys, sequence: int, text: str) -> bytes:
    return keys.seal(sequence, text.encode(), os.urandom(24))


@dataclass
class Inbox:
    """An ``on_envelope`` that records what arrived and lets a test await a count."""

    items: list[bytes] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, envelope: bytes) -> None:
        self.items.append(envelope)
        self._changed.set()

    async def wait_for(self, count: int, within: float = 10.0) -> list[bytes]:
        async with asyncio.timeout(within):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """For state only observable by looking (a relay's counters): look until true, bounded."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 (no event exists for these; bounded by the timeout)
            await asyncio.sleep(0.01)


def fast_backoff() -> Backoff:
    return Backoff(base=0.02, cap=0.2)


@pytest.fixture
def relay_home(tmp_path: Path) -> Path:
    return tmp_path / "relay"


@pytest.fixture
def limits() -> RelayLimits:
    return RelayLimits()


@pytest.fixture
async def relay(relay_home: Path, limits: RelayLimits) -> AsyncIterator[RelayServer]:
    server = RelayServer(relay_home, limits)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


ClientFactory = Callable[..., Awaitable[RelayClient]]


@pytest.fixture
async def make_client(relay: RelayServer) -> AsyncIterator[ClientFactory]:
    clients: list[RelayClient] = []

    async def make(
        who: NodeIdentity,
        on_envelope: Callable[[bytes], Awaitable[None]] | None = None,
        *,
        url: str | None = None,
        connect: bool = True,
        **kwargs: Any,
    ) -> RelayClient:
        kwargs.setdefault("backoff", fast_backoff())
        client = RelayClient(url or relay.url, who, on_envelope or Inbox(), **kwargs)
        clients.append(client)
        await client.start()
        if connect:
            await client.wait_connected(5)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


async def metrics(http: aiohttp.ClientSession, relay: RelayServer) -> dict[str, float]:
    """The relay's /metrics as {'name{labels}': value}."""
    async with http.get(f"http://127.0.0.1:{relay.port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def raw_login(
    http: aiohttp.ClientSession, relay: RelayServer, who: NodeIdentity
) -> aiohttp.ClientWebSocketResponse:
    """A hand-driven authenticated socket, to send what a well-behaved client never would."""
    ws = await http.ws_connect(relay.url)
    challenge = json.loads((await ws.receive(timeout=5)).data)
    signature = who.sign(auth_payload(unb64(challenge["challenge"]), relay.url))
    await ws.send_str(
        json.dumps(
            {"type": "auth", "identity": who.public.to_json(), "url": relay.url, "signature": b64(signature)}
        )
    )
    welcome = json.loads((await ws.receive(timeout=5)).data)
    assert welcome["type"] == "welcome", welcome
    return ws
