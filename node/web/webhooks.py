"""The tracker's webhook endpoint: ``POST /webhooks/{secret}``.

Mounted on the peer listener of a public node (a route of the peer app), or served alone by the
webhook-only listener (``tracker.webhook_listen``) of a private node that its tracker can reach:
:class:`WebhookServer`, a plain asyncio protocol over the httptools (llhttp) parser that answers
each request as soon as its body is complete, with no task, stream or response object per request.
During a bulk sync every write the node makes comes back as a delivery, so this path is hot; it
costs about half of what aiohttp's server does per delivery (``scripts/bench_webhooks.py``).

Both only parse and queue (:meth:`node.sync.intake.Intake.accept_webhook`); neither waits for a
tracker call. A wrong path segment is a 404, a body or signature that cannot be accepted a 400, a
body over the limit a 413, all as JSON and counted in ``tandem_webhook_rejected_total``; never a
traceback, and the secret path is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp
import httptools
import orjson
from aiohttp import web
from multidict import CIMultiDict

from node.tasks import cancel_and_wait
from node.trackers.base import WebhookError
from node.web.errors import json_errors
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


Answer = tuple[int, bytes]  # status, JSON body


def _error(status: int, code: str, message: str) -> Answer:
    return status, orjson.dumps({"error": {"code": code, "message": message}})


NO_INTAKE = _error(404, "no_intake", "this node has no tracker to receive webhooks for")
UNKNOWN_PATH = _error(404, "not_found", "no such webhook endpoint")
TOO_LARGE = _error(413, "too_large", "the webhook body is too large")


def check_path(intake: Intake | None, secret: str) -> Answer | None:
    """The refusal for a delivery to ``/webhooks/<secret>`` before its body is read, or None."""
    if intake is None:
        return NO_INTAKE
    if not intake.path_matches(secret):
        intake.reject("unknown_path")
        return UNKNOWN_PATH
    return None


def accept(intake: Intake, headers: Mapping[str, str], body: bytes) -> Answer:
    """Hand one delivery whose path was checked to intake."""
    try:
        count = intake.accept_webhook(headers, body)
    except WebhookError as exc:
        return _error(400, "bad_webhook", str(exc))
    return 200, _ACCEPTED.get(count) or f'{{"accepted": {count}}}'.encode()


async def receive_webhook(request: web.Request) -> web.Response:
    """The route of the peer app (a public node)."""
    intake = request.app[NODE].intake
    status, payload = check_path(intake, request.match_info["secret"]) or await _read(intake, request)
    return web.Response(status=status, body=payload, content_type="application/json")


async def _read(intake: Intake | None, request: web.Request) -> Answer:
    assert intake is not None  # else check_path refused
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        intake.reject("oversized")
        return TOO_LARGE
    except (ConnectionError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError, OSError):
        intake.reject("truncated")
        return _error(400, "bad_webhook", "the webhook body was cut off")
    return accept(intake, request.headers, body)


def add_webhook_route(app: web.Application) -> None:
    app.router.add_post(ROUTE, receive_webhook)


def make_webhook_app(node: Node) -> web.Application:
    """The webhook route as an application (tests that mount it beside other routes)."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
    app[NODE] = node
    add_webhook_route(app)
    return app


# -- the webhook-only listener ------------------------------------------------------------------

MAX_HEAD = 1024 * 1024  # request line and headers, with what else arrived with them
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {408: "Request Timeout", 413: "Content Too Large", 500: "Internal Server Error"}
_BAD_REQUEST = _error(400, "bad_request", "malformed HTTP request")
_UPGRADE = _error(400, "bad_request", "protocol upgrades are not supported here")


class _Date:
    """The ``Date`` header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, email.utils.formatdate(second, usegmt=True).encode()
        return cls.value


class WebhookServer:
    """The webhook-only listener: ``POST /webhooks/<secret>`` and nothing else.

    HTTP/1.1 with keep-alive and pipelining (answers in order), chunked or sized bodies; bodies
    over ``max_body`` are refused from their ``Content-Length`` (or as they pass the limit) and the
    connection closed. A request line and headers over :data:`MAX_HEAD`, a request not complete
    within ``request_timeout`` seconds, or ``idle_timeout`` seconds without a request close the
    connection. Any other path is a 404, any other method a 405, a failure of our own a logged 500
    (the log names the route, not the path: it carries the secret)."""

    def __init__(
        self,
        node: Node,
        *,
        max_body: int = MAX_BODY,
        request_timeout: float = 60.0,
        idle_timeout: float = 300.0,
        sweep_seconds: float = 5.0,
    ) -> None:
        self.node = node
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.sweep_seconds = sweep_seconds
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (``port`` 0: the OS chooses)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port)
        self._sweeper = asyncio.create_task(self._sweep(), name="webhook-listener-sweep")
        port_: int = self._server.sockets[0].getsockname()[1]
        return port_

    async def stop(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait([self._sweeper])
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _sweep(self) -> None:
        """Close connections that stalled mid-request or sat idle too long."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sweep_seconds)
            now = loop.time()
            for conn in list(self.connections):
                if conn.started is not None:
                    if now - conn.started > self.request_timeout:
                        conn.refuse(_error(408, "timeout", "the request took too long to arrive"))
                elif now - conn.active > self.idle_timeout:
                    conn.transport.close()


class _Connection(asyncio.Protocol):
    """One client connection; the parser calls the ``on_*`` methods."""

    transport: asyncio.Transport

    def __init__(self, server: WebhookServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.loop = asyncio.get_running_loop()
        self.active = self.loop.time()
        self.started: float | None = None  # when the request being read began
        self.reading_head = True  # between requests, or reading a request line and headers
        self.head = 0  # bytes received while reading_head
        self.url = b""
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.body: list[bytes] = []
        self.size = 0
        self.refused: Answer | None = None  # the answer decided from the head: the body is not kept
        self.closing = False

    # asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if not self.reading_head and self.refused is None and not self.closing:
            intake = self.server.node.intake
            if intake is not None:
                intake.reject("truncated")  # the client went away in the middle of a body

    def pause_writing(self) -> None:  # a client that does not read its answers: stop reading
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.active = self.loop.time()
        if self.reading_head:
            if self.head > MAX_HEAD:
                self.refuse(_error(400, "bad_request", "the request line and headers are too large"))
                return
            self.head += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # CONNECT
            self.refuse(_UPGRADE)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            self.refuse(refused.answer if isinstance(refused, _Refused) else _BAD_REQUEST)
        except httptools.HttpParserError:
            self.refuse(_BAD_REQUEST)

    # the parser

    def on_message_begin(self) -> None:
        self.started = self.loop.time()
        self.url = b""
        self.headers = CIMultiDict()
        self.body = []
        self.size = 0
        self.refused = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.reading_head, self.head = False, 0
        if self.parser.should_upgrade():
            raise _Refused(_UPGRADE)
        try:
            self.refused = self._check_head()
        except Exception:
            log.exception("unexpected error serving a delivery to %s", ROUTE)
            self.refused = _error(500, "internal_error", "internal error (details are in the node's log)")
        if self.refused is not None:
            return  # answered when the request is complete; its body is not kept
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            raise _Refused(self._oversized())
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _check_head(self) -> Answer | None:
        path = self.url.split(b"?", 1)[0]
        secret = path[len(PREFIX) :] if path.startswith(b"/webhooks/") else b""
        if not secret or b"/" in secret:
            return _error(404, "not_found", "no such endpoint")
        if self.parser.get_method() != b"POST":
            return _error(405, "method_not_allowed", "only POST is allowed on webhook endpoints")
        return check_path(self.server.node.intake, secret.decode("latin-1"))

    def on_body(self, body: bytes) -> None:
        if self.refused is None:
            self.size += len(body)
            if self.size > self.server.max_body:
                raise _Refused(self._oversized())
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.started, self.reading_head = None, True
        if self.closing:
            return  # pipelined after a request that closes the connection: neither taken nor answered
        answer = self.refused
        if answer is None:
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            intake = self.server.node.intake
            assert intake is not None  # else refused: check_path
            try:
                answer = accept(intake, self.headers, body)
            except Exception:
                log.exception("unexpected error serving a delivery to %s", ROUTE)
                answer = _error(500, "internal_error", "internal error (details are in the node's log)")
        self.body = []
        self._send(answer, close=not self.parser.should_keep_alive())

    # answers

    def _oversized(self) -> Answer:
        intake = self.server.node.intake
        if intake is not None:
            intake.reject("oversized")
        return TOO_LARGE

    def refuse(self, answer: Answer) -> None:
        """Answer, then close: the rest of what the client sent cannot be read in step."""
        if not self.closing:
            self._send(answer, close=True)

    def _send(self, answer: Answer, *, close: bool) -> None:
        status, body = answer
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nDate: %s\r\n" % (
            status,
            _REASONS.get(status, "Error").encode(),
            len(body),
            _Date.now(),
        )
        if close:
            self.closing = True
            self.transport.write(head + b"Connection: close\r\n\r\n" + body)
            self.transport.close()
        else:
            self.transport.write(head + b"\r\n" + body)


class _Refused(Exception):
    """Raised from a parser callback: answer this and close the connection."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[0])
        self.answer = answer
