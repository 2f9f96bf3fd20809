"""The peer listener (internet-facing on a public node): the link WebSocket, /healthz, /metrics, and
the tracker's webhook route (:mod:`node.web.webhooks`).

Hardening: every frame is size-limited (``peer.max_message_bytes`` at the WebSocket and HTTP body
level); anything that is not a valid opening, pairing request or envelope for the link's connection
is counted by reason (``tandem_peer_rejected_total``) and dropped. A bad *envelope* on an open link
is dropped without closing the link (it may be line noise, and the good traffic continues); a bad
*opening* gets a text refusal and the socket is closed. An oversized frame closes that socket
(code 1009: the rest of the frame cannot be skipped); the connection's state is untouched and the
dialer reconnects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from node.connections import Refusal
from node.transport.link import (
    CHALLENGE_MAGIC,
    OPEN_TIMEOUT,
    PEER_PATH,
    LinkProtocolError,
    WsLink,
    is_opening,
    new_challenge,
    parse_opening,
)
from node.web.admin import metrics
from node.web.errors import error_response, json_errors
from node.web.keys import NODE
from node.web.webhooks import add_webhook_route
from protocol.envelope import KIND_PAIR, MAGIC

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger(__name__)


def _is_pair(data: bytes) -> bool:
    return len(data) > 5 and data[:3] == MAGIC and data[4] == KIND_PAIR


async def peer_link(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    manager = node.manager
    ws = web.WebSocketResponse(
        max_msg_size=node.config.peer.max_message_bytes,
        heartbeat=node.config.links.heartbeat_seconds,
    )
    if not ws.can_prepare(request).ok:
        manager.metrics.reject("garbage")
        return error_response(400, "not_a_websocket", "this endpoint speaks the Tandem link over WebSocket")
    await ws.prepare(request)
    link = WsLink(ws, "in")
    frame = new_challenge()
    await ws.send_bytes(frame)
    challenge = frame[len(CHALLENGE_MAGIC) :]
    try:
        first = await ws.receive(timeout=OPEN_TIMEOUT)
    except TimeoutError:
        await ws.close()
        return ws
    if first.type != WSMsgType.BINARY:
        manager.metrics.reject("oversized" if _oversized(first) else "garbage")
        await link.refuse("malformed", "expected a link opening or a pairing request")
        return ws
    data: bytes = first.data
    try:
        if is_opening(data):
            rt = await manager.open_link(parse_opening(data), challenge, link)
        elif _is_pair(data):
            rt = await manager.on_pair(data, link)
        else:
            raise Refusal("malformed", "expected a link opening or a pairing request", "garbage")
    except LinkProtocolError as exc:
        manager.metrics.reject("garbage")
        await link.refuse("malformed", str(exc))
        return ws
    except Refusal as refusal:
        manager.metrics.reject(refusal.reason)
        await link.refuse(refusal.code, refusal.message)
        return ws
    except Exception:
        # A bug: log it, never write an HTTP 500 into an upgraded socket.
        log.exception("unexpected error opening a peer link")
        await link.refuse("internal_error", "internal error (details are in the node's log)")
        return ws
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await manager.on_frame(rt, link, msg.data)
            elif msg.type == WSMsgType.TEXT:
                manager.metrics.reject("garbage")
            elif msg.type == WSMsgType.ERROR:
                manager.metrics.reject("oversized" if _oversized(msg) else "garbage")
                break
            if rt.link is not link:
                break  # replaced by a newer link, or dropped (deactivated / deleted)
    except ConnectionError:
        pass
    except Exception:
        log.exception("unexpected error on the peer link of %r", rt.name)
    finally:
        manager.detach(rt, link)
        await link.close()
    return ws


def _oversized(msg: object) -> bool:
    data = getattr(msg, "data", None)
    return getattr(data, "code", None) == 1009 or "too big" in str(data).lower()


async def healthz(request: web.Request) -> web.Response:
    """Public health: overall status and link counts, no connection names."""
    node = request.app[NODE]
    status, items = node.manager.health()
    up = sum(1 for i in items if i["link"] == "up")
    body: dict[str, object] = {"status": status, "links_up": up, "connections": len(items)}
    if node.intake is not None:  # the tracker's state only: no address, user or message
        body["tracker"] = node.intake.state
        if node.intake.state != "ok":
            body["status"] = "degraded"
    return web.json_response(body)


def make_peer_app(node: Node, max_body: int, serve_metrics: bool) -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=max_body)
    app[NODE] = node
    app.router.add_get(PEER_PATH, peer_link)
    app.router.add_get("/healthz", healthz)
    add_webhook_route(app)  # POST /webhooks/{secret}: the tracker's deliveries (node.web.webhooks)
    if serve_metrics:
        app.router.add_get("/metrics", metrics)
    return app
