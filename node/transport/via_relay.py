"""Relay mode for the connection manager: one :class:`RelayClient` per relay URL, shared by every
connection that meets its peer there, and a :class:`Link` per relay that the manager sends on.

* A deposit is fire-and-forget from the manager's point of view: the envelope is already in the
  durable outbox, so a relay that is down or full only delays it (it is resent after the next Hello
  exchange). The client itself re-sends deposits across reconnects.
* Pushed envelopes are routed by their header: PAIR → :meth:`ConnectionManager.on_pair`, DATA → the
  connection it names. Bad ones are counted and swallowed (raising would make the relay push them
  again forever); only store faults propagate, so the relay redelivers after a reconnect.
* Each time the client (re)connects, every relay connection at that URL says Hello, so both sides
  learn what the other is missing and resend it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from node.connections import Refusal, RelayHub, Runtime
from node.transport.backoff import Backoff
from node.transport.link import Link
from node.transport.relay_client import RelayClient, RelayError
from protocol import MalformedEnvelope, read_header
from protocol.envelope import KIND_PAIR

if TYPE_CHECKING:
    from node.connections import ConnectionManager

log = logging.getLogger(__name__)


class _NotifyingClient(RelayClient):
    """A RelayClient that reports each authenticated connection and its end."""

    on_up: Callable[[], Awaitable[None]] | None = None
    on_down: Callable[[], None] | None = None

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        announce = asyncio.create_task(self._announce())
        try:
            await super()._serve(ws)
        finally:
            announce.cancel()
            if self.on_down is not None:
                self.on_down()

    async def _announce(self) -> None:
        await self.wait_connected()
        if self.on_up is not None:
            await self.on_up()


class RelayLink(Link):
    kind = "relay"

    def __init__(self, client: RelayClient, url: str) -> None:
        self.client = client
        self.url = url
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, data: bytes) -> None:
        task = asyncio.create_task(self._deposit(data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deposit(self, data: bytes) -> None:
        try:
            await self.client.send(data)
        except RelayError as exc:
            # Still in the outbox: resent after the next Hello exchange.
            log.debug("relay %s did not take an envelope: %s", self.url, exc)

    async def refuse(self, code: str, message: str) -> None:
        log.info("relay %s: refusing a peer: %s (%s)", self.url, message, code)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    @property
    def closed(self) -> bool:
        return not self.client.connected

    def describe(self) -> str:
        return f"relay {self.url}"


class RelayLinks(RelayHub):
    def __init__(self, manager: ConnectionManager) -> None:
        self.manager = manager
        self._clients: dict[str, _NotifyingClient] = {}
        self._links: dict[str, RelayLink] = {}

    async def ensure(self, url: str) -> None:
        if url in self._clients:
            return
        cfg = self.manager.config.links
        client = _NotifyingClient(
            url,
            self.manager.identity,
            functools.partial(self._on_envelope, url),
            backoff=Backoff(cfg.backoff_base_seconds, cfg.backoff_max_seconds),
            heartbeat=cfg.heartbeat_seconds,
        )
        link = RelayLink(client, url)
        client.on_up = lambda: self._on_up(url)
        client.on_down = lambda: self._on_down(url)
        self._clients[url] = client
        self._links[url] = link
        await client.start()

    def link_for(self, url: str) -> Link | None:
        client = self._clients.get(url)
        if client is None or not client.connected:
            return None
        return self._links[url]

    def _connections_at(self, url: str) -> list[Runtime]:
        return [rt for rt in self.manager.runtimes.values() if rt.row.link == "relay" and rt.row.url == url]

    async def _on_up(self, url: str) -> None:
        link = self._links[url]
        for rt in self._connections_at(url):
            if rt.wants_link():
                await self.manager.attach(rt, link)

    def _on_down(self, url: str) -> None:
        link = self._links.get(url)
        for rt in self._connections_at(url):
            if link is not None:
                self.manager.detach(rt, link)
            client = self._clients.get(url)
            rt.link_error = client.last_error if client is not None else None

    async def _on_envelope(self, url: str, data: bytes) -> None:
        manager = self.manager
        link = self._links[url]
        try:
            header = read_header(data)
        except MalformedEnvelope:
            manager.metrics.reject("garbage")
            return
        if header.kind == KIND_PAIR:
            try:
                rt = await manager.on_pair(data, None)
            except Refusal as refusal:
                manager.metrics.reject(refusal.reason)
                log.info("relay %s: pairing request refused: %s", url, refusal.message)
                return
            if rt.row.link == "relay" and rt.row.url == url:
                await manager.attach(rt, link)
            return
        found = manager.runtimes.get(header.connection_id)
        if found is None or found.row.link != "relay":
            manager.metrics.reject("unknown_connection")
            return
        if found.link is None and found.wants_link() and found.row.url == url:
            await manager.attach(found, link)
        await manager.on_frame(found, link, data)

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
        self._links.clear()
