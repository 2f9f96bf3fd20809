"""The tracker's webhook endpoint: ``POST /webhooks/{secret}``.

Mounted on the peer listener of a public node, or on a webhook-only listener
(``tracker.webhook_listen``) of a private node that its tracker can reach. The handler only parses
and queues (:meth:`node.sync.intake.Intake.accept_webhook`); it never waits for a tracker call.
A wrong path segment is a 404, a body or signature that cannot be accepted a 400, both as JSON and
counted in ``tandem_webhook_rejected_total``; never a traceback.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from node.trackers.base import WebhookError
from node.web.errors import error_response, json_errors
from node.web.keys import NODE

if TYPE_CHECKING:
    from node.app import Node

ROUTE = "/webhooks/{secret}"
MAX_BODY = 16 * 1024 * 1024
# The answer to almost every delivery (one event, or none) is one of these: no JSON encoding per call.
_ACCEPTED = {n: f'{{"accepted": {n}}}'.encode() for n in range(4)}


def _accepted(count: int) -> web.Response:
    body = _ACCEPTED.get(count) or f'{{"accepted": {count}}}'.encode()
    return web.Response(body=body, content_type="application/json")


async def receive_webhook(request: web.Request) -> web.Response:
    intake = request.app[NODE].intake
    if intake is None:
        return error_response(404, "no_intake", "this node has no tracker to receive webhooks for")
    if not intake.path_matches(request.match_info["secret"]):
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


def add_webhook_route(app: web.Application) -> None:
    app.router.add_post(ROUTE, receive_webhook)


def make_webhook_app(node: Node) -> web.Application:
    """A listener with only the webhook route (a private node its tracker can reach)."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
    app[NODE] = node
    add_webhook_route(app)
    return app
