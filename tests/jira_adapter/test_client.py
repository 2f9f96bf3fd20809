"""The REST client against a tiny local server: retries, Retry-After, error mapping, auth, redirects."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from node.trackers.base import TrackerAuthError, TrackerNotFound, TrackerRejected, TrackerTransient
from node.trackers.http import RetryPolicy
from node.trackers.jira.client import JiraClient

from .fakesite import Handler, Site

TOKEN = "tok-SECRET-123"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.stop()


def client_for(site: Site, **kw: Any) -> JiraClient:
    kw.setdefault("policy", RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02))
    kw.setdefault("user", "alice@example.com")
    kw.setdefault("token", TOKEN)
    return JiraClient(f"http://127.0.0.1:{site.port}", deployment=kw.pop("deployment", "cloud"), **kw)


def sequence(*responses: Callable[[], web.StreamResponse]) -> Handler:
    items = list(responses)

    async def handler(_request: web.Request) -> web.StreamResponse:
        return items.pop(0)() if len(items) > 1 else items[0]()

    return handler


async def test_json_request_with_basic_auth_and_api_root(site: Site) -> None:
    site.handlers["/rest/api/3/myself"] = sequence(lambda: web.json_response({"accountId": "a1"}))
    client = client_for(site)
    try:
        assert await client.request("GET", "myself") == {"accountId": "a1"}
    finally:
        await client.close()
    auth = site.seen[0].headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"alice@example.com:{TOKEN}".encode()).decode()


async def test_server_uses_v2_and_bearer(site: Site) -> None:
    site.handlers["/rest/api/2/myself"] = sequence(lambda: web.json_response({"name": "bob"}))
    client = client_for(site, deployment="server", auth="bearer", user=None)
    try:
        assert await client.request("GET", "myself") == {"name": "bob"}
    finally:
        await client.close()
    assert site.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_429_retry_after_seconds_is_honoured(site: Site) -> None:
    site.handlers["/rest/api/3/myself"] = sequence(
        lambda: web.json_response({}, status=429, headers={"Retry-After": "0.3"}),
        lambda: web.json_response({"ok": True}),
    )
    client = client_for(site)
    started = time.monotonic()
    try:
        assert await client.request("GET", "myself") == {"ok": True}
    finally:
        await client.close()
    assert time.monotonic() - started >= 0.3
    assert len(site.seen) == 2


async def test_429_retry_after_http_date(site: Site) -> None:
    site.handlers["/rest/api/3/myself"] = sequence(
        lambda: web.json_response({}, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        lambda: web.json_response({"ok": True}),
    )
    client = client_for(site)
    try:
        assert await client.request("GET", "myself") == {"ok": True}
    finally:
        await client.close()
    assert len(site.seen) == 2


async def test_5xx_bounded_then_transient(site: Site) -> None:
    site.handlers["/rest/api/3/myself"] = sequence(
        lambda: web.json_response({"errorMessages": ["down"]}, status=503, headers={"Retry-After": "0"})
    )
    client = client_for(site)
    try:
        with pytest.raises(TrackerTransient) as info:
            await client.request("GET", "myself")
    finally:
        await client.close()
    assert info.value.status == 503
    assert "down" in str(info.value)
    assert len(site.seen) == 4


async def test_401_names_user_and_site_never_the_token(site: Site) -> None:
    site.handlers["/rest/api/3/myself"] = sequence(
        lambda: web.Response(status=401, text="<html>login</html>")
    )
    client = client_for(site)
    try:
        with pytest.raises(TrackerAuthError) as info:
            await client.request("GET", "myself")
    finally:
        await client.close()
    msg = str(info.value)
    assert "Jira rejected the credentials for user 'alice@example.com'" in msg
    assert f"127.0.0.1:{site.port}" in msg
    assert TOKEN not in msg and TOKEN not in repr(client)
    assert len(site.seen) == 1  # never retried


async def test_403_captcha_and_permission(site: Site) -> None:
    site.handlers["/rest/api/2/myself"] = sequence(
        lambda: web.Response(status=403, headers={"X-Seraph-LoginReason": "AUTHENTICATION_DENIED"}),
        lambda: web.json_response({"errorMessages": ["You do not have permission"]}, status=403),
    )
    client = client_for(site, deployment="server", user="bob")
    try:
        with pytest.raises(TrackerAuthError, match="CAPTCHA"):
            await client.request("GET", "myself")
        with pytest.raises(TrackerAuthError, match=r"lacks permission.*You do not have permission"):
            await client.request("GET", "myself")
    finally:
        await client.close()


async def test_404_and_400_with_errors_map(site: Site) -> None:
    site.handlers["/rest/api/3/issue/NOPE-1"] = sequence(
        lambda: web.json_response({"errorMessages": ["Issue does not exist"]}, status=404)
    )
    site.handlers["/rest/api/3/issue"] = sequence(
        lambda: web.json_response(
            {"errorMessages": [], "errors": {"summary": "You must specify a summary."}}, status=400
        )
    )
    client = client_for(site)
    try:
        with pytest.raises(TrackerNotFound, match="Issue does not exist"):
            await client.request("GET", "issue/NOPE-1")
        with pytest.raises(TrackerRejected) as info:
            await client.request("POST", "issue", json_body={"fields": {}})
    finally:
        await client.close()
    assert info.value.errors == {"summary": "You must specify a summary."}
    assert info.value.status == 400
    assert json.loads(site.bodies[-1]) == {"fields": {}}


async def test_connection_refused_is_transient_and_bounded() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = JiraClient(
        f"http://127.0.0.1:{port}",
        deployment="cloud",
        user="u",
        token=TOKEN,
        policy=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    try:
        with pytest.raises(TrackerTransient, match="Jira GET /rest/api/3/myself"):
            await client.request("GET", "myself")
    finally:
        await client.close()


async def test_upload_is_resent_whole_after_a_5xx(site: Site) -> None:
    site.handlers["/rest/api/3/issue/A-1/attachments"] = sequence(
        lambda: web.json_response({}, status=502),
        lambda: web.json_response([{"id": "9", "filename": "f.bin", "size": 5}]),
    )
    client = client_for(site)
    try:
        rows = await client.request(
            "POST",
            "issue/A-1/attachments",
            upload=("f.bin", b"\x00\x01abc", "application/octet-stream"),
            headers={"X-Atlassian-Token": "no-check"},
        )
    finally:
        await client.close()
    assert rows[0]["id"] == "9"
    assert len(site.bodies) == 2
    assert all(b"\x00\x01abc" in body and b'filename="f.bin"' in body for body in site.bodies)
    assert all(r.headers["X-Atlassian-Token"] == "no-check" for r in site.seen)


async def test_download_follows_redirect_without_leaking_credentials(site: Site) -> None:
    other = Site()
    other_base = await other.start()
    try:
        other_host = other_base.replace("127.0.0.1", "localhost")  # another origin, same machine

        async def media(_r: web.Request) -> web.StreamResponse:
            return web.Response(body=b"payload-bytes")

        other.handlers["/file/1"] = media

        async def redirect(_r: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{other_host}/file/1")

        site.handlers["/rest/api/3/attachment/content/1"] = redirect
        client = client_for(site)
        try:
            assert await client.download("attachment/content/1") == b"payload-bytes"
            digest, size = await client.sha256("attachment/content/1")
            assert (digest, size) == (hashlib.sha256(b"payload-bytes").hexdigest(), 13)
            with pytest.raises(TrackerRejected, match="larger than 4 bytes"):
                await client.download("attachment/content/1", max_bytes=4)
        finally:
            await client.close()
        assert "Authorization" in site.seen[0].headers
        assert other.seen and all("Authorization" not in r.headers for r in other.seen)
    finally:
        await other.stop()


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="needs a user"):
        JiraClient("https://x", deployment="cloud", user=None, token="t")
    with pytest.raises(ValueError, match="deployment"):
        JiraClient("https://x", deployment="nope", user="u", token="t")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an http"):
        JiraClient("ftp://x", deployment="cloud", user="u", token="t")
