"""What every tracker emulator shares: fault injection, request accounting, asynchronous webhook
delivery (a lean keep-alive HTTP/1.1 client for ``http://`` receivers), the start/stop lifecycle of
the aiohttp site, the common ``/_emulator`` control routes and the foreground loop behind
``tandem emulate``.

Each tracker's emulator subclasses these and adds only what its tracker does differently (its rate
limit rules, its webhook headers, its state). Nothing here knows a tracker's REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

import aiohttp
import click
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from yarl import URL

log = logging.getLogger(__name__)

Item = TypeVar("Item")

# ---------------------------------------------------------------------------------------------------
# Faults and stats (driven by ``POST /_emulator/faults``, read by ``GET /_emulator/stats``)


class FaultSpecError(ValueError):
    pass


def spec_number(spec: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    """``spec[key]`` (or ``default``) as a number in ``[lo, hi]``; a clear error otherwise."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise FaultSpecError(f"'{key}' must be a number between {lo} and {hi}")
    return float(value)


@dataclass
class BaseFaults:
    """Injected errors and latency for API requests. A subclass adds its tracker's rate limits by
    naming the extra spec keys in ``EXTRA_KEYS`` and overriding :meth:`_read_spec` / :meth:`_extra_dict`."""

    EXTRA_KEYS: ClassVar[frozenset[str]] = frozenset()

    error_rate: float = 0.0  # probability of answering ``status`` instead of serving
    status: int = 503
    latency_ms: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> Self:
        if not isinstance(spec, dict):
            raise FaultSpecError("the fault spec must be a JSON object")
        unknown = set(spec) - {"error_rate", "status", "latency_ms", "seed"} - cls.EXTRA_KEYS
        if unknown:
            raise FaultSpecError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        faults = cls(
            error_rate=spec_number(spec, "error_rate", 0.0, 0.0, 1.0),
            status=int(spec_number(spec, "status", 503, 400, 599)),
            latency_ms=spec_number(spec, "latency_ms", 0.0, 0.0, 60000.0),
        )
        seed = spec.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise FaultSpecError("'seed' must be an integer")
            faults.seed = seed
            faults._rng.seed(seed)
        faults._read_spec(spec)
        return faults

    def _read_spec(self, spec: dict[str, Any]) -> None:
        """Read the tracker-specific keys of an already checked spec."""

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            **self._extra_dict(),
            "seed": self.seed,
        }

    def should_fail(self) -> bool:
        return self.error_rate > 0 and self._rng.random() < self.error_rate


@dataclass
class BaseStats:
    total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    injected_errors: int = 0
    rate_limited: int = 0

    def count(self, route: str) -> None:
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1

    def status(self, code: int) -> None:
        key = str(code)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "routes": dict(sorted(self.by_route.items())),
            "statuses": dict(sorted(self.by_status.items())),
            "injectedErrors": self.injected_errors,
            "rateLimited": self.rate_limited,
        }


# ---------------------------------------------------------------------------------------------------
# Webhook delivery


@dataclass
class BaseDeliveryStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "lastError": self.last_error,
        }


class DeliveryError(Exception):
    """A delivery without a usable answer, or answered with 300 or more (then ``status`` is set)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StaleConnection(DeliveryError):
    """The connection closed before any byte of the answer came back."""


_MAX_HEAD = 64 * 1024  # status line and headers of one answer
_MAX_LINE = 4096  # a chunk-size or trailer line
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_OWN_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_DEFAULT_UA = f"User-Agent: {SERVER_SOFTWARE}\r\n".encode()
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 header field name
_checked_names: set[str] = set()  # header names already found valid (a handful in practice)

# where the answer's parser is
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _IDLE = range(8)


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, int]  # (host, port) to connect to
    head: bytes  # b"POST /path?query HTTP/1.1\r\nHost: host:port\r\n"


def _target(url: str) -> _Target | None:
    """How the lean client reaches a plain ``http://`` URL; ``None`` for what it leaves to aiohttp
    (https, credentials in the URL, anything it cannot parse)."""
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError):
        return None
    host = parsed.raw_host
    if parsed.scheme != "http" or not host or port is None or parsed.raw_user is not None:
        return None
    shown = f"[{host}]" if ":" in host else host
    if parsed.explicit_port is not None and port != 80:
        shown = f"{shown}:{port}"
    head = f"POST {parsed.raw_path_qs or '/'} HTTP/1.1\r\nHost: {shown}\r\n"
    if not head.isascii() or head.count("\r\n") != 2 or head.count(" ") != 3 or "\n\r" in head:
        return None
    return _Target((host, port), head.encode("ascii"))


def _header_block(headers: dict[str, str]) -> bytes:
    """The caller's headers as request lines (framing headers are the client's own), with a
    Content-Type and a User-Agent when the caller set none."""
    lines: list[str] = []
    has_type = has_agent = False
    for name, value in headers.items():
        low = name.lower()
        if low in _OWN_HEADERS:
            continue
        if name not in _checked_names:
            if not _TOKEN.fullmatch(name):
                raise DeliveryError(f"invalid header name {name!r}")
            if len(_checked_names) < 256:
                _checked_names.add(name)
        if "\r" in value or "\n" in value or "\0" in value:
            raise DeliveryError(f"invalid value for header {name!r}")
        has_type = has_type or low == "content-type"
        has_agent = has_agent or low == "user-agent"
        lines.append(f"{name}: {value}\r\n")
    block = "".join(lines).encode()
    if not has_type:
        block += b"Content-Type: application/json\r\n"
    if not has_agent:
        block += _DEFAULT_UA
    return block


class _Connection(asyncio.Protocol):
    """One kept-alive connection to a receiver: :meth:`send` writes a whole request and returns the
    answer's status once the answer was read in full (by Content-Length, chunked, or up to the close)
    and whether the connection may carry the next request."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bool]] | None = None
        self._state = _IDLE
        self._status = 0
        self._keep = True
        self._remaining = 0
        self._answered = False  # a byte of the current answer came back
        self.closed = False
        self.answers = 0  # answers read in full on this connection

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._state == _IDLE:  # talking out of turn: do not trust it with the next request
            self.close()
            return
        self._answered = True
        self._buf += data
        try:
            self._parse()
        except DeliveryError as err:
            self._fail(err)

    def eof_received(self) -> bool | None:
        self._lost()
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost()

    # -- the client's side

    async def send(self, request: bytes, deadline: float, late: str) -> tuple[int, bool]:
        """Write ``request``; the answer's status and whether the connection may be reused. Past
        ``deadline`` (loop time) the delivery fails with ``late`` and the connection is closed."""
        if self.closed or self._transport is None:
            raise StaleConnection("the connection is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bool]] = loop.create_future()
        self._waiter = waiter
        self._state, self._keep, self._answered = _HEAD, True, False
        self._buf.clear()
        # a plain timer rather than asyncio.timeout(): cheaper, and the failure names the problem
        timer = loop.call_at(deadline, self._expire, late)
        self._transport.write(request)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- reading the answer

    def _lost(self) -> None:
        self.closed = True
        if self._state == _UNTIL_CLOSE:
            self._complete()
        elif self._state != _IDLE:
            if self._answered:
                self._fail(DeliveryError("the receiver closed the connection in the middle of its answer"))
            else:
                self._fail(StaleConnection("the receiver closed the connection without answering"))

    def _expire(self, message: str) -> None:
        if self._waiter is not None and not self._waiter.done():  # not when the answer just came in
            self._fail(DeliveryError(message))

    def _fail(self, err: DeliveryError) -> None:
        self._state = _IDLE
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(err)

    def _complete(self) -> None:
        self._state = _IDLE
        self.answers += 1
        if self._buf:  # more than the answer: the stream cannot be trusted any more
            self._keep = False
            self._buf.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((self._status, self._keep and not self.closed))

    def _parse(self) -> None:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", 0, _MAX_HEAD + 4)
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise DeliveryError("the receiver's answer headers exceed 64 KiB")
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._read_head(head)
            elif state == _LENGTH or state == _CHUNK_DATA:
                taken = min(self._remaining, len(buf))
                del buf[:taken]
                self._remaining -= taken
                if self._remaining:
                    return
                if state == _LENGTH:
                    self._complete()
                    return
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise DeliveryError("the receiver's chunked answer is malformed (no CRLF after a chunk)")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _CHUNK_SIZE or state == _TRAILERS:
                end = buf.find(b"\r\n", 0, _MAX_LINE)
                if end < 0:
                    if len(buf) >= _MAX_LINE:
                        raise DeliveryError("the receiver's chunked answer has an over-long line")
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _TRAILERS:
                    if not line:
                        self._complete()
                        return
                    continue
                size = line.split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size):
                    raise DeliveryError(f"the receiver's chunked answer has a bad chunk size {line[:40]!r}")
                self._remaining = int(size, 16)
                self._state = _CHUNK_DATA if self._remaining else _TRAILERS
            elif state == _UNTIL_CLOSE:
                buf.clear()
                return
            else:
                return

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise DeliveryError(f"the receiver did not answer in HTTP/1.x: {lines[0][:60]!r}")
        status = int(match[2])
        keep = match[1] == b"1"
        length: int | None = None
        chunked = encoded = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise DeliveryError(f"the receiver's answer has a malformed header line {line[:60]!r}")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit() or len(value) > 15 or (length is not None and length != int(value)):
                    raise DeliveryError(f"the receiver's answer has a bad Content-Length {value[:30]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                encoded = True
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif name == b"connection":
                tokens = {t.strip() for t in value.lower().split(b",")}
                if b"close" in tokens:
                    keep = False
                elif b"keep-alive" in tokens:
                    keep = True
        if 100 <= status < 200:
            if status == 101:
                raise DeliveryError("the receiver answered 101 Switching Protocols")
            return  # an interim answer: the real one follows
        self._status = status
        self._keep = self._keep and keep
        if status in (204, 304):
            self._complete()
        elif chunked:
            self._state = _CHUNK_SIZE
        elif encoded or length is None:  # the body ends when the receiver closes
            self._keep = False
            self._state = _UNTIL_CLOSE
        elif length:
            self._remaining = length
            self._state = _LENGTH
        else:
            self._complete()


Stats_co = TypeVar("Stats_co", bound=BaseDeliveryStats)


class DeliveryQueue(Generic[Item, Stats_co]):
    """A bounded queue and a few workers that POST each item.

    The API never waits for a receiver: :meth:`put_lazy` drops (and counts) an item when the queue
    is full, and each POST has a timeout, so a slow or dead receiver costs only its own deliveries.
    A subclass says what to send (:meth:`request`) and may record the outcome (:meth:`finished`).

    ``http://`` receivers get a lean HTTP/1.1 client: each worker keeps one connection per
    (host, port) alive across deliveries and writes each request as one buffer; it reconnects when
    the receiver closed the connection (``Connection: close``, an error, a timeout). A request that
    a kept-alive connection closed on before any byte of an answer is sent once more on a fresh
    connection (the receiver closed an idle connection as it was reused). Other URLs (https) go
    through aiohttp.
    """

    task_name: ClassVar[str] = "emu-webhook"

    def __init__(self, stats: Stats_co, *, max_queue: int, workers: int, timeout: float) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_queue)
        self._workers = workers
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None  # only for URLs the lean client leaves
        self._targets: dict[str, _Target | None] = {}
        self._late = f"no answer within {timeout:g} s"
        self.stats = stats

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.task_name}-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def put(self, item: Item) -> bool:
        """Queue ``item``, or count a drop when the queue is full."""
        return self.put_lazy(lambda: item)

    def put_lazy(self, build: Callable[[], Item]) -> bool:
        """Queue the item ``build`` returns, or count a drop (without calling ``build``) when the queue
        is full: a sender passes what renders its payload, which costs far more than a drop."""
        if self._queue.full():
            self.stats.dropped += 1
            return False
        self._queue.put_nowait(build())
        self.stats.queued += 1
        return True

    async def drain(self, wait: float = 10.0) -> None:
        """Wait until every item queued so far was attempted (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), wait)

    def request(self, item: Item) -> tuple[str, bytes, dict[str, str]]:
        """``(url, body, headers)`` to POST for ``item``."""
        raise NotImplementedError

    def finished(self, item: Item, status: int | None, error: BaseException | None) -> None:
        """Called once per attempt: the receiver's status (``None`` without an answer) and the
        error when the delivery failed (also for a status of 300 or more)."""

    async def _worker(self) -> None:
        conns: dict[tuple[str, int], _Connection] = {}  # this worker's kept-alive connections
        try:
            while True:
                item = await self._queue.get()
                try:
                    await self._post(item, conns)
                finally:
                    self._queue.task_done()
        finally:
            for conn in conns.values():
                conn.close()

    async def _post(self, item: Item, conns: dict[tuple[str, int], _Connection]) -> None:
        url, body, headers = self.request(item)
        status: int | None = None
        try:
            target = self._targets.get(url, False)
            if target is False:
                if len(self._targets) >= 1024:
                    self._targets.clear()
                target = self._targets[url] = _target(url)
            if target is None:
                answered = await self._post_aiohttp(url, body, headers)
            else:
                assert isinstance(target, _Target)
                request = b"".join(
                    (target.head, _header_block(headers), b"Content-Length: %d\r\n\r\n" % len(body), body)
                )
                answered = await self._exchange(target, request, conns)
            if answered >= 300:
                raise DeliveryError(f"receiver answered {answered}", answered)
            status = answered
            self.stats.delivered += 1
            self.finished(item, status, None)
        except (DeliveryError, aiohttp.ClientError, TimeoutError, OSError) as err:
            # Real trackers retry a few times (GitHub does not); the emulator records the failure.
            status = err.status if isinstance(err, DeliveryError) else None
            self.stats.failed += 1
            self.stats.last_error = f"{url}: {err!r}"
            log.info("webhook delivery to %s failed: %r", url, err)
            self.finished(item, status, err)

    async def _exchange(
        self, target: _Target, request: bytes, conns: dict[tuple[str, int], _Connection]
    ) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        kept = conns.get(target.key)
        if kept is not None and not kept.closed:
            try:
                return await self._send(target, request, conns, kept, deadline)
            except StaleConnection:
                if not kept.answers:
                    raise
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, *target.key), max(0.0, deadline - loop.time())
            )
        except TimeoutError:
            raise DeliveryError(f"no connection within {self._timeout:g} s") from None
        conns[target.key] = conn
        return await self._send(target, request, conns, conn, deadline)

    async def _send(
        self,
        target: _Target,
        request: bytes,
        conns: dict[tuple[str, int], _Connection],
        conn: _Connection,
        deadline: float,
    ) -> int:
        try:
            status, keep = await conn.send(request, deadline, self._late)
        except BaseException:  # an error, the timeout, or stop(): the stream is out of step
            conn.close()
            conns.pop(target.key, None)
            raise
        if not keep:
            conn.close()
            conns.pop(target.key, None)
        return status

    async def _post_aiohttp(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        async with self._session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status


# ---------------------------------------------------------------------------------------------------
# The application and its lifecycle


class EmulatorApp:
    """State every emulator app keeps (faults, stats, webhook queue, its own URL) and the control
    routes whose JSON is the same for every tracker."""

    faults: BaseFaults
    stats: BaseStats
    dispatcher: DeliveryQueue[Any, Any]
    base_url: str

    def build(self) -> web.Application:
        raise NotImplementedError

    async def ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats.as_dict(), "webhooks": self.dispatcher.stats.as_dict()})

    async def ctl_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def ctl_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(self.dispatcher.stats.as_dict())


class Emulator:
    """Start an emulator app on a local port, deliver its webhooks, stop cleanly.

    Subclasses set :attr:`app` and may hook :meth:`_started` / :meth:`_stopping` / :meth:`_stopped`.
    """

    app: EmulatorApp
    base_url: str | None = None
    _runner: web.AppRunner | None = None

    def _describe(self) -> str:
        return type(self).__name__

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.app.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)
        assert sockets, "the site did not bind a socket"
        bound = sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"
        self.app.base_url = self.base_url
        await self.app.dispatcher.start()
        self._started()
        log.info("%s listening on %s", self._describe(), self.base_url)
        return self.base_url

    async def stop(self) -> None:
        await self._stopping()
        await self.app.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._stopped()

    def _started(self) -> None:
        """After the site listens and webhook delivery runs."""

    async def _stopping(self) -> None:
        """Before webhook delivery and the site stop."""

    def _stopped(self) -> None:
        """After the site stopped."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_foreground(
    emu: Emulator,
    host: str,
    port: int,
    *,
    ready: Callable[[str], str],
    stopped: str = "Emulator stopped",
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Start ``emu``, print the line ``ready(base_url)`` once listening, serve until SIGINT/SIGTERM
    (or ``stop``), stop it and print ``stopped``. A port that cannot be bound is a clear
    :class:`click.ClickException`, not a traceback."""
    try:
        base = await emu.start(host=host, port=port)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not on Windows' loops, nor outside the main thread
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    click.echo(ready(base))
    sys.stdout.flush()
    if on_ready is not None:
        on_ready(base)
    try:
        await stop.wait()
    finally:
        await emu.stop()
        click.echo(stopped)
