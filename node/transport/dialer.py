"""The outbound side of a direct link: a private node (or an acceptor of a public inviter) dials its
peer and keeps one WebSocket open, reconnecting with exponential backoff and full jitter.

One dial loop per connection whose ``link`` is ``dial``. It sleeps while the connection does not
want a link (deactivated, error) and wakes at once when it does again (``Runtime.wake``). A link
that carried at least one valid frame resets the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp

from node.transport.backoff import Backoff
from node.transport.link import (
    OPEN_TIMEOUT,
    PEER_PATH,
    LinkProtocolError,
    WsLink,
    make_opening,
    parse_challenge,
    parse_refusal,
)

if TYPE_CHECKING:
    from node.connections import ConnectionManager, Runtime

log = logging.getLogger(__name__)


def peer_ws_url(url: str) -> str:
    return url.rstrip("/") + PEER_PATH


class Dialer:
    """Creates dial loops sharing one HTTP client session."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=OPEN_TIMEOUT)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, manager: ConnectionManager, rt: Runtime) -> None:
        cfg = manager.config.links
        backoff = Backoff(cfg.backoff_base_seconds, cfg.backoff_max_seconds)
        down_logged = False
        while True:
            if rt.row.state == "deleted" or manager.runtimes.get(rt.row.id) is not rt:
                return
            if not rt.wants_link() or rt.row.link != "dial":
                rt.wake.clear()
                await rt.wake.wait()
                continue
            try:
                good = await self._dial_once(manager, rt)
            except Exception as exc:  # a bug (or the store failing) must not end the loop for good
                log.exception("connection %r: unexpected error on the link", rt.name)
                rt.link_error = f"unexpected error: {exc!r}"
                good = False
            if good:
                backoff.reset()
                down_logged = False
            elif not down_logged:
                log.info("connection %r: cannot reach %s: %s", rt.name, rt.row.url, rt.link_error)
                down_logged = True  # log a state change once, not every retry
            if manager.runtimes.get(rt.row.id) is not rt:
                return  # deleted, or refused while pending
            delay = backoff.next_delay()
            rt.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # (not wait_for: see node/tasks.py)
                    await rt.wake.wait()
            manager.metrics.reconnects.labels(rt.name).inc()

    async def _dial_once(self, manager: ConnectionManager, rt: Runtime) -> bool:
        from node.connections import Refusal

        assert rt.row.url is not None
        limit = manager.config.peer.max_message_bytes
        good = False
        link: WsLink | None = None
        try:
            async with self.session().ws_connect(
                peer_ws_url(rt.row.url),
                max_msg_size=limit,
                heartbeat=manager.config.links.heartbeat_seconds,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            ) as ws:
                first = await ws.receive(timeout=OPEN_TIMEOUT)
                if first.type == aiohttp.WSMsgType.TEXT:
                    code, message = parse_refusal(first.data)
                    await manager.on_refused(rt, code, message)
                    return False
                if first.type != aiohttp.WSMsgType.BINARY:
                    raise LinkProtocolError("the peer closed the link before it opened")
                challenge = parse_challenge(first.data)
                link = WsLink(ws, "out")
                if rt.row.role == "acceptor" and rt.row.state == "pending" and rt.row.pair_envelope:
                    await ws.send_bytes(rt.row.pair_envelope)
                else:
                    await ws.send_bytes(make_opening(manager.identity, challenge, rt.row.id))
                if rt.session is not None:
                    await manager.attach(rt, link)
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        if rt.session is None:
                            # A private inviter's first link: the acceptor answers with its PAIR.
                            try:
                                paired = await manager.on_pair(msg.data, link)
                            except Refusal as refusal:
                                manager.metrics.reject(refusal.reason)
                                await link.refuse(refusal.code, refusal.message)
                                return False
                            if paired is not rt:
                                return False
                            good = True
                        elif await manager.on_frame(rt, link, msg.data):
                            good = True
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        code, message = parse_refusal(msg.data)
                        await manager.on_refused(rt, code, message)
                        break
                    else:
                        if msg.type == aiohttp.WSMsgType.ERROR:
                            rt.link_error = f"link error: {msg.data}"
                        break
                    if not rt.wants_link():
                        break
                if rt.link_error is None and not good:
                    rt.link_error = "the peer closed the link"
        except (aiohttp.ClientError, OSError, TimeoutError, LinkProtocolError) as exc:
            rt.link_error = _describe(exc)
        finally:
            if link is not None:
                manager.detach(rt, link)
                await link.close()
        return good


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"the peer URL answered HTTP {exc.status} instead of a Tandem link"
    text = str(exc) or type(exc).__name__
    return text[:300]
