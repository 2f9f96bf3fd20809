"""The lean HTTP/1.1 client (node.trackers.common.http1) and RestClient on top of it, against raw
scripted servers on 127.0.0.1: framing, keep-alive, dead idle connections, timeouts, malformed
answers, TLS with a self-signed certificate and header injection.
Every async test runs on both asyncio's loop and uvloop, the production loop (conftest.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.config import TrackerSection
from node.trackers.base import TrackerRejected, TrackerTransient
from node.trackers.common.http1 import (
    MAX_FIELDS,
    MAX_HEAD,
    BadResponse,
    ClientClosed,
    ConnectError,
    Http1Client,
    InvalidRequest,
    RequestTimeout,
    Response,
    ServerDisconnected,
)
from node.trackers.http import RetryPolicy
from node.trackers.jira.client import JiraClient
from node.trackers.registry import open_tracker

CLOSE = object()  # a scripted step: close the connection without answering
HANG = object()  # a scripted step: read the request, never answer


def ok(body: bytes = b"{}", *extra: str, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{h}\r\n" for h in extra) + "\r\n").encode() + body


@dataclass
class Server:
    """Answers the n-th request (over all connections) with ``steps[n]`` (bytes, CLOSE or HANG); a
    step given as ``(bytes, True)`` closes the connection after writing."""

    steps: list[object]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set at each request

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            for _ in range(100):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                self.arrived.set()
                step = self.steps[len(self.requests) - 1] if len(self.requests) <= len(self.steps) else ok()
                if step is CLOSE:
                    return
                if step is HANG:
                    await reader.read()  # until the client gives up
                    return
                close = isinstance(step, tuple)
                data = step[0] if isinstance(step, tuple) else step
                assert isinstance(data, bytes)
                writer.write(data)
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[object]:
    servers: list[asyncio.Server] = []

    async def start(steps: list[object], *, ssl_ctx: ssl.SSLContext | None = None) -> Server:
        srv = Server(steps)
        server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=ssl_ctx)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        srv.url = f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}"
        return srv

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_keep_alive_reuses_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b'{"n": 1}'), ok(b'{"n": 2}')])
    client = Http1Client(limit=4)
    first = await client.request("GET", srv.url + "/a")
    second = await client.request("POST", srv.url + "/b", body=b'{"x": 1}', headers={"X-Test": "yes"})
    await client.close()
    assert (first.status, first.body, second.body) == (200, b'{"n": 1}', b'{"n": 2}')
    assert srv.connections == 1
    assert srv.requests[1].startswith(b"POST /b HTTP/1.1\r\n")
    assert b"\r\nX-Test: yes\r\n" in srv.requests[1] and srv.requests[1].endswith(b'\r\n\r\n{"x": 1}')
    assert first.headers["content-type"] == "application/json"  # case-insensitive


async def test_pool_limit_serialises_on_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b"1"), ok(b"2"), ok(b"3")])
    client = Http1Client(limit=1)
    answers = await asyncio.gather(*(client.request("GET", srv.url + f"/{i}") for i in range(3)))
    await client.close()
    assert sorted(a.body for a in answers) == [b"1", b"2", b"3"]
    assert srv.connections == 1


async def test_chunked_body_and_interim_answer(serve) -> None:  # type: ignore[no-untyped-def]
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    )
    srv = await serve([chunked, ok(b"next")])
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    again = await client.request("GET", srv.url + "/")
    await client.close()
    assert (answer.status, answer.body, again.body) == (200, b"hello, world", b"next")
    assert srv.connections == 1


async def test_body_until_close(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", True), ok(b"new")])
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    again = await client.request("GET", srv.url + "/")
    await client.close()
    assert (answer.body, again.body) == (b"all of it", b"new")
    assert srv.connections == 2


async def test_no_body_for_204_304_and_connection_close_honoured(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve(
        [
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
            ok(b"bye", "Connection: close"),
            ok(b"fresh"),
        ]
    )
    client = Http1Client()
    with pytest.raises(InvalidRequest, match="HEAD is not supported"):  # no caller, no framing for it
        await client.request("HEAD", srv.url + "/")
    no_content = await client.request("DELETE", srv.url + "/")
    not_modified = await client.request("GET", srv.url + "/")
    bye = await client.request("GET", srv.url + "/")
    fresh = await client.request("GET", srv.url + "/")
    await client.close()
    assert [a.status for a in (no_content, not_modified)] == [204, 304]
    assert no_content.body == not_modified.body == b""
    assert (bye.body, fresh.body) == (b"bye", b"fresh")
    assert srv.connections == 2  # the one that said close is dropped
    assert len(srv.requests) == 4  # the HEAD was never sent


async def test_server_closing_an_idle_connection(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b"one")])
    client = Http1Client()
    assert (await client.request("GET", srv.url + "/")).body == b"one"
    for writer in srv.writers:  # the server drops its idle keep-alive connection
        writer.close()
        await writer.wait_closed()
    assert (await client.request("GET", srv.url + "/")).body == b"{}"
    await client.close()
    assert srv.connections == 2


async def test_dead_reused_connection_retries_get_but_not_a_sent_post(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b"1"), CLOSE, ok(b"retried"), ok(b"3"), CLOSE])
    client = Http1Client()
    await client.request("GET", srv.url + "/")
    # the server closes as the GET arrives on the reused connection: sent again on a fresh one
    assert (await client.request("GET", srv.url + "/")).body == b"retried"
    await client.request("GET", srv.url + "/")
    # a POST fully sent may have been acted on: not sent again here (the caller's policy decides)
    with pytest.raises(ServerDisconnected, match="closed the connection without an answer"):
        await client.request("POST", srv.url + "/comment", body=b"{}")
    await client.close()
    assert len(srv.requests) == 5 and srv.requests[4].startswith(b"POST /comment")


async def test_timeout_names_the_problem(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([HANG])
    client = Http1Client(timeout=0.2)
    with pytest.raises(RequestTimeout, match=r"no complete answer within 0\.2s"):
        await client.request("GET", srv.url + "/")
    await client.close()
    jira = JiraClient(srv.url, deployment="server", user="u", token="t", policy=RetryPolicy(max_attempts=1))
    jira.http.timeout = 0.2
    srv.steps.append(HANG)
    with pytest.raises(
        TrackerTransient, match=r"Jira GET /rest/api/2/myself: timed out \(no complete answer"
    ):
        await jira.request("GET", "myself")
    await jira.close()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "malformed HTTP answer"),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True), "before the answer was complete"),
        (ok(b"x" * 2000), "larger than 1000 bytes"),
        (ok(gzip.compress(b"y" * 5000), "Content-Encoding: gzip"), "larger than 1000 bytes"),
    ],
)
async def test_bad_answers_are_named(serve, reply: object, problem: str) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([reply])
    client = Http1Client(max_body=1000)
    with pytest.raises((BadResponse, ServerDisconnected), match=problem):
        await client.request("GET", srv.url + "/")
    await client.close()


async def test_garbage_through_the_rest_client_is_transient(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([b"garbage\r\n\r\n"])
    jira = JiraClient(srv.url, deployment="server", user="u", token="t", policy=RetryPolicy(max_attempts=1))
    with pytest.raises(
        TrackerTransient, match=r"Jira GET /rest/api/2/myself: BadResponse: malformed HTTP answer"
    ):
        await jira.request("GET", "myself")
    await jira.close()


async def test_gzip_body_decoded(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(gzip.compress(b'{"a": 1}'), "Content-Encoding: gzip")])
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    await client.close()
    assert answer.body == b'{"a": 1}'
    assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in srv.requests[0]


async def test_refused_connection_is_transient() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = Http1Client()
    with pytest.raises(ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
        await client.request("GET", f"http://127.0.0.1:{port}/")
    jira = JiraClient(
        f"http://127.0.0.1:{port}",
        deployment="server",
        user="u",
        token="t",
        policy=RetryPolicy(max_attempts=1),
    )
    with pytest.raises(TrackerTransient, match="ConnectError: cannot connect"):
        await jira.request("GET", "myself")
    await jira.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nb"},
        {"X-Evil": "a\x00"},
        {"X-Ev il": "a"},
        {"Host": "x"},
    ],
)
async def test_header_injection_refused(serve, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    client = Http1Client()
    with pytest.raises(InvalidRequest):
        await client.request("GET", srv.url + "/", headers=headers)
    await client.close()
    assert srv.requests == []


async def test_header_injection_through_the_rest_client_is_rejected(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    jira = JiraClient(srv.url, deployment="server", user="u", token="t", policy=RetryPolicy(max_attempts=3))
    with pytest.raises(TrackerRejected, match="header 'X-Atlassian-Token' contains CR, LF or NUL"):
        await jira.request("GET", "myself", headers={"X-Atlassian-Token": "no-check\r\nX-Other: 1"})
    await jira.close()
    assert srv.requests == []


# ---------------------------------------------------------------------------------------------- TLS


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_verified_by_default_and_off_on_request(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = await serve([ok(b'{"name": "u"}'), ok(b"trusted")], ssl_ctx=server_ctx)

    strict = JiraClient(srv.url, deployment="server", user="u", token="t", policy=RetryPolicy(max_attempts=1))
    with pytest.raises(TrackerTransient, match=r"TLS certificate of 127\.0\.0\.1:[0-9]+ is not trusted"):
        await strict.request("GET", "myself")
    await strict.close()

    lax = JiraClient(
        srv.url,
        deployment="server",
        user="u",
        token="t",
        policy=RetryPolicy(max_attempts=1),
        verify_tls=False,
    )
    assert await lax.request("GET", "myself") == {"name": "u"}
    await lax.close()

    trusting = Http1Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
    assert (await trusting.request("GET", srv.url + "/")).body == b"trusted"
    await trusting.close()


@pytest.mark.parametrize("kind", ["jira-server", "github"])
async def test_verify_tls_in_the_config_reaches_both_transports(serve, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    """``tracker.verify_tls`` through ``open_tracker``: a plain call (the lean client) and a call on
    the aiohttp session (Jira's download, GitHub's redirect-following GET) both honour it."""
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    srv = await serve([ok(b'{"plain": 1}'), ok(b'{"session": 2}')], ssl_ctx=server_ctx)
    github = kind == "github"
    extra = {"projects": ["o/r"]} if github else {"user": "u"}
    # a plain call (the lean client), then one on the aiohttp session
    calls: tuple[Callable[[Any], Awaitable[object]], ...] = (
        (
            lambda c: c.request("POST", "repos/o/r/issues", json_body={}),
            lambda c: c.request("GET", "repos/o/r"),
        )
        if github
        else (lambda c: c.request("GET", "myself"), lambda c: c.download("/secure/attachment/1/a.json"))
    )

    async def both_calls(verify_tls: bool) -> list[object]:
        section = TrackerSection(kind=kind, url=srv.url, token="t", verify_tls=verify_tls, **extra)
        handle = await open_tracker(section, max_attempts=1)
        client = handle.adapter.client  # type: ignore[attr-defined]
        results: list[object] = []
        try:
            for call in calls:
                try:
                    results.append(await call(client))
                except TrackerTransient as exc:
                    results.append(exc)
        finally:
            await handle.close()
        return results

    strict = await both_calls(verify_tls=True)
    assert all(isinstance(r, TrackerTransient) and "certificate" in str(r) for r in strict), strict
    assert srv.requests == []  # neither got past the handshake
    session_answer = {"session": 2} if github else b'{"session": 2}'
    assert await both_calls(verify_tls=False) == [{"plain": 1}, session_answer]
    assert [r.split(b" ", 1)[0] for r in srv.requests] == [b"POST" if github else b"GET", b"GET"]


# ---------------------------------------------------------------------------------------------- review


async def test_a_written_post_is_never_sent_twice(serve) -> None:  # type: ignore[no-untyped-def]
    # 8 MiB: more than the loopback socket buffers take at once, so the body is still being written
    # when write() returns; the server reads all of it (it may act on it), then dies without answering
    srv = await serve([ok(b"warm"), CLOSE, ok(b"second copy", status="201 Created")])
    client = Http1Client(limit=1)
    await client.request("GET", srv.url + "/warm")  # the POST goes on a reused connection
    with pytest.raises(ServerDisconnected, match="without an answer"):
        await client.request("POST", srv.url + "/comment", body=b"x" * (8 << 20))
    await client.close()
    assert [r.split(b" ", 1)[0] for r in srv.requests] == [b"GET", b"POST"]


async def test_an_idempotent_put_on_a_dead_reused_connection_is_sent_again(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b"warm"), CLOSE, ok(b"again")])
    client = Http1Client(limit=1)
    await client.request("GET", srv.url + "/warm")
    assert (await client.request("PUT", srv.url + "/x", body=b"y" * (1 << 20))).body == b"again"
    await client.close()
    assert [r.split(b" ", 1)[0] for r in srv.requests] == [b"GET", b"PUT", b"PUT"]


async def _early_answer_server(tls: ssl.SSLContext | None) -> tuple[asyncio.Server, str, list[bytes]]:
    """A POST is refused (413, keep-alive) from its head alone. Its body is then read as what comes
    next on the connection, up to the client's next request if the client sends one there: that
    request arrives behind the leftover body and gets a 400 (as from a real server), then a close."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head.split(b"\r\n", 1)[0])
            if head.startswith(b"GET "):
                writer.write(ok(b"fresh"))
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            tail = b""
            for _ in range(100_000):  # the leftover body: 8 MiB at most
                data = await reader.read(64 * 1024)
                if not data:
                    return  # the client dropped the connection: right
                window, tail = tail + data, data[-16:]
                if b"GET /next" in window:
                    seen.append(b"GET /next behind the leftover body")
                    writer.write(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    await writer.drain()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    return server, f"{'https' if tls else 'http'}://127.0.0.1:{port}", seen


@pytest.mark.parametrize("tls", [False, True])
async def test_an_early_answer_drops_the_connection(tls: bool, tmp_path: Path) -> None:
    client_ctx: ssl.SSLContext | None = None
    server_ctx: ssl.SSLContext | None = None
    if tls:
        cert, key = _self_signed(tmp_path)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        client_ctx = ssl.create_default_context(cafile=str(cert))
    server, url, seen = await _early_answer_server(server_ctx)
    client = Http1Client(limit=1, ssl_context=client_ctx, timeout=5)
    refused = await client.request("POST", url + "/attach", body=b"x" * (8 << 20))
    after = await client.request("GET", url + "/next")  # not queued behind the refused body
    await client.close()
    server.close()
    await server.wait_closed()
    assert (refused.status, after.status, after.body) == (413, 200, b"fresh")
    assert seen == [b"POST /attach HTTP/1.1", b"GET /next HTTP/1.1"]


def _head_of(*lines: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"Content-Length: 2\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (
            _head_of(*(b"X-F%d: v" % i for i in range(MAX_FIELDS + 1))),
            f"more than {MAX_FIELDS} header fields",
        ),
        (_head_of(b"X-One: " + b"a" * (MAX_HEAD + 1)), f"headers larger than {MAX_HEAD} bytes"),
        (_head_of(*(b"X-Pad: " + b"b" * 1000 for _ in range(80))), f"headers larger than {MAX_HEAD} bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-T: "
            + b"c" * (MAX_HEAD + 1)
            + b"\r\n\r\n",
            f"trailers larger than {MAX_HEAD} bytes",
        ),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 3000 + ok(), "more than 128 header fields"),
        (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"d" * 300_000, f"headers larger than {MAX_HEAD} bytes"),
    ],
    ids=["fields", "one-value", "lines", "trailer", "interim-flood", "endless-value"],
)
async def test_answer_heads_are_bounded(serve, reply: bytes, problem: str) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([reply])
    client = Http1Client(timeout=5)  # an endless head is refused at its limit, not at the deadline
    with pytest.raises(BadResponse, match=problem):
        await client.request("GET", srv.url + "/")
    await client.close()


async def test_a_large_legal_head_is_accepted(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([_head_of(*(b"X-F%d: " % i + b"v" * 400 for i in range(MAX_FIELDS - 2)))])
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    await client.close()
    assert answer.body == b"{}" and len(answer.headers) == MAX_FIELDS - 1


async def test_trailers_are_not_merged_into_the_headers(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n"
            b"2\r\n{}\r\n0\r\nRetry-After: 3600\r\nX-RateLimit-Remaining: 0\r\n\r\n",
            ok(b"next"),
        ]
    )
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    again = await client.request("GET", srv.url + "/")
    await client.close()
    assert (answer.body, answer.headers.getall("Retry-After")) == (b"{}", ["1"])
    assert "X-RateLimit-Remaining" not in answer.headers
    assert again.body == b"next" and srv.connections == 1


async def test_pool_is_fair_to_a_waiting_request(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    client = Http1Client(limit=1)

    async def busy() -> None:
        for i in range(5):
            await client.request("GET", srv.url + f"/busy{i}")

    loop_task = asyncio.create_task(busy())
    waiter = asyncio.create_task(client.request("GET", srv.url + "/waiter"))  # queued behind busy0
    await asyncio.gather(loop_task, waiter)
    await client.close()
    paths = [r.split(b" ")[1] for r in srv.requests]
    assert paths[:3] == [b"/busy0", b"/waiter", b"/busy1"]  # handed the connection busy0 gave back
    assert srv.connections == 1


async def test_a_cancelled_waiter_passes_its_connection_on(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    client = Http1Client(limit=1)
    first_done = asyncio.Event()
    second: asyncio.Task[object] | None = None

    async def first() -> None:
        await client.request("GET", srv.url + "/first")
        assert second is not None
        second.cancel()  # handed the connection already, not yet resumed: it must pass it on
        first_done.set()

    one = asyncio.create_task(first())
    second = asyncio.create_task(client.request("GET", srv.url + "/second"))
    third = asyncio.create_task(client.request("GET", srv.url + "/third"))

    async def late() -> object:  # its first step runs after second's and third's (created first)
        client.timeout = 0.0  # read as the request starts: its time is up as soon as it is queued
        try:
            return await client.request("GET", srv.url + "/late")
        finally:
            client.timeout = 60.0

    timed_out = asyncio.create_task(late())
    await one
    assert first_done.is_set()
    results = await asyncio.gather(second, third, timed_out, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert isinstance(results[1], Response) and (results[1].status, results[1].body) == (200, b"{}")
    assert isinstance(results[2], RequestTimeout)
    assert (await client.request("GET", srv.url + "/after")).status == 200  # no slot leaked
    await client.close()
    assert [r.split(b" ")[1] for r in srv.requests] == [b"/first", b"/third", b"/after"]
    assert srv.connections == 1


async def test_waiters_that_left_the_queue_hold_up_no_one() -> None:
    """A queued request that timed out and one that was cancelled leave the queue at once: the
    connection given back next goes to the request after them, not to a waiter that has gone."""
    slow_arrived, answer_slow = asyncio.Event(), asyncio.Event()
    paths: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10):
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                paths.append(path)
                if path == b"/slow":
                    slow_arrived.set()
                    await answer_slow.wait()
                writer.write(ok(path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = Http1Client(limit=1, timeout=5)

    async def queued(path: str, started: asyncio.Event) -> object:
        started.set()  # request() queues it before its first suspension
        return await client.request("GET", url + path)

    slow = asyncio.create_task(client.request("GET", url + "/slow"))  # holds the only connection
    await asyncio.wait_for(slow_arrived.wait(), 5)
    client.timeout = 0.0  # its time is up as soon as it is queued
    expired_started, cancelled_started = asyncio.Event(), asyncio.Event()
    expired = asyncio.create_task(queued("/expired", expired_started))
    await expired_started.wait()
    client.timeout = 5
    cancelled = asyncio.create_task(queued("/cancelled", cancelled_started))
    await cancelled_started.wait()
    with pytest.raises(RequestTimeout, match="no free connection in time"):
        await expired
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    answer_slow.set()
    assert (await slow).body == b"/slow"
    assert (await client.request("GET", url + "/next")).body == b"/next"  # the idle connection, at once
    await client.close()
    server.close()
    await server.wait_closed()
    assert paths == [b"/slow", b"/next"]


async def test_close_fails_waiting_and_running_requests(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([HANG])
    client = Http1Client(limit=1, timeout=5)
    running = asyncio.create_task(client.request("GET", srv.url + "/hangs"))
    waiting = asyncio.create_task(client.request("GET", srv.url + "/waits"))  # queued behind it
    await asyncio.wait_for(srv.arrived.wait(), 5)
    await client.close()
    results = await asyncio.gather(running, waiting, return_exceptions=True)
    assert [type(r) for r in results] == [ClientClosed, ClientClosed]
    assert srv.connections == 1  # the waiter opened no connection of its own
    assert (await client.request("GET", srv.url + "/later")).status == 200  # usable again


async def test_a_bad_url_raises_no_bare_value_error() -> None:
    with pytest.raises(ValueError, match="not a valid port in the Jira URL: Port out of range"):
        JiraClient("http://127.0.0.1:99999", deployment="server", user="u", token="t")
    jira = JiraClient(
        "http://127.0.0.1:1", deployment="server", user="u", token="t", policy=RetryPolicy(max_attempts=3)
    )
    # an absolute path as a tracker may hand one back (an attachment's content URL): refused, not retried
    with pytest.raises(TrackerRejected, match=r"^Jira GET /x: not a valid URL \(Port out of range"):
        await jira.request("GET", "http://127.0.0.1:99999/x")
    await jira.close()
    with pytest.raises(InvalidRequest, match="not a valid URL"):
        await Http1Client().request("GET", "http://[::1/x")


@pytest.mark.parametrize("name", ["aCCept-encodING", "ACCEPT-encoding"])
async def test_a_callers_accept_encoding_is_sent_once(serve, name: str) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(), ok()])
    client = Http1Client()
    for _ in range(2):  # the first time a header name is seen, and again
        await client.request("GET", srv.url + "/", headers={name: "identity"})
    await client.close()
    for request in srv.requests:
        assert request.lower().count(b"accept-encoding:") == 1
        assert b"identity" in request


async def test_error_bodies_are_cut_and_their_connection_dropped(serve) -> None:  # type: ignore[no-untyped-def]
    page = b"<html>" + b"e" * 5000
    srv = await serve(
        [
            ok(page, status="500 Internal Server Error"),
            ok(gzip.compress(page), "Content-Encoding: gzip", status="502 Bad Gateway"),
            ok(page),
        ]
    )
    client = Http1Client()
    cut = await client.request("GET", srv.url + "/", max_error_body=1000)
    zipped = await client.request("GET", srv.url + "/", max_error_body=1000)
    whole = await client.request("GET", srv.url + "/", max_error_body=1000)
    await client.close()
    assert (cut.status, cut.body) == (500, page[:1000])
    assert (zipped.status, zipped.body) == (502, page[:1000])
    assert (whole.status, whole.body) == (200, page)  # a success is not cut
    assert srv.connections == 2  # the first 5000-byte page was cut: its connection dropped


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (gzip.compress(b'{"a": ') + gzip.compress(b"1}"), "gzip"),  # two members (RFC 1952)
        (zlib.compress(b'{"a": 1}', wbits=12), "deflate"),  # zlib header with a 4 KiB window: 0x48
        (zlib.compress(b'{"a": 1}'), "deflate"),
        (_raw_deflate(b'{"a": 1}'), "deflate"),  # no zlib header, as some servers send
    ],
    ids=["gzip-members", "zlib-small-window", "zlib", "raw-deflate"],
)
async def test_encoded_bodies_decoded(serve, body: bytes, encoding: str) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(body, f"Content-Encoding: {encoding}")])
    client = Http1Client()
    answer = await client.request("GET", srv.url + "/")
    await client.close()
    assert answer.body == b'{"a": 1}'


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (gzip.compress(b'{"issues": [1, 2, 3]}')[:-12], "truncated"),
        (gzip.compress(b'{"a": 1}') + b"garbage", "after the end"),
        (zlib.compress(b'{"a": 1}') + b"\x00", "after the end"),
    ],
    ids=["truncated", "gzip-trailing", "deflate-trailing"],
)
async def test_damaged_encoded_bodies_are_refused(serve, body: bytes, problem: str) -> None:  # type: ignore[no-untyped-def]
    encoding = "gzip" if body[:2] == b"\x1f\x8b" else "deflate"
    srv = await serve([ok(body, f"Content-Encoding: {encoding}")])
    client = Http1Client()
    with pytest.raises(BadResponse, match=problem):
        await client.request("GET", srv.url + "/")
    await client.close()


@pytest.mark.parametrize(
    "url",
    ["ftp://h/x?token=SECRET", "http://user:SECRET@127.0.0.1:1/x", "http://SECRET@127.0.0.1:1/x?key=SECRET"],
)
async def test_invalid_request_messages_carry_no_token(url: str) -> None:
    client = Http1Client()
    with pytest.raises(InvalidRequest) as raised:
        await client.request("GET", url)
    await client.close()
    assert "SECRET" not in str(raised.value)


async def test_credentials_in_the_url_are_refused(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    client = Http1Client()
    with pytest.raises(InvalidRequest, match="credentials in the URL"):
        await client.request("GET", srv.url.replace("http://", "http://u:p@") + "/")
    await client.close()
    assert srv.requests == []


async def test_a_host_name_is_resolved_and_connected(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([ok(b"by name")])
    client = Http1Client()
    answer = await client.request("GET", srv.url.replace("127.0.0.1", "localhost") + "/")
    await client.close()
    assert answer.body == b"by name"
    assert b"\r\nHost: localhost:" in srv.requests[0]
