"""The webhook-only listener (``tracker.webhook_listen``): an asyncio protocol over httptools. It must
answer like the peer app's route does — JSON errors, counted, never a traceback — for every path,
method, body and byte stream a stranger can send it, and keep HTTP/1.1's rules (keep-alive,
pipelining, chunked bodies, Connection: close). Real sockets, a real intake and store; the tracker is
scripted (``fakes.FakeTracker``: ``issue:<id>`` is a person's change, ``echo:<id>`` the proxy
user's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from node.store import Database
from node.sync.intake import Intake, IntakeSettings
from node.web import webhooks
from node.web.webhooks import WebhookServer

from .fakes import FakeTracker, RecordingEngine

MAX_BODY = 1024  # the listener's body limit in these tests


class NodeStub:
    """What the listener reads from the node: its intake (None: no tracker)."""

    def __init__(self, intake: Intake | None) -> None:
        self.intake = intake


class Listener:
    def __init__(
        self,
        intake: Intake,
        engine: RecordingEngine,
        registry: CollectorRegistry,
        server: WebhookServer,
        url: str,
    ):
        self.intake = intake
        self.server = server
        self.engine = engine
        self.registry = registry
        self.url = url  # http://127.0.0.1:<port>
        assert intake.webhook_path is not None
        self.hook = url + intake.webhook_path

    def metric(self, line: str) -> bool:
        return line in generate_latest(self.registry).decode()


async def serve(node: Any, **options: Any) -> tuple[WebhookServer, str]:
    server = WebhookServer(node, **options)
    port = await server.start("127.0.0.1", 0)
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def listener(db: Database) -> AsyncIterator[Listener]:
    registry = CollectorRegistry()
    engine = RecordingEngine()
    settings = IntakeSettings(poll_seconds=3600, poll_seconds_webhooks=3600, reconcile_seconds=0)
    intake = Intake(
        FakeTracker(),
        engine,
        db,
        settings,
        describe="Fake Tracker at http://fake",
        webhook_base="http://127.0.0.1",
        registry=registry,
    )
    await intake.start()
    server, url = await serve(NodeStub(intake), max_body=MAX_BODY, request_timeout=1.0, sweep_seconds=0.05)
    try:
        yield Listener(intake, engine, registry, server, url)
    finally:
        await server.stop()
        await intake.stop()


async def request(method: str, url: str, body: bytes = b"") -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url, data=body) as resp:
        text = await resp.text()
        payload = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, payload, text


async def test_deliveries_reach_the_engine_and_echoes_do_not(listener: Listener) -> None:
    status, body, _ = await request("POST", listener.hook, b"issue:7,8")
    assert (status, body) == (200, {"accepted": 2})
    status, body, _ = await request("POST", listener.hook, b"echo:9")
    assert (status, body) == (200, {"accepted": 1})
    await listener.engine.wait_calls(2)
    await listener.intake.idle()
    assert sorted(listener.engine.ids("webhook")) == ["7", "8"]
    assert listener.metric("tandem_webhook_deliveries_total 2.0")
    assert listener.metric('tandem_intake_changes_total{reason="echo_skipped"} 1.0')


async def test_a_wrong_secret_is_a_counted_404(listener: Listener) -> None:
    status, body, text = await request("POST", listener.url + "/webhooks/a-guess", b"issue:1")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "Traceback" not in text
    assert listener.metric('tandem_webhook_rejected_total{reason="unknown_path"} 1.0')
    assert listener.engine.calls == []


@pytest.mark.parametrize("path", ["/", "/webhooks/", "/webhooks", "/admin/api/v1/node", "/webhooks/x/y"])
async def test_other_paths_are_a_json_404(listener: Listener, path: str) -> None:
    status, body, text = await request("POST", listener.url + path, b"issue:1")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "Traceback" not in text
    assert listener.engine.calls == []


async def test_the_secret_path_with_a_suffix_is_not_the_endpoint(listener: Listener) -> None:
    status, _, _ = await request("POST", listener.hook + "/more", b"issue:1")
    assert status == 404
    assert listener.engine.calls == []


async def test_only_post_is_allowed(listener: Listener) -> None:
    for method in ("GET", "PUT", "DELETE"):
        status, body, _ = await request(method, listener.hook)
        assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert listener.engine.calls == []


async def test_a_bad_body_is_a_counted_400_naming_the_problem(listener: Listener) -> None:
    status, body, text = await request("POST", listener.hook, b"\xff\x00 not a delivery")
    assert status == 400 and body["error"]["code"] == "bad_webhook"
    assert "fake webhook" in body["error"]["message"] and "Traceback" not in text
    assert listener.metric('tandem_webhook_rejected_total{reason="invalid"} 1.0')


async def test_an_oversized_body_is_a_counted_413(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "MAX_BODY", 1024)
    status, body, _ = await request("POST", listener.hook, b"issue:" + b"1" * 4096)
    assert status == 413 and body["error"]["code"] == "too_large"
    assert listener.metric('tandem_webhook_rejected_total{reason="oversized"} 1.0')
    status, body, _ = await request("POST", listener.hook, b"issue:5")  # the limit, not the listener
    assert (status, body) == (200, {"accepted": 1})


async def test_a_failure_of_our_own_is_a_500_without_traceback_or_secret(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(segment: str) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(listener.intake, "path_matches", broken)
    with caplog.at_level(logging.ERROR, logger="node.web.webhooks"):
        status, body, text = await request("POST", listener.hook, b"issue:1")
    assert status == 500 and body["error"]["code"] == "internal_error"
    assert "Traceback" not in text and "a bug" not in text
    assert caplog.records and "RuntimeError" in caplog.text
    assert all(str(listener.intake.webhook_path) not in r.getMessage() for r in caplog.records)


async def test_a_node_without_intake_says_so() -> None:
    server, url = await serve(NodeStub(None))
    try:
        status, body, _ = await request("POST", url + "/webhooks/anything", b"issue:1")
    finally:
        await server.stop()
    assert status == 404 and body["error"]["code"] == "no_intake"


# -- HTTP/1.1 on the wire ----------------------------------------------------------------------------


class Wire:
    """A raw client connection: bytes out, whole answers in (bounded in time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], bytes]:
        async def read() -> tuple[int, dict[str, str], bytes]:
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {
                k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
            return status, headers, body

        return await asyncio.wait_for(read(), 5)

    async def closed(self) -> bool:
        """True when the listener closed the connection (everything it sent is read first)."""
        return await asyncio.wait_for(self.reader.read(), 5) == b"" or self.reader.at_eof()


@pytest.fixture
async def wire(listener: Listener) -> AsyncIterator[Wire]:
    port = int(listener.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Wire(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: node", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(
    listener: Listener, wire: Wire
) -> None:
    await wire.send(post(listener.intake.webhook_path or "", b"issue:1"))
    assert (await wire.answer())[::2] == (200, b'{"accepted": 1}')
    # three requests in one write: a person's change, a wrong secret, an echo
    await wire.send(
        post(listener.intake.webhook_path or "", b"issue:2,3")
        + post("/webhooks/a-guess", b"issue:4")
        + post(listener.intake.webhook_path or "", b"echo:5")
    )
    answers = [await wire.answer() for _ in range(3)]
    assert [(a[0], a[2]) for a in answers[::2]] == [(200, b'{"accepted": 2}'), (200, b'{"accepted": 1}')]
    assert answers[1][0] == 404 and answers[1][1]["content-type"] == "application/json"
    assert all("date" in a[1] and "connection" not in a[1] for a in answers)
    await listener.engine.wait_calls(3)
    assert sorted(listener.engine.ids("webhook")) == ["1", "2", "3"]


async def test_a_chunked_body_is_read_whole(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    chunks = b"6\r\nissue:\r\n3\r\n7,8\r\n0\r\n\r\n"
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    await wire.send(chunks)
    assert (await wire.answer())[::2] == (200, b'{"accepted": 2}')
    await listener.engine.wait_calls(2)
    assert sorted(listener.engine.ids("webhook")) == ["7", "8"]


async def test_connection_close_and_http_1_0_are_answered_then_closed(listener: Listener, wire: Wire) -> None:
    await wire.send(post(listener.intake.webhook_path or "", b"issue:1", "Connection: close"))
    status, headers, _ = await wire.answer()
    assert status == 200 and headers["connection"] == "close"
    assert await wire.closed()


async def test_nothing_pipelined_after_connection_close_is_taken(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    await wire.send(post(path, b"issue:1", "Connection: close") + post(path, b"issue:2"))
    assert (await wire.answer())[0] == 200
    assert await wire.closed()
    await listener.engine.wait_calls(1)
    await listener.intake.idle()
    assert listener.engine.ids("webhook") == ["1"]


async def test_http_1_0_closes_after_the_answer(listener: Listener, wire: Wire) -> None:
    request = post(listener.intake.webhook_path or "", b"issue:1").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    await wire.send(request)
    assert (await wire.answer())[0] == 200
    assert await wire.closed()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello
        b"POST /webhooks/x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /webhooks/x HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: n\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
)
async def test_bad_http_is_a_json_400_then_close(listener: Listener, wire: Wire, garbage: bytes) -> None:
    await wire.send(garbage)
    status, headers, body = await wire.answer()
    assert status == 400 and headers["connection"] == "close"
    assert b"bad_request" in body and b"Traceback" not in body
    assert await wire.closed()
    assert listener.engine.calls == []


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    status, headers, _ = await wire.answer()
    assert status == 413 and headers["connection"] == "close"
    assert await wire.closed()
    assert listener.metric('tandem_webhook_rejected_total{reason="oversized"} 1.0')


async def test_an_oversized_chunked_body_is_refused_as_it_passes_the_limit(
    listener: Listener, wire: Wire
) -> None:
    path = listener.intake.webhook_path or ""
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    chunk = b"issue:" + b"1" * 500
    for _ in range(3):
        await wire.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    status, _, _ = await wire.answer()
    assert status == 413 and await wire.closed()
    assert listener.engine.calls == []


async def test_expect_100_continue_is_honoured(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    head = f"POST {path} HTTP/1.1\r\nHost: n\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n"
    await wire.send(head.encode())
    line = await asyncio.wait_for(wire.reader.readuntil(b"\r\n\r\n"), 5)
    assert line == b"HTTP/1.1 100 Continue\r\n\r\n"
    await wire.send(b"issue:1")
    assert (await wire.answer())[::2] == (200, b'{"accepted": 1}')


@pytest.mark.parametrize("before", [b"", post("/", b"")], ids=["alone", "after a pipelined request"])
async def test_headers_beyond_the_limit_close_the_connection(
    listener: Listener, wire: Wire, before: bytes
) -> None:
    await wire.send(before + b"POST /webhooks/x HTTP/1.1\r\nHost: n\r\n")
    if before:
        assert (await wire.answer())[0] == 404
    filler = b"X-Filler: " + b"a" * 60_000 + b"\r\n"
    for _ in range(webhooks.MAX_HEAD // len(filler) + 3):
        wire.writer.write(filler)
        with contextlib.suppress(ConnectionError):
            await wire.writer.drain()
        if wire.reader.at_eof() or wire.writer.is_closing():
            break
    try:
        status, headers, _ = await wire.answer()
    except (ConnectionError, asyncio.IncompleteReadError):
        return  # closed with our bytes unread: the kernel may reset before the 400 is read
    assert status == 400 and headers["connection"] == "close"


async def test_a_request_that_stalls_is_cut_off(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nContent-Length: 100\r\n\r\nissue:1".encode())
    status, headers, _ = await wire.answer()  # request_timeout is 1 s in these tests
    assert status == 408 and headers["connection"] == "close"
    assert await wire.closed()
    assert listener.engine.calls == []


async def test_a_body_cut_off_by_the_client_is_counted(listener: Listener, wire: Wire) -> None:
    path = listener.intake.webhook_path or ""
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nContent-Length: 100\r\n\r\nissue:1".encode())
    wire.writer.close()
    await until(lambda: listener.server.connections == set())
    assert listener.metric('tandem_webhook_rejected_total{reason="truncated"} 1.0')
    assert listener.engine.calls == []


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition only the listener's side of a socket sets (bounded)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_an_idle_connection_is_closed_and_stop_closes_the_rest(db: Database) -> None:
    intake = Intake(FakeTracker(), RecordingEngine(), db, IntakeSettings(), describe="fake")
    server, url = await serve(NodeStub(intake), idle_timeout=0.1, sweep_seconds=0.02)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener, unasked
        writer.close()
    finally:
        await server.stop()
    server, url = await serve(NodeStub(intake))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        wire = Wire(reader, writer)
        await wire.send(post("/", b""))  # answered: the listener holds the connection now
        assert (await wire.answer())[0] == 404 and len(server.connections) == 1
    finally:
        await server.stop()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert server.connections == set()


async def test_headers_and_the_exact_body_reach_the_adapter(
    listener: Listener, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str | None, str | None, bytes]] = []
    parse = listener.intake.adapter.parse_webhook

    def recording(headers: Any, body: bytes) -> Any:
        seen.append((headers.get("x-hub-signature"), headers.get("X-GITHUB-EVENT"), body))
        return parse(headers, body)

    monkeypatch.setattr(listener.intake.adapter, "parse_webhook", recording)
    path = listener.intake.webhook_path or ""
    await wire.send(post(path, b"issue:1", "X-Hub-Signature: sha256=abc", "x-github-event: issues"))
    assert (await wire.answer())[0] == 200
    await wire.send(f"POST {path} HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    await wire.send(b"3\r\niss\r\n4\r\nue:2\r\n0\r\n\r\n")
    assert (await wire.answer())[0] == 200
    assert seen == [("sha256=abc", "issues", b"issue:1"), (None, None, b"issue:2")]
