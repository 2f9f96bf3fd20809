"""A lean HTTP/1.1 client for the nodes' plain tracker REST calls: one keep-alive connection pool per
origin, one request at a time per connection, the answer parsed by httptools (llhttp).

Why it exists: aiohttp's client costs ~90 µs of CPU per request, this one about a quarter of that, and
a node makes several tracker calls per synced issue. aiohttp stays for what needs more (multipart
uploads, redirect-following downloads: :mod:`node.trackers.common.rest`).

What it does:

* ``http`` and ``https`` (certificate and host name verified unless built with ``verify=False``, or
  with the caller's own :class:`ssl.SSLContext`);
* bodies framed by ``Content-Length``, chunked, or the end of the connection; ``1xx`` interim answers
  skipped; no body after ``HEAD``, ``204`` or ``304``; ``Connection: close`` (and HTTP/1.0) honoured;
  ``gzip``/``deflate`` bodies decoded; every body bounded (``max_body``, after decoding);
* one deadline per request covering the wait for a connection, connecting, sending and the answer;
* a keep-alive connection found dead when reused (the server closed it while idle: end of stream or
  reset before a single byte of the answer) is retried once on a fresh connection, but only when the
  server cannot have acted on the request: the method is idempotent, or the request had not been
  fully handed to the kernel. A fully sent POST raises :class:`ServerDisconnected` instead (as
  aiohttp does): the caller's retry policy decides, and its intents and markers prevent a duplicate.

Errors, by whose fault::

    HttpClientError            a transport problem; worth a retry later
    ├── ConnectError           cannot connect: refused, unknown host, TLS handshake or certificate
    ├── ServerDisconnected     the connection ended before the answer was complete
    ├── BadResponse            the answer is not HTTP/1.1, or larger than allowed
    └── RequestTimeout         (also a TimeoutError) no complete answer before the deadline
    InvalidRequest             (a ValueError) our request cannot be sent: CR/LF in a header, bad URL

Never logs, and never puts headers or bodies into a message (they may carry tokens).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast

import httptools
from multidict import CIMultiDict
from yarl import URL

DEFAULT_MAX_BODY: Final = 128 * 1024 * 1024
KEEPALIVE_SECONDS: Final = 15.0  # an idle connection older than this is closed, not reused (as aiohttp)
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_OURS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_FORBIDDEN: Final = ("\r", "\n", "\x00")
_ACCEPT_ENCODING: Final = "Accept-Encoding: gzip, deflate\r\n"


class HttpClientError(Exception):
    """A transport-level failure talking to a server (see the tree in the module docstring)."""


class ConnectError(HttpClientError):
    pass


class ServerDisconnected(HttpClientError):
    pass


class BadResponse(HttpClientError):
    pass


class RequestTimeout(HttpClientError, TimeoutError):
    pass


class InvalidRequest(ValueError):
    """Our own request cannot be sent as it is (never retried)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class _Retry(Exception):
    """A reused connection turned out dead before the server can have acted: send again."""


class _TooLarge(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One connection; a request at a time. Parser callbacks fill the answer of the current request."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._head_only = False
        self._max_body = DEFAULT_MAX_BODY
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._answered = False  # a byte of the current answer arrived
        self._reusable = True
        self.closed = False
        self.used = 0  # requests sent on this connection so far
        self.idle_since = 0.0

    # ------------------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the stream is out of step
            self.close()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server switched protocols without being asked"))
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _TooLarge):
                self._fail(BadResponse(f"answer body larger than {self._max_body} bytes"))
            else:
                self._fail(BadResponse(f"malformed HTTP answer ({exc})"))

    def eof_received(self) -> bool | None:
        self._ended()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # ------------------------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            raise BadResponse("an answer came that no request asked for")
        self._status = 0
        self._headers = []
        self._chunks = []
        self._size = 0
        self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        if self._head_only and self._status >= 200:
            # llhttp cannot be told that a HEAD answer has no body: finish here, drop the connection
            self._reusable = False
            self._deliver()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            raise _TooLarge
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # 1xx interim answer (100 Continue, 103 Early Hints): the real one follows
            self._headers_done = False
            return
        if not self._parser.should_keep_alive():
            self._reusable = False
        self._deliver()

    # ------------------------------------------------------------------------------- requests

    async def send(
        self,
        data: bytes,
        *,
        head_only: bool,
        idempotent: bool,
        max_body: int,
        deadline: float,
        seconds: float,
    ) -> Response:
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise _Retry
        loop = self._pool.loop
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._head_only = head_only
        self._max_body = max_body
        self._answered = False
        self._headers_done = False
        self.used += 1
        reused = self.used > 1
        transport.write(data)
        sent = transport.get_write_buffer_size() == 0  # all handed to the kernel
        timer = loop.call_at(deadline, self._timed_out, seconds)
        try:
            return await waiter
        except ServerDisconnected:
            if reused and not self._answered and (idempotent or not sent):
                raise _Retry from None
            raise
        finally:
            timer.cancel()
            self._waiter = None
            if waiter.cancelled() or not waiter.done() or waiter.exception() is not None:
                self._reusable = False  # an answer may still be on its way: never reuse

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed and self._waiter is None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._reusable = False
            if self._transport is not None:
                self._transport.close()
            self._pool.forget(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.close()

    # ------------------------------------------------------------------------------- internals

    def _timed_out(self, seconds: float) -> None:
        self._fail(RequestTimeout(f"no complete answer within {seconds:.3g}s"))

    def _fail(self, exc: HttpClientError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _ended(self, exc: Exception | None = None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._headers_done and self._eof_framed():
                self._reusable = False
                self._deliver()
            else:
                why = f": {exc}" if exc else ""
                what = "before the answer was complete" if self._answered else "without an answer"
                waiter.set_exception(ServerDisconnected(f"the server closed the connection {what}{why}"))
        self.close()

    def _eof_framed(self) -> bool:
        """Whether the answer's body runs to the end of the connection (no length, not chunked)."""
        length = False
        coding = b""
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                length = True
            elif lower == b"transfer-encoding":
                coding = value.rsplit(b",", 1)[-1].strip().lower()
        return not length and coding != b"chunked" and self._status not in (204, 304)

    def _deliver(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._headers
        )
        body = b"".join(self._chunks)
        self._chunks = []
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if body and encoding in ("gzip", "deflate", "x-gzip"):
            try:
                body = _decompress(body, encoding, self._max_body)
            except (zlib.error, _TooLarge) as exc:
                self._reusable = False
                why = f"larger than {self._max_body} bytes" if isinstance(exc, _TooLarge) else str(exc)
                waiter.set_exception(BadResponse(f"cannot decode the {encoding} answer body: {why}"))
                return
        waiter.set_result(Response(self._status, headers, body))
        if not self._reusable:
            self.close()


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding == "deflate" and body[:1] != b"\x78":  # raw deflate without the zlib header
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    else:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding != "deflate" else 0))
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    return out


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout("no free connection in time (all in use)"))


class _Pool:
    """The connections to one origin: at most ``limit`` open, idle ones reused newest first."""

    def __init__(self, client: Http1Client, scheme: str, host: str, port: int) -> None:
        self.client = client
        self.loop = client.loop
        self.scheme, self.host, self.port = scheme, host, port
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()
        self.waiters: deque[asyncio.Future[None]] = deque()

    def forget(self, conn: _Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            if conn in self.idle:
                self.idle.remove(conn)
            self._wake_one()

    def release(self, conn: _Connection) -> None:
        if conn.reusable:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
            self._wake_one()
        else:
            conn.close()  # forget() wakes a waiter

    def _wake_one(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _take_idle(self) -> _Connection | None:
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and now - conn.idle_since < KEEPALIVE_SECONDS:
                return conn
            conn.close()
        return None

    async def acquire(self, deadline: float, *, fresh: bool) -> _Connection:
        limit = self.client.limit
        while True:
            if not fresh:
                conn = self._take_idle()
                if conn is not None:
                    return conn
            elif len(self.open) >= limit and self.idle:
                self.idle[0].close()  # make room for the fresh one: drop the oldest idle connection
            if len(self.open) < limit:
                break
            fut: asyncio.Future[None] = self.loop.create_future()
            self.waiters.append(fut)
            timer = self.loop.call_at(deadline, _expire, fut)  # cheaper than asyncio.timeout_at
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._wake_one()  # woken but leaving: hand the turn on
                elif fut in self.waiters:
                    self.waiters.remove(fut)
                raise
            finally:
                timer.cancel()
        return await self._connect(deadline)

    async def _connect(self, deadline: float) -> _Connection:
        conn = _Connection(self)
        self.open.add(conn)
        where = f"{self.host}:{self.port}"
        ctx = self.client.ssl_context() if self.scheme == "https" else None
        try:
            async with asyncio.timeout_at(min(deadline, self.loop.time() + self.client.connect_timeout)):
                await self.loop.create_connection(
                    lambda: conn, self.host, self.port, ssl=ctx, server_hostname=self.host if ctx else None
                )
        except TimeoutError:
            raise RequestTimeout(f"timed out connecting to {where}") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"the TLS certificate of {where} is not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        finally:
            if conn._transport is None:  # not connected: give the slot back
                conn.closed = True
                self.forget(conn)
        return conn

    def close(self) -> None:
        for conn in list(self.open):
            conn.abort()
        for fut in self.waiters:
            if not fut.done():
                fut.set_result(None)


class Http1Client:
    """A pool of keep-alive HTTP/1.1 connections (``limit`` per origin) for requests read in full."""

    def __init__(
        self,
        *,
        limit: int = 10,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.verify = verify
        self.max_body = max_body
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context()
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        time_limit: float | None = None,
        max_body: int | None = None,
    ) -> Response:
        """Send one request and read its answer in full. Raises :class:`HttpClientError` subclasses
        for transport problems and :class:`InvalidRequest` for a request that cannot be sent."""
        target = url if isinstance(url, URL) else URL(url)
        if params:
            target = target.extend_query(params)
        scheme = target.scheme
        host = target.raw_host
        if scheme not in ("http", "https") or not host:
            raise InvalidRequest(f"not an absolute http(s) URL: {str(target)!r}")
        port = target.port or (443 if scheme == "https" else 80)
        data = _encode(method, target, headers or {}, body)
        loop = self.loop
        seconds = self.timeout if time_limit is None else time_limit
        deadline = loop.time() + seconds
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, scheme, host, port)
        head_only = method == "HEAD"
        idempotent = method in IDEMPOTENT
        limit = self.max_body if max_body is None else max_body
        for attempt in (1, 2):
            conn = await pool.acquire(deadline, fresh=attempt > 1)
            try:
                return await conn.send(
                    data,
                    head_only=head_only,
                    idempotent=idempotent,
                    max_body=limit,
                    deadline=deadline,
                    seconds=seconds,
                )
            except _Retry:
                if attempt > 1:
                    raise ServerDisconnected(
                        "the server closed a fresh connection without an answer"
                    ) from None
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close every connection; the client stays usable (new connections are opened on demand)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()


def _encode(method: str, url: URL, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request head (and body) as bytes; header names and values are checked, never echoed."""
    if method not in _METHODS_SEEN:
        if not method.isascii() or not method.isalpha() or not method.isupper():
            raise InvalidRequest(f"not an HTTP method: {method[:20]!r}")
        _METHODS_SEEN.add(method)
    parts = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"]
    encoding = False
    for name, value in headers.items():
        if name not in _NAMES_SEEN:
            _check_name(name)
        elif len(name) == 15:
            encoding = encoding or name.lower() == "accept-encoding"
        parts.append(f"{name}: {value}\r\n")
    if not encoding:
        parts.append(_ACCEPT_ENCODING)
    if body is not None:
        parts.append(f"Content-Length: {len(body)}\r\n")
    elif method in _WITH_BODY:
        parts.append("Content-Length: 0\r\n")
    parts.append("\r\n")
    head = "".join(parts)
    # every line break in the head is one we wrote (one per part, two in the first): a value with
    # CR, LF or NUL in it would smuggle a header or a second request (yarl percent-encodes the target)
    lines = len(parts) + 1
    if head.count("\n") != lines or head.count("\r") != lines or "\x00" in head:
        raise InvalidRequest(_culprit(headers))
    data = head.encode("utf-8")
    return data + body if body is not None else data


_METHODS_SEEN: set[str] = set()
_NAMES_SEEN: set[str] = set()
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _check_name(name: str) -> None:
    if not name or not _TOKEN.issuperset(name):
        raise InvalidRequest(f"not a valid header name: {name[:40]!r}")
    if name.lower() in _OURS:
        raise InvalidRequest(f"header {name!r} is set by the HTTP client, not by the caller")
    if len(_NAMES_SEEN) < 256:
        _NAMES_SEEN.add(name)


def _culprit(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        if any(ch in value for ch in _FORBIDDEN):
            return f"the value of header {name!r} contains CR, LF or NUL"
    return "the request head contains CR, LF or NUL"
