"""The node daemon: explicit startup and shutdown of the store, the connection manager, the admin
listener and (for a public node) the peer listener.

Lifecycle (aiohttp ``cleanup_ctx`` on the admin app owns the background work)::

    start: open store (migrate) → connection manager (dial loops, relays) → [tracker] adapter and
           sync engine (the engine starts in the background) → peer listener (+ webhook route)
           → webhook-only listener (tracker.webhook_listen) → intake (credential check, webhook
           registration, polling: node.sync.intake) → admin listener → run.json → "ready" log line
    stop:  intake → sync engine → manager (closes links, cancels loops) → peer and webhook
           listeners → admin listener → adapter → store

A private node opens no listening socket for peers at all; its admin API still listens (loopback
by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from importlib import metadata
from typing import TYPE_CHECKING, Any

from aiohttp import web

from node.config import Config, ConfigError, parse_hostport
from node.connections import ConnectionManager
from node.home import Home, HomeError, RunInfo
from node.store import Database
from node.sync.intake import Intake, TrackerSide
from node.trackers.base import TrackerAdapter
from node.transport.dialer import Dialer
from node.transport.via_relay import RelayLinks
from node.web.admin import make_admin_app
from node.web.keys import NODE
from node.web.peer import make_peer_app
from node.web.webhooks import make_webhook_server
from protocol import NodeIdentity

if TYPE_CHECKING:
    from node.sync.engine import SyncEngine

log = logging.getLogger("tandem.node")


def _version() -> str:
    try:
        return metadata.version("tandem-sync")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _url(host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class Node:
    def __init__(self, home: Home, config: Config, identity: NodeIdentity, token: str) -> None:
        self.home = home
        self.config = config
        self.identity = identity
        self._token = token
        self.db = Database(home.db_path, synchronous=config.store.synchronous)
        self.dialer = Dialer()
        self.manager = ConnectionManager(
            identity, config, self.db, peer_url=lambda: self.peer_url, dial_loop=self.dialer
        )
        self.manager.relays = RelayLinks(self.manager)
        self.admin_url: str | None = None
        self.peer_url: str | None = None
        self.started_at = time.time()
        self._admin_runner: web.AppRunner | None = None
        self._peer_runner: web.AppRunner | None = None
        self._webhook_runner: web.ServerRunner | None = None
        # beside its tracker ([tracker] in config.toml): adapter, sync engine, intake
        self.tracker = TrackerSide(config, self.db, self.manager) if config.tracker is not None else None
        self.adapter_options: dict[str, Any] = {}  # tests: retry settings for the adapter
        self._stopped = False

    @property
    def adapter(self) -> TrackerAdapter | None:
        return self.tracker.adapter if self.tracker is not None else None

    @property
    def engine(self) -> SyncEngine | None:
        return self.tracker.engine if self.tracker is not None else None

    @property
    def intake(self) -> Intake | None:
        return self.tracker.intake if self.tracker is not None else None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.config.node.name,
            "node_id": self.identity.node_id_text,
            "mode": self.config.peer.mode,
            "admin_url": self.admin_url,
            "peer_url": self.peer_url,
            "version": _version(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "connections": len(self.manager.runtimes),
        }

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        await self.db.open()
        await self.manager.start()
        if self.tracker is not None:
            try:
                await self.tracker.open(**self.adapter_options)
            except ConfigError as exc:  # no token, unusable setting: undo, and say which
                await self.manager.stop()
                await self.dialer.close()
                await self.db.close()
                raise HomeError(str(exc)) from None
        yield
        if self.tracker is not None:
            await self.tracker.close()
        await self.manager.stop()
        await self.dialer.close()
        await self.db.close()

    async def start(self) -> None:
        admin_app = make_admin_app(self._token)
        admin_app[NODE] = self
        admin_app.cleanup_ctx.append(self._lifecycle)
        self._admin_runner = web.AppRunner(admin_app, access_log=None, shutdown_timeout=2.0)
        await self._admin_runner.setup()
        if self.config.public:
            peer_app = make_peer_app(self, self.config.peer.max_message_bytes, self.config.peer.serve_metrics)
            self._peer_runner = web.AppRunner(peer_app, access_log=None, shutdown_timeout=2.0)
            await self._peer_runner.setup()
            host, port = parse_hostport(self.config.peer.listen)
            await web.TCPSite(self._peer_runner, host, port).start()
            actual = self._peer_runner.addresses[0][1]
            self.peer_url = self.config.peer.public_url or _url(host, actual)
        if self.tracker is not None:
            await self._start_intake()
        host, port = parse_hostport(self.config.admin.listen)
        await web.TCPSite(self._admin_runner, host, port).start()
        self.admin_url = _url(host, self._admin_runner.addresses[0][1])
        self.home.write_run_info(
            RunInfo(
                os.getpid(), self.admin_url, self.peer_url, self.identity.node_id_text, self.config.node.name
            )
        )
        peers = self.peer_url or "none (private: dials out)"
        log.info(
            'tandem node "%s" ready: admin %s  peers %s  node id %s',
            self.config.node.name,
            self.admin_url,
            peers,
            self.identity.node_id_text,
        )

    async def _start_intake(self) -> None:
        assert self.tracker is not None and self.config.tracker is not None
        listen_url = None
        if self.config.tracker.webhook_listen and self.config.tracker.webhooks != "off":
            self._webhook_runner = web.ServerRunner(make_webhook_server(self), shutdown_timeout=2.0)
            await self._webhook_runner.setup()
            host, port = parse_hostport(self.config.tracker.webhook_listen)
            await web.TCPSite(self._webhook_runner, host, port).start()
            listen_url = _url(host, self._webhook_runner.addresses[0][1])
        base = self.tracker.webhook_base(self.peer_url, listen_url)
        await self.tracker.start_intake(base, self.manager.metrics.registry)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.tracker is not None:
            await self.tracker.stop()  # intake, engine: before the links go
        await self.manager.stop()
        if self._peer_runner is not None:
            await self._peer_runner.cleanup()
        if self._webhook_runner is not None:
            await self._webhook_runner.cleanup()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        self.home.clear_run_info(os.getpid())
        log.info("tandem node stopped")


async def run_node(home: Home) -> None:
    """Run until SIGTERM/SIGINT."""
    config = home.load_config()
    node = Node(home, config, home.load_identity(), home.admin_token())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
