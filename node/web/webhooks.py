"""The tracker's webhook endpoint: ``POST /webhooks/{secret}``.

Mounted on the peer listener of a public node (a route of the peer app), or served alone by a
webhook-only listener (``tracker.webhook_listen``) of a private node that its tracker can reach:
that one is aiohttp's low-level server with one handler (:class:`WebhookListener`), no router and
no middleware stack, since during a bulk sync every write the node makes comes back as a delivery.
The handler only parses and queues (:meth:`node.sync.intake.Intake.accept_webhook`); it never waits
for a tracker call. A wrong path segment is a 404, a body or signature that cannot be accepted a
400, both as JSON and counted in ``tandem_webhook_rejected_total``; never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from node.trackers.base import WebhookError
from node.web.errors import error_response, json_errors
from node.web.keys import NODE

if TYPE_CHECKING:
    from node.app import Node
    from node.sync.intake import Intake

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
ROUTE = PREFIX + "{secret}"
MAX_BODY = 16 * 1024 * 1024
# The answer to almost every delivery (one event, or none) is one of these: no JSON encoding per call.
_ACCEPTED = {n: f'{{"accepted": {n}}}'.encode() for n in range(4)}


def _accepted(count: int) -> web.Response:
    body = _ACCEPTED.get(count) or f'{{"accepted": {count}}}'.encode()
    return web.Response(body=body, content_type="application/json")


async def deliver(intake: Intake | None, secret: str, request: web.BaseRequest) -> web.Response:
    """One delivery to ``/webhooks/<secret>``: check the path, read the body, hand it to intake."""
    if intake is None:
        return error_response(404, "no_intake", "this node has no tracker to receive webhooks for")
    if not intake.path_matches(secret):
        intake.reject("unknown_path")
        return error_response(404, "not_found", "no such webhook endpoint")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        intake.reject("oversized")
        return error_response(413, "too_large", "the webhook body is too large")
    except (ConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError, OSError):
        intake.reject("truncated")
        return error_response(400, "bad_webhook", "the webhook body was cut off")
    try:
        count = intake.accept_webhook(request.headers, body)
    except WebhookError as exc:
        return error_response(400, "bad_webhook", str(exc))
    return _accepted(count)


async def receive_webhook(request: web.Request) -> web.Response:
    return await deliver(request.app[NODE].intake, request.match_info["secret"], request)


def add_webhook_route(app: web.Application) -> None:
    app.router.add_post(ROUTE, receive_webhook)


def make_webhook_app(node: Node) -> web.Application:
    """The webhook route as the peer app serves it (a public node), alone in an application:
    ``scripts/bench_webhooks.py`` measures it beside the webhook-only listener."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
    app[NODE] = node
    add_webhook_route(app)
    return app


class WebhookListener:
    """The handler of a webhook-only listener: ``POST /webhooks/<secret>`` and nothing else.

    What the router and ``json_errors`` give the peer app, done by hand for the one route: another
    path is a 404, another method a 405, a failure of our own a logged 500 without its traceback
    (the log names no path: it carries the secret)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            path = request.path
            secret = path[len(PREFIX) :]
            if not path.startswith(PREFIX) or not secret or "/" in secret:
                return error_response(404, "not_found", f"no such endpoint: {request.method} {path}")
            if request.method != "POST":
                return error_response(405, "method_not_allowed", "only POST is allowed on webhook endpoints")
            return await deliver(self.node.intake, secret, request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, ROUTE)
            return error_response(500, "internal_error", "internal error (details are in the node's log)")

    def make_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        loop = asyncio.get_running_loop()
        return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY)


def make_webhook_server(node: Node) -> web.Server:
    """A webhook-only listener (a private node its tracker can reach): run it with
    ``web.ServerRunner``."""
    listener = WebhookListener(node)
    return web.Server(listener, request_factory=listener.make_request, access_log=None)
