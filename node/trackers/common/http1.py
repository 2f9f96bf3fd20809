"""A lean HTTP/1.1 client for the nodes' plain tracker REST calls: one keep-alive connection pool per
origin, one request at a time per connection, the answer parsed by httptools (llhttp).

Why it exists: aiohttp's client costs 87-101 µs of CPU per request, this one about a third of that
(33 µs), and a node makes several tracker calls per synced issue. aiohttp stays for what needs more (multipart
uploads, redirect-following downloads: :mod:`node.trackers.common.rest`).

What it does:

* ``http`` and ``https`` (certificate and host name verified unless built with ``verify=False``, or
  with the caller's own :class:`ssl.SSLContext`); several addresses of one name are raced as
  aiohttp does (happy eyeballs, 0.25 s apart);
* bodies framed by ``Content-Length``, chunked, or the end of the connection; ``1xx`` interim answers
  skipped; no body after ``204`` or ``304``; ``Connection: close`` (and HTTP/1.0) honoured;
  ``gzip``/``deflate`` bodies decoded (a truncated or damaged stream is refused); trailer fields
  dropped, never merged into the headers;
* every answer bounded: the head (and trailers) to 64 KiB and 128 fields, the body to ``max_body``
  after decoding; an error answer's body (status 400 or more) can be cut at ``max_error_body``
  instead, and its connection is then dropped;
* one deadline per request covering the wait for a connection, connecting, sending and the answer;
* the pool is fair: a request waits behind those already waiting, and a connection given back goes
  straight to the first of them;
* a connection is reused only when the whole request was written before its answer ended: a server
  that answers early (401, 413) while our body is still being sent would read the rest of that body
  as the next request;
* a request is sent again, once, on a fresh connection only when the server cannot have acted on it:
  the reused connection was known dead before we wrote, or it died without a byte of answer and the
  method is idempotent. A non-idempotent request (POST, PATCH) once written is never sent again
  here: it raises :class:`ServerDisconnected` (as aiohttp does), the caller's retry policy decides,
  and its intents and markers prevent a duplicate.

Errors, by whose fault::

    HttpClientError            a transport problem; worth a retry later
    ├── ConnectError           cannot connect: refused, unknown host, TLS handshake or certificate
    ├── ServerDisconnected     the connection ended before the answer was complete
    ├── BadResponse            the answer is not HTTP/1.1, or larger than allowed
    ├── RequestTimeout         (also a TimeoutError) no complete answer before the deadline
    └── ClientClosed           the client was closed while the request waited or ran
    InvalidRequest             (a ValueError) our request cannot be sent: CR/LF in a header, bad URL,
                               credentials in the URL

Never logs, and never puts headers, bodies, a URL's query or its userinfo into a message (they may
carry tokens).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import aiohappyeyeballs
import httptools
from multidict import CIMultiDict
from yarl import URL

DEFAULT_MAX_BODY: Final = 128 * 1024 * 1024
MAX_HEAD: Final = 64 * 1024  # bytes of an answer's head (with interim answers), or of its trailers
MAX_FIELDS: Final = 128  # header fields of one answer, trailers included
KEEPALIVE_SECONDS: Final = 15.0  # an idle connection older than this is closed, not reused (as aiohttp)
HAPPY_EYEBALLS_DELAY: Final = 0.25  # as aiohttp
CONNECT_SECONDS: Final = 10.0  # connecting (and the TLS handshake) at most, within the request's deadline
WRITE_PIECE: Final = 64 * 1024  # a larger request is written piece by piece, as the transport drains
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


class ClientClosed(HttpClientError):
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


class _Refused(Exception):
    """Raised in a parser callback: the answer breaks a limit (the message says which)."""


class _Enough(Exception):
    """Raised in a parser callback: the error body was cut at its limit and delivered."""


class _Connection(asyncio.Protocol):
    """One connection; a request at a time. Parser callbacks fill the answer of the current request."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._max_body = pool.client.max_body
        self._max_error_body: int | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._fields = 0  # header and trailer fields of the current request (of its interim answers too)
        self._head_size = 0  # their bytes
        self._chunks: list[bytes] = []
        self._size = 0
        self._stalled = 0  # bytes received since the last body byte (head, trailers, framing)
        self._cut = False  # this answer's body is cut at _max_error_body, not refused beyond it
        self._truncated = False
        self._headers_done = False
        self._answered = False  # a byte of the current answer arrived
        self._write_paused = False  # the transport's write buffer is over its high-water mark
        self._unwritten: memoryview | None = None  # the rest of a large request, not yet written
        self._reusable = True
        self.closed = False
        self.used = 0  # requests sent on this connection so far
        self.idle_since = 0.0

    # ------------------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._unwritten is not None:
            self._write_more()

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the stream is out of step
            self.close()
            return
        self._answered = True
        size = self._size
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BadResponse("the server switched protocols without being asked"))
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._fail(BadResponse(str(cause)))
            elif not isinstance(cause, _Enough):  # _Enough: delivered, the connection dropped
                self._fail(BadResponse(f"malformed HTTP answer ({exc})"))
            return
        if self._size != size or waiter.done():
            self._stalled = 0
            return
        # no body byte in this read: a head, interim answers, trailers or framing; bound them, or an
        # endless header (llhttp keeps a partial value whole) would grow until the deadline
        self._stalled += len(data)
        if self._stalled > MAX_HEAD:
            what = "trailers" if self._headers_done else "headers"
            self._fail(BadResponse(f"answer {what} larger than {MAX_HEAD} bytes"))

    def eof_received(self) -> bool | None:
        self._ended()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # ------------------------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            raise _Refused("an answer came that no request asked for")
        self._status = 0
        self._headers = []
        self._chunks = []
        self._size = 0
        self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._head_size += len(name) + len(value)
        if self._fields > MAX_FIELDS:
            raise _Refused(f"answer with more than {MAX_FIELDS} header fields")
        if self._head_size > MAX_HEAD:
            raise _Refused(
                f"answer {'trailers' if self._headers_done else 'headers'} larger than {MAX_HEAD} bytes"
            )
        if not self._headers_done:  # after the head: a trailer field, dropped (never a header)
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = status = self._parser.get_status_code()
        self._headers_done = True
        self._cut = status >= 400 and self._max_error_body is not None

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._cut:
            limit = cast(int, self._max_error_body)
            if self._size > limit:  # enough of an error page: keep the start, drop the connection
                self._chunks.append(body[: len(body) - (self._size - limit)])
                self._truncated = True
                self._reusable = False
                self._deliver()
                raise _Enough
        elif self._size > self._max_body:
            raise _Refused(f"answer body larger than {self._max_body} bytes")
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
        idempotent: bool,
        max_error_body: int | None,
        deadline: float,
        seconds: float,
    ) -> Response:
        transport = self._transport
        if transport is None or self.closed or transport.is_closing():
            raise _Retry  # known dead before we wrote: nothing reached the server
        loop = self._pool.loop
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self._max_error_body = max_error_body
        self._answered = False
        self._headers_done = False
        self._truncated = False
        self._stalled = 0
        self._fields = 0
        self._head_size = 0
        self.used += 1
        reused = self.used > 1
        if len(data) <= WRITE_PIECE:
            transport.write(data)
        else:
            # piece by piece, so that an answer arriving before the last byte left is seen as early
            # even under TLS (its transport takes everything at once and hides the socket's buffer)
            self._unwritten = memoryview(data)
            self._write_more()
        timer = loop.call_at(deadline, self._timed_out, seconds)
        try:
            return await waiter
        except ServerDisconnected:
            # written, no byte of answer: the server may still have acted (it read the request and
            # died, or closed an idle connection as we wrote); only an idempotent method may go again
            if reused and idempotent and not self._answered:
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
            self._unwritten = None
            if self._transport is not None:
                self._transport.close()
            self._pool.forget(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.close()

    # ------------------------------------------------------------------------------- internals

    def _write_more(self) -> None:
        transport = self._transport
        rest = self._unwritten
        while rest is not None and not self._write_paused:
            if transport is None or transport.is_closing():
                rest = None
                break
            transport.write(rest[:WRITE_PIECE])
            rest = rest[WRITE_PIECE:] if len(rest) > WRITE_PIECE else None
        self._unwritten = rest

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
        transport = self._transport
        # answered before the request was all written (an early 401/413): the server would read the
        # rest of our body as the next request. Under TLS the buffer seen here is the TLS layer's (the
        # socket's stays hidden); a large body still unwritten or paused shows (see send)
        unsent = (
            self._unwritten is not None
            or self._write_paused
            or (transport is not None and transport.get_write_buffer_size() > 0)
        )
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
            for name, value in self._headers
        )
        body = b"".join(self._chunks)
        self._chunks = []
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if body and encoding in ("gzip", "deflate", "x-gzip"):
            limit = cast(int, self._max_error_body) if self._cut else self._max_body
            try:
                body = _decompress(body, encoding, limit, cut=self._cut, whole=not self._truncated)
            except (zlib.error, _Refused) as exc:
                self._reusable = False
                why = f"larger than {limit} bytes" if isinstance(exc, _Refused) else str(exc)
                waiter.set_exception(BadResponse(f"cannot decode the {encoding} answer body: {why}"))
                self.abort()
                return
        waiter.set_result(Response(self._status, headers, body))
        if unsent:
            self._unwritten = None
            self.abort()  # no use sending the rest of a body the server has answered
        elif not self._reusable:
            self.close()


def _decompress(body: bytes, encoding: str, limit: int, *, cut: bool, whole: bool) -> bytes:
    """``body`` decoded, at most ``limit`` bytes (beyond: :class:`_Refused`, or cut when ``cut``).
    ``whole``: the body is complete, so a truncated stream or bytes after its end are a ``zlib.error``;
    a gzip body may be several members (RFC 1952)."""
    if encoding == "deflate":
        # a zlib wrapper (RFC 1950: method 8, header checksum) or, as some servers send, raw deflate
        zlib_header = len(body) > 1 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS | 16
    out: list[bytes] = []
    room = limit
    data = body
    while True:
        inflater = zlib.decompressobj(wbits)
        piece = inflater.decompress(data, room + 1)
        if len(piece) > room:
            if not cut:
                raise _Refused
            out.append(piece[:room])
            break
        out.append(piece)
        room -= len(piece)
        if not inflater.eof:
            if whole:
                raise zlib.error("the stream is truncated")
            break
        data = inflater.unused_data
        if not data:
            break
        if wbits & 16 and data[:2] == b"\x1f\x8b":  # another gzip member
            continue
        if whole:
            raise zlib.error("bytes after the end of the stream")
        break
    return b"".join(out)


class _Waiter(asyncio.Future[_Connection]):
    """A request queued for a connection. It leaves the queue the moment it ends, so the queue holds
    only live waiters: handed a connection (the pool takes it out first), timed out (:meth:`expire`)
    or cancelled (:meth:`cancel`: a done callback would run a turn later, and a connection given back
    in between would go to a waiter that has left)."""

    def __init__(self, queue: deque[_Waiter], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._queue = queue
        queue.append(self)

    def cancel(self, msg: Any | None = None) -> bool:
        if not self.done():
            self._queue.remove(self)
        return super().cancel(msg)

    def expire(self) -> None:
        if not self.done():
            self._queue.remove(self)
            self.set_exception(RequestTimeout("no free connection in time (all in use)"))


class _Pool:
    """The connections to one origin: at most ``limit`` open, idle ones reused newest first, waiting
    requests served first come first served. Invariant: while a request waits, no connection is idle
    and no slot is free (a connection given back goes to the first waiter, a freed slot too)."""

    def __init__(self, client: Http1Client, scheme: str, host: str, port: int) -> None:
        self.client = client
        self.loop = client.loop
        self.scheme, self.host, self.port = scheme, host, port
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()
        # each waiter is handed a connection: a live one given back, or a new one still to connect
        self.waiters: deque[_Waiter] = deque()
        self.closed = False

    def forget(self, conn: _Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            if conn in self.idle:
                self.idle.remove(conn)
            if self.waiters:
                self._hand_slots()

    def release(self, conn: _Connection) -> None:
        if not conn.reusable:
            conn.close()  # forget() hands the slot on
            return
        conn.idle_since = self.loop.time()
        if self.waiters:
            self.waiters.popleft().set_result(conn)
        else:
            self.idle.append(conn)

    def _hand_slots(self) -> None:
        """Idle connections, then free slots (as new connections to connect) to the first waiters."""
        while self.waiters:
            conn = self._take_idle()
            if conn is None:
                if len(self.open) >= self.client.limit:
                    return
                conn = _Connection(self)
                self.open.add(conn)
            self.waiters.popleft().set_result(conn)

    def _give_back(self, conn: _Connection) -> None:
        """A connection handed to a waiter that left (cancelled) before using it."""
        if conn._transport is None:  # a slot, not connected yet
            conn.closed = True
            self.forget(conn)
        else:
            self.release(conn)

    def _take_idle(self) -> _Connection | None:
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and now - conn.idle_since < KEEPALIVE_SECONDS:
                return conn
            conn.close()
        return None

    async def acquire(self, deadline: float, *, fresh: bool) -> _Connection:
        if self.closed:
            raise ClientClosed("the HTTP client was closed")
        if not self.waiters:  # nobody queued before us
            if not fresh:
                conn = self._take_idle()
                if conn is not None:
                    return conn
            elif len(self.open) >= self.client.limit and self.idle:
                self.idle[0].close()  # make room for the fresh one: drop the oldest idle connection
            if len(self.open) < self.client.limit:
                conn = _Connection(self)
                self.open.add(conn)
                return await self._connect(conn, deadline)
        # others wait, so no connection is idle and no slot free (the invariant): queue behind them
        fut = _Waiter(self.waiters, self.loop)
        timer = self.loop.call_at(deadline, fut.expire)  # cheaper than asyncio.timeout_at
        try:
            conn = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._give_back(fut.result())  # handed a connection but leaving: pass it on
            raise
        finally:
            timer.cancel()
        return conn if conn._transport is not None else await self._connect(conn, deadline)

    async def _connect(self, conn: _Connection, deadline: float) -> _Connection:
        """Connect ``conn`` (already counted in ``open``); on failure its slot is given back."""
        where = f"{self.host}:{self.port}"
        ctx = self.client.ssl_context() if self.scheme == "https" else None
        hostname = self.host if ctx else None
        loop = self.loop
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + CONNECT_SECONDS)):
                # race the addresses of a name (uvloop's create_connection cannot); an IP literal is one
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
                )
                try:
                    await loop.create_connection(lambda: conn, sock=sock, ssl=ctx, server_hostname=hostname)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise RequestTimeout(f"timed out connecting to {where}") from None
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"the TLS certificate of {where} is not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
        except (OSError, RuntimeError) as exc:  # uvloop may raise RuntimeError
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConnectError(f"cannot connect to {where}: {reason}") from None
        finally:
            if conn._transport is None:  # not connected: give the slot back
                conn.closed = True
                self.forget(conn)
        if conn.closed:  # the client was closed while we connected
            if conn._transport is not None:
                conn._transport.abort()
            raise ClientClosed("the HTTP client was closed")
        return conn

    def close(self) -> None:
        """Fail the waiting requests and those under way, close every connection."""
        self.closed = True
        while self.waiters:
            self.waiters.popleft().set_exception(ClientClosed("the HTTP client was closed"))
        for conn in list(self.open):
            conn._fail(ClientClosed("the HTTP client was closed"))


class Http1Client:
    """A pool of keep-alive HTTP/1.1 connections (``limit`` per origin) for requests read in full."""

    def __init__(
        self,
        *,
        limit: int = 10,
        timeout: float = 60.0,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.timeout = timeout
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
        max_error_body: int | None = None,
    ) -> Response:
        """Send one request and read its answer in full. Raises :class:`HttpClientError` subclasses
        for transport problems and :class:`InvalidRequest` for a request that cannot be sent.
        ``max_error_body``: an answer with a status of 400 or more has its body cut there (and its
        connection dropped) rather than refused beyond ``max_body``. ``HEAD`` is refused (no caller
        needs it, and an answer without the body its head announces would need its own framing)."""
        if method == "HEAD":
            raise InvalidRequest("HEAD is not supported by this client")
        try:
            target = url if isinstance(url, URL) else URL(url)
            if params:
                target = target.extend_query(params)
        except ValueError as exc:  # bad port, bad IPv6 literal, ...: yarl's reason names no token
            raise InvalidRequest(f"not a valid URL ({exc})") from None
        scheme = target.scheme
        host = target.raw_host
        if scheme not in ("http", "https") or not host:
            raise InvalidRequest(f"not an absolute http(s) URL: {_shown(target)!r}")
        if target.raw_user is not None or target.raw_password is not None:
            raise InvalidRequest(
                f"credentials in the URL are not sent (put them in a header): {_shown(target)!r}"
            )
        port = target.port or (443 if scheme == "https" else 80)
        data = _encode(method, target, headers or {}, body)
        loop = self.loop
        seconds = self.timeout
        deadline = loop.time() + seconds
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, scheme, host, port)
        idempotent = method in IDEMPOTENT
        for attempt in (1, 2):
            conn = await pool.acquire(deadline, fresh=attempt > 1)
            try:
                return await conn.send(
                    data,
                    idempotent=idempotent,
                    max_error_body=max_error_body,
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
        """Close every connection and fail the requests waiting or under way (:class:`ClientClosed`);
        the client stays usable (new requests open new connections)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()


def _shown(url: URL) -> str:
    """``url`` fit for a message: no userinfo, no query, no fragment (they may carry tokens)."""
    if url.absolute:
        url = url.with_user(None)
    return str(url.with_query(None).with_fragment(None))


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
        if len(name) == 15 and not encoding:
            encoding = name.lower() == "accept-encoding"
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
