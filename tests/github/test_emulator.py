"""The GitHub emulator's REST behaviour: pagination, filters, conditional requests, rate limits,
authentication, validation errors, webhook delivery and the control API."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import time
from typing import Any

import aiohttp
from aiohttp import web

from tests.helpers.http import serve

from .conftest import HUMAN_TOKEN, Site

ISSUES = "/repos/bot/tracker/issues"


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return await resp.json(content_type=None)


async def make_issues(http: aiohttp.ClientSession, count: int, **body: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        async with http.post(ISSUES, json={"title": f"issue {i}", **body}) as resp:
            assert resp.status == 201
            out.append(await resp.json())
    return out


async def test_pagination_follows_link_headers(http: aiohttp.ClientSession) -> None:
    await make_issues(http, 7)
    numbers: list[int] = []
    url: str | None = f"{ISSUES}?per_page=3&sort=created&direction=asc"
    pages = 0
    while url and pages < 10:
        async with http.get(url) as resp:
            assert resp.status == 200
            numbers += [i["number"] for i in await resp.json()]
            nxt = resp.links.get("next")
            url = str(nxt["url"]) if nxt else None
            if pages == 0:
                assert "last" in resp.links and "prev" not in resp.links
        pages += 1
    assert pages == 3 and numbers == list(range(1, 8))


async def test_issue_filters(site: Site, http: aiohttp.ClientSession) -> None:
    a, b, _c = await make_issues(http, 3)
    async with http.patch(f"{ISSUES}/{a['number']}", json={"labels": ["bug", "ui"], "state": "closed"}) as r:
        assert r.status == 200
    async with http.patch(f"{ISSUES}/{b['number']}", json={"labels": ["bug"]}) as r:
        assert r.status == 200

    async def numbers(**params: str) -> list[int]:
        async with http.get(ISSUES, params=params) as resp:
            assert resp.status == 200, await resp.text()
            return [i["number"] for i in await resp.json()]

    assert await numbers() == [3, 2]  # open only, newest first
    assert await numbers(state="all", direction="asc") == [1, 2, 3]
    assert await numbers(state="all", labels="bug") == [2, 1]
    assert await numbers(state="all", labels="bug,ui") == [1]
    assert await numbers(state="closed") == [1]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await numbers(state="all", since=future) == []
    assert await numbers(state="all", since="2000-01-01T00:00:00Z", sort="updated") != []
    async with http.get(ISSUES, params={"state": "weird"}) as resp:
        assert resp.status == 422
    async with http.get(ISSUES, params={"since": "yesterday"}) as resp:
        assert resp.status == 422
    async with http.get(ISSUES, params={"creator": "jane"}) as resp:
        assert await resp.json() == []


async def test_conditional_request_is_free_and_sees_changes(http: aiohttp.ClientSession) -> None:
    (issue,) = await make_issues(http, 1)
    url = f"{ISSUES}/{issue['number']}"
    async with http.get(url) as resp:
        etag = resp.headers["ETag"]
        before = int(resp.headers["x-ratelimit-remaining"])
    async with http.get(url, headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304 and await resp.read() == b""
        assert int(resp.headers["x-ratelimit-remaining"]) == before  # a 304 costs nothing
    async with http.patch(url, json={"title": "changed"}) as resp:
        assert resp.status == 200
    async with http.get(url, headers={"If-None-Match": etag}) as resp:
        assert resp.status == 200 and (await resp.json())["title"] == "changed"
        assert resp.headers["ETag"] != etag


async def test_primary_rate_limit(site: Site, http: aiohttp.ClientSession) -> None:
    async with http.post("/_emulator/faults", json={"rate_limit": {"limit": 3, "window": 60}}) as resp:
        assert resp.status == 200
    async with aiohttp.ClientSession(base_url=site.url, headers=site.headers()) as fresh:
        site.emu.app.faults.buckets.clear()
        statuses = []
        for _ in range(4):
            async with fresh.get("/user") as resp:
                statuses.append(resp.status)
                last = resp
                body = await _json(resp)
        assert statuses == [200, 200, 200, 403]
        assert last.headers["x-ratelimit-remaining"] == "0"
        assert int(last.headers["x-ratelimit-reset"]) > time.time()
        assert "rate limit exceeded" in body["message"]
        # another token has its own budget
        async with fresh.get("/user", headers={"Authorization": f"Bearer {HUMAN_TOKEN}"}) as resp:
            assert resp.status == 200 and resp.headers["x-ratelimit-remaining"] == "2"


async def test_secondary_rate_limit_and_injected_errors(http: aiohttp.ClientSession) -> None:
    spec = {"secondary": {"next_n": 1, "retry_after": 7}, "error_rate": 0.0}
    async with http.post("/_emulator/faults", json=spec) as resp:
        assert resp.status == 200
    async with http.get("/user") as resp:
        assert resp.status == 403 and resp.headers["retry-after"] == "7"
        assert "secondary rate limit" in (await resp.json())["message"]
    async with http.get("/user") as resp:
        assert resp.status == 200
    async with http.post("/_emulator/faults", json={"error_rate": 1.0, "status": 502}) as resp:
        assert resp.status == 200
    async with http.get("/user") as resp:
        assert resp.status == 502
    async with http.get("/_emulator/stats") as resp:
        stats = await resp.json()
    assert stats["secondaryLimited"] == 1 and stats["injectedErrors"] == 1
    async with http.post("/_emulator/faults", json={"error_rate": 3}) as resp:
        assert resp.status == 400 and "error_rate" in (await resp.json())["message"]
    async with http.post("/_emulator/faults", json={"nonsense": 1}) as resp:
        assert resp.status == 400


async def test_authentication_and_bad_input(site: Site) -> None:
    async with aiohttp.ClientSession(base_url=site.url) as anon:
        async with anon.get("/user") as resp:
            assert resp.status == 401 and (await resp.json())["message"] == "Requires authentication"
        async with anon.get("/user", headers={"Authorization": "Bearer nope"}) as resp:
            assert resp.status == 401 and (await resp.json())["message"] == "Bad credentials"
    async with aiohttp.ClientSession(base_url=site.url, headers=site.headers()) as http:
        async with http.post(ISSUES, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400 and (await resp.json())["message"] == "Problems parsing JSON"
        async with http.post(ISSUES, json={"title": "x", "assignees": ["ghost"]}) as resp:
            body = await resp.json()
            assert resp.status == 422 and body["errors"][0]["field"] == "assignees"
        async with http.post(ISSUES, json={"title": "x", "milestone": 42}) as resp:
            assert resp.status == 422
        async with http.get("/repos/bot/tracker/nothing-here") as resp:
            assert resp.status == 404 and (await resp.json())["message"] == "Not Found"
        async with http.post("/user/repos", json={"name": "tracker"}) as resp:
            assert resp.status == 422  # already exists
        async with http.post("/orgs/no-such-org/repos", json={"name": "x"}) as resp:
            assert resp.status == 404


async def test_pull_requests_appear_in_the_issues_list(http: aiohttp.ClientSession) -> None:
    await make_issues(http, 1)
    async with http.post("/_emulator/repos/bot/tracker/pulls", json={"title": "a PR"}) as resp:
        assert resp.status == 201
    async with http.get(ISSUES) as resp:
        items = await resp.json()
    assert [("pull_request" in i, i["number"]) for i in items] == [(True, 2), (False, 1)]


async def test_webhooks_are_signed_and_labelled(site: Site, http: aiohttp.ClientSession) -> None:
    got: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await got.put((dict(request.headers), await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/", receive)
    runner, base = await serve(app)
    try:
        hook = {"config": {"url": f"{base}/", "content_type": "json", "secret": "s3"}}
        async with http.post("/repos/bot/tracker/hooks", json={**hook, "events": ["issues"]}) as resp:
            assert resp.status == 201
        await make_issues(http, 1)
        ping_headers, _ = await asyncio.wait_for(got.get(), 5)
        assert ping_headers["X-GitHub-Event"] == "ping"
        headers, body = await asyncio.wait_for(got.get(), 5)
        assert headers["X-GitHub-Event"] == "issues" and headers["X-GitHub-Delivery"]
        expected = "sha256=" + hmac.new(b"s3", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == expected
        # comments are not subscribed: nothing more arrives
        async with http.post(f"{ISSUES}/1/comments", json={"body": "hi"}) as resp:
            assert resp.status == 201
        await site.emu.drain_webhooks()
        assert got.empty()
        async with http.get("/_emulator/webhooks") as resp:
            stats = await resp.json()
        assert stats["delivered"] == 2 and stats["failed"] == 0
    finally:
        await runner.cleanup()


async def test_reset_keeps_the_initial_user(site: Site, http: aiohttp.ClientSession) -> None:
    await make_issues(http, 2)
    async with http.post("/_emulator/reset") as resp:
        assert resp.status == 200
    async with http.get("/user") as resp:
        assert resp.status == 200 and (await resp.json())["name"] == "Tandem Bot"  # as first made
    async with http.get(ISSUES) as resp:
        assert resp.status == 404  # the repository is gone
    async with http.post("/_emulator/users", json={"login": "sam", "token": "ghp_sam"}) as resp:
        assert resp.status == 201
    async with http.get("/user", headers={"Authorization": "token ghp_sam"}) as resp:
        assert (await resp.json())["login"] == "sam"
    async with http.post("/_emulator/users", json={"login": "sam"}) as resp:
        assert resp.status == 422 and "taken" in (await resp.json())["message"]
