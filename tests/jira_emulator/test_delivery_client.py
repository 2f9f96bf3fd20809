"""The emulators' webhook delivery client (``DeliveryQueue``, here through Jira's dispatcher) against
real sockets on 127.0.0.1: exact requests at an aiohttp receiver, kept-alive connections, and
receivers that close, chunk, fail, stall, stop mid-answer or talk nonsense."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from node.trackers.jira.emulator.webhooks import WebhookDispatcher
from tests.helpers.http import serve

WAIT = 5.0  # bound on every wait in this file


class Recorder(WebhookDispatcher):
    """Jira's dispatcher, also keeping each ``finished`` call."""

    def __init__(self, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.outcomes: list[tuple[bytes, int | None, str | None]] = []

    def finished(self, item: tuple[str, bytes], status: int | None, error: BaseException | None) -> None:
        super().finished(item, status, error)
        self.outcomes.append((item[1], status, None if error is None else str(error)))


@contextlib.asynccontextmanager
async def dispatcher(workers: int = 1, limit: float = 5.0) -> AsyncIterator[Recorder]:
    d = Recorder(workers=workers, timeout=limit, max_queue=1000)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


# ---------------------------------------------------------------------------------------------------
# A real aiohttp receiver


class AiohttpReceiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.peers: set[tuple[str, int]] = set()  # one client address per connection
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        return web.Response(text="ok")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner, self.url = await serve(app)
        return self.url


@pytest.fixture
async def receiver() -> AsyncIterator[AiohttpReceiver]:
    r = AiohttpReceiver()
    await r.start()
    yield r
    assert r.runner is not None
    await r.runner.cleanup()


async def test_requests_arrive_exactly_in_order_on_one_kept_alive_connection(
    receiver: AiohttpReceiver,
) -> None:
    bodies = [b'{"n": %d, "text": "caf\xc3\xa9 \\u2603"}' % n for n in range(40)] + [b""]
    async with dispatcher(workers=1) as d:
        for body in bodies:
            assert d.enqueue(f"{receiver.url}/hook/PROJ-1?user_id=admin&x=a%20b", body)
        await d.drain(WAIT)
    assert [r[3] for r in receiver.requests] == bodies
    method, path, headers, _ = receiver.requests[0]
    assert method == "POST" and path == "/hook/PROJ-1?user_id=admin&x=a%20b"
    assert headers["Host"] == receiver.url.removeprefix("http://")
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert headers["User-Agent"] == "Atlassian Webhook HTTP Client"
    assert headers["Content-Length"] == str(len(bodies[0]))
    assert receiver.requests[-1][2]["Content-Length"] == "0"
    assert len(receiver.peers) == 1  # keep-alive: every request on the same connection
    stats = d.stats.as_dict()
    assert stats["queued"] == stats["delivered"] == 41 and stats["failed"] == 0 and stats["lastError"] is None
    assert stats["byUrl"] == {f"{receiver.url}/hook/PROJ-1?user_id=admin&x=a%20b": 41}
    assert {o[1] for o in d.outcomes} == {200}


async def test_each_worker_keeps_at_most_one_connection_per_receiver(receiver: AiohttpReceiver) -> None:
    async with dispatcher(workers=3) as d:
        for n in range(60):
            d.enqueue(f"{receiver.url}/h{n % 2}", b"{}")
        await d.drain(WAIT)
    assert d.stats.delivered == 60 and len(receiver.requests) == 60
    assert 1 <= len(receiver.peers) <= 3


# ---------------------------------------------------------------------------------------------------
# Scripted receivers on raw sockets

Answer = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]  # (request number) -> keep reading?


class RawReceiver:
    """Reads HTTP requests (Content-Length bodies) and lets ``answer`` reply to each."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                if not await self.answer(len(self.bodies), writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawReceiver:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), WAIT)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def deliver(rx: RawReceiver, count: int, *, limit: float = 5.0) -> Recorder:
    async with dispatcher(workers=1, limit=limit) as d:
        for n in range(count):
            d.enqueue(rx.url, b'{"n": %d}' % n)
        await d.drain(WAIT)
    return d


async def test_receiver_closing_after_each_answer_costs_a_reconnect_not_a_delivery() -> None:
    async def answer_and_close(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(OK)
        return False  # closes without saying Connection: close

    async with RawReceiver(answer_and_close) as rx:
        d = await deliver(rx, 5)
    assert d.stats.delivered == 5 and d.stats.failed == 0
    assert rx.bodies == [b'{"n": %d}' % n for n in range(5)]  # each once: nothing lost, nothing repeated
    assert rx.connections == 5


async def test_connection_close_header_is_honoured() -> None:
    async def close_header(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await w.drain()
        return True  # the receiver would keep reading: the client must be the one to reconnect

    async with RawReceiver(close_header) as rx:
        d = await deliver(rx, 3)
    assert d.stats.delivered == 3 and rx.connections == 3 and len(rx.bodies) == 3


async def test_chunked_answers_in_pieces_keep_the_connection() -> None:
    async def chunked(n: int, w: asyncio.StreamWriter) -> bool:
        pieces = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n",
            b"5;ext=1\r\nhel",
            b"lo\r\n",
            b"1A\r\n" + b"z" * 26 + b"\r\n",
            b"0\r\nX-Trailer: yes\r\n",
            b"\r\n",
        ]
        for piece in pieces:
            w.write(piece)
            await w.drain()
            await asyncio.sleep(0)  # give each piece its own turn (the client must cope either way)
        return True

    async with RawReceiver(chunked) as rx:
        d = await deliver(rx, 4)
    assert d.stats.delivered == 4 and d.stats.failed == 0
    assert rx.connections == 1 and len(rx.bodies) == 4


async def test_answer_without_length_ends_at_close() -> None:
    async def until_close(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        return False

    async with RawReceiver(until_close) as rx:
        d = await deliver(rx, 2)
    assert d.stats.delivered == 2 and rx.connections == 2


async def test_status_500_is_a_failed_delivery_with_its_status() -> None:
    async def fail_first(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops" if n == 1 else OK)
        return True

    async with RawReceiver(fail_first) as rx:
        d = await deliver(rx, 2)
    assert d.stats.delivered == 1 and d.stats.failed == 1
    assert d.outcomes[0] == (b'{"n": 0}', 500, "receiver answered 500")
    assert d.outcomes[1] == (b'{"n": 1}', 200, None)
    assert d.stats.last_error is not None and rx.url in d.stats.last_error and "500" in d.stats.last_error
    assert d.stats.by_url == {rx.url: 1}  # only successes count per URL
    assert rx.connections == 1  # a complete error answer leaves the connection usable


async def test_receiver_that_never_answers_times_out_and_the_next_delivery_reconnects() -> None:
    async def silent_first(n: int, w: asyncio.StreamWriter) -> bool:
        if n > 1:
            w.write(OK)
        return True

    async with RawReceiver(silent_first) as rx:
        started = asyncio.get_running_loop().time()
        d = await deliver(rx, 2, limit=0.3)
        elapsed = asyncio.get_running_loop().time() - started
    assert d.stats.failed == 1 and d.stats.delivered == 1
    assert d.outcomes[0] == (b'{"n": 0}', None, "no answer within 0.3 s")
    assert d.stats.last_error is not None and "no answer within 0.3 s" in d.stats.last_error
    assert rx.connections == 2  # the late answer's connection is not reused
    assert elapsed < 3.0


async def test_close_in_the_middle_of_the_body_is_a_failure() -> None:
    async def short_body(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part" if n == 1 else OK)
        return n != 1

    async with RawReceiver(short_body) as rx:
        d = await deliver(rx, 2)
    assert d.stats.failed == 1 and d.stats.delivered == 1
    _, status, error = d.outcomes[0]
    assert status is None and error is not None and "middle of its answer" in error
    assert rx.bodies == [b'{"n": 0}', b'{"n": 1}']


async def test_close_without_answer_on_a_fresh_connection_fails_once() -> None:
    async def hang_up(n: int, w: asyncio.StreamWriter) -> bool:
        return False

    async with RawReceiver(hang_up) as rx:
        d = await deliver(rx, 2)
    assert d.stats.failed == 2 and d.stats.delivered == 0
    assert all(o[1] is None and o[2] and "without answering" in o[2] for o in d.outcomes)
    assert len(rx.bodies) == 2  # never sent twice on a fresh connection


async def test_idle_close_racing_the_next_request_is_retried_once_on_a_fresh_connection() -> None:
    async def then_drop(n: int, w: asyncio.StreamWriter) -> bool:
        if n == 1:
            w.write(OK)  # keep-alive answer ...
            return True
        if n == 2:
            return False  # ... then the receiver drops the connection as the next request comes in
        w.write(OK)
        return True

    async with RawReceiver(then_drop) as rx:
        d = await deliver(rx, 2)
    assert d.stats.delivered == 2 and d.stats.failed == 0
    assert rx.bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 1}'] and rx.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["not-http", "bad-length", "bad-header", "bad-chunk", "huge-head"],
)
async def test_nonsense_answers_fail_the_delivery_clearly(answer: bytes) -> None:
    async def nonsense(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(answer if n == 1 else OK)
        await w.drain()
        return True

    async with RawReceiver(nonsense) as rx:
        d = await deliver(rx, 2)
    assert d.stats.failed == 1 and d.stats.delivered == 1
    error = d.outcomes[0][2]
    assert error is not None and error.startswith("the receiver")
    assert rx.connections == 2


async def test_refused_connection_and_https_fallback_are_failures_not_crashes() -> None:
    async def hang_up(n: int, w: asyncio.StreamWriter) -> bool:
        return False

    async with RawReceiver(hang_up) as rx:
        port = rx.url.split(":")[2].split("/")[0]
        async with dispatcher(workers=1, limit=0.5) as d:
            d.enqueue(f"https://127.0.0.1:{port}/hook", b"{}")  # not plain http: the aiohttp path
            await d.drain(WAIT)
        rx.server.close()  # type: ignore[union-attr]
        await asyncio.wait_for(rx.server.wait_closed(), WAIT)  # type: ignore[union-attr]
    async with dispatcher(workers=1, limit=2.0) as d2:
        d2.enqueue(f"http://127.0.0.1:{port}/hook", b"{}")  # nobody listens any more
        await d2.drain(WAIT)
    assert d.stats.failed == 1 and d.stats.last_error and "https://" in d.stats.last_error
    assert d2.stats.failed == 1 and d2.outcomes[0][1] is None


async def test_bad_header_from_the_caller_fails_that_delivery_only(receiver: AiohttpReceiver) -> None:
    class Injecting(Recorder):
        def request(self, item: tuple[str, bytes]) -> tuple[str, bytes, dict[str, str]]:
            url, body, headers = super().request(item)
            if body == b"bad":
                headers["X-Evil"] = "1\r\nX-Injected: 2"
            return url, body, headers

    d = Injecting(workers=1, timeout=2.0, max_queue=10)
    await d.start()
    try:
        d.enqueue(receiver.url, b"bad")
        d.enqueue(receiver.url, b"good")
        await d.drain(WAIT)
    finally:
        await d.stop()
    assert d.stats.failed == 1 and d.stats.delivered == 1
    assert [r[3] for r in receiver.requests] == [b"good"]
    assert "X-Injected" not in receiver.requests[0][2]


async def test_stop_during_a_stalled_delivery_returns_promptly() -> None:
    got = asyncio.Event()

    async def stall(n: int, w: asyncio.StreamWriter) -> bool:
        got.set()
        return True  # never answers

    async with RawReceiver(stall) as rx:
        d = Recorder(workers=2, timeout=30.0, max_queue=10)
        await d.start()
        d.enqueue(rx.url, b"{}")
        await asyncio.wait_for(got.wait(), WAIT)
        await asyncio.wait_for(d.stop(), WAIT)
        assert not d.running


async def test_interim_answers_are_skipped_and_bodiless_statuses_complete() -> None:
    async def interim(n: int, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        w.write(
            b"HTTP/1.1 204 No Content\r\n\r\n"
            if n % 2
            else b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        )
        return True

    async with RawReceiver(interim) as rx:
        d = await deliver(rx, 4)
    assert d.stats.delivered == 4 and [o[1] for o in d.outcomes] == [204, 201, 204, 201]
    assert rx.connections == 1
