"""The lean HTTP/1.1 client (node.trackers.common.http1) and RestClient on top of it, against raw
scripted servers on 127.0.0.1: framing, keep-alive, dead idle connections, timeouts, malformed
answers, TLS with a self-signed certificate, header injection, and the Link header's next page."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from node.trackers.base import TrackerRejected, TrackerTransient
from node.trackers.common.http1 import (
    BadResponse,
    ConnectError,
    Http1Client,
    InvalidRequest,
    RequestTimeout,
    ServerDisconnected,
)
from node.trackers.common.rest import next_link
from node.trackers.github.client import GitHubClient
from node.trackers.http import RetryPolicy
from node.trackers.jira.client import JiraClient

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


async def test_no_body_for_head_204_304_and_connection_close_honoured(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",  # HEAD: the length is not a body
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
            ok(b"bye", "Connection: close"),
            ok(b"fresh"),
        ]
    )
    client = Http1Client()
    head = await client.request("HEAD", srv.url + "/")
    no_content = await client.request("DELETE", srv.url + "/")
    not_modified = await client.request("GET", srv.url + "/")
    bye = await client.request("GET", srv.url + "/")
    fresh = await client.request("GET", srv.url + "/")
    await client.close()
    assert [a.status for a in (head, no_content, not_modified)] == [200, 204, 304]
    assert head.body == no_content.body == not_modified.body == b""
    assert (bye.body, fresh.body) == (b"bye", b"fresh")
    # HEAD's connection is dropped (its length cannot be trusted), so is the one that said close
    assert srv.connections == 3


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


# ---------------------------------------------------------------------------------------------- Link


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [
                '<https://api.github.com/r/1/issues?page=2>; rel="next", '
                '<https://api.github.com/r/1/issues?page=5>; rel="last"'
            ],
            "https://api.github.com/r/1/issues?page=2",
        ),
        (['<https://h/x?labels=a,b&page=3>; rel="next"'], "https://h/x?labels=a,b&page=3"),
        (['<https://h/p1>; rel="prev"', '<https://h/p3>; title="a, b; c"; rel="last next"'], "https://h/p3"),
        (["</relative?page=2>;rel=next"], "/relative?page=2"),
        (['<https://h/p1>; rel="prev"'], None),
        (["garbage, <unterminated; rel=next"], None),
        ([""], None),
    ],
)
def test_next_link(values: list[str], expected: str | None) -> None:
    assert next_link(values) == expected


async def test_github_pagination_follows_next(serve) -> None:  # type: ignore[no-untyped-def]
    srv = await serve([])
    srv.steps.extend(
        [
            ok(
                b"[1, 2]", f'Link: <{srv.url}/repos/o/r/issues?page=2>; rel="next", <{srv.url}/x>; rel="last"'
            ),
            ok(b"[3]", 'Link: </repos/o/r/issues?page=3>; rel="next"'),
            ok(b"[4]"),
        ]
    )
    client = GitHubClient(srv.url, token="t", policy=RetryPolicy(max_attempts=1))
    client_page = await client.page("POST", "repos/o/r/issues")  # POST: a plain call (no redirects)
    assert client_page.next_url == f"{srv.url}/repos/o/r/issues?page=2"
    second = await client.page("POST", client_page.next_url)
    assert second.next_url == f"{srv.url}/repos/o/r/issues?page=3"  # relative target resolved
    await client.close()
