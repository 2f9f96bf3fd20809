"""The GitHub emulator's hook deliveries through the lean HTTP client: every GitHub header arrives
exactly, signatures check out, one kept-alive connection carries them, and outcomes land on the
hook's ``last_response``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.trackers.github.emulator import GitHubEmulator
from node.trackers.github.emulator.hooks import Delivery, HookDispatcher
from node.trackers.github.emulator.state import Hook, Repo
from tests.helpers.http import serve


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.peers: set[tuple[str, int]] = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status, text="done")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rx.handle)
    rx.runner, base = await serve(app)
    rx.url = f"{base}/payload"
    yield rx
    await rx.runner.cleanup()


async def test_github_headers_and_signatures_arrive_exactly(receiver: Receiver) -> None:
    hook = Hook(id=7, url=receiver.url, secret="s3cret", events=["issues"])
    plain = Hook(id=8, url=receiver.url + "?plain=1", events=["issues"])
    d = HookDispatcher(workers=1, timeout=5.0)
    await d.start()
    try:
        sent = [Delivery(hook, 42, "issues", "opened", b'{"action":"opened","n":%d}' % n) for n in range(5)]
        sent.append(Delivery(plain, 42, "issue_comment", "created", b'{"action":"created"}'))
        for delivery in sent:
            assert d.enqueue(delivery)
        await d.drain(5.0)
    finally:
        await d.stop()
    assert [body for _, body in receiver.got] == [s.body for s in sent]
    headers, body = receiver.got[0]
    assert headers["X-GitHub-Event"] == "issues"
    assert headers["X-GitHub-Delivery"] == sent[0].guid
    assert headers["X-GitHub-Hook-ID"] == "7"
    assert headers["X-GitHub-Hook-Installation-Target-Type"] == "repository"
    assert headers["X-GitHub-Hook-Installation-Target-ID"] == "42"
    assert headers["User-Agent"] == "GitHub-Hookshot/tandem-emulator"
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert len({h["X-GitHub-Delivery"] for h, _ in receiver.got}) == 6
    last_headers, _ = receiver.got[-1]
    assert "X-Hub-Signature-256" not in last_headers and last_headers["X-GitHub-Event"] == "issue_comment"
    assert len(receiver.peers) == 1  # both hooks' URLs share the receiver's one kept-alive connection
    assert d.stats.delivered == 6 and d.stats.failed == 0
    assert hook.last_response == {"code": 200, "status": "active", "message": "OK"}
    assert [r["status"] for r in d.stats.as_dict()["recent"]] == [200] * 6


async def test_an_error_status_is_kept_on_the_hook(receiver: Receiver) -> None:
    receiver.status = 410
    hook = Hook(id=9, url=receiver.url, events=["issues"])
    d = HookDispatcher(workers=1, timeout=5.0)
    await d.start()
    try:
        d.enqueue(Delivery(hook, 1, "issues", "closed", b"{}"))
        await d.drain(5.0)
    finally:
        await d.stop()
    assert d.stats.failed == 1 and d.stats.delivered == 0
    assert hook.last_response == {"code": 410, "status": "failed", "message": "receiver answered 410"}


async def test_ping_and_events_reach_a_receiver_through_the_emulator(receiver: Receiver) -> None:
    emu = GitHubEmulator(user="bot", token="tok", name="Bot")
    await emu.start(host="127.0.0.1", port=0)
    try:
        emu.app.dispatcher.enqueue(Delivery(Hook(id=1, url=receiver.url), 1, "ping", None, b'{"zen":"x"}'))
        await asyncio.wait_for(emu.drain_webhooks(), 5.0)
    finally:
        await emu.stop()
    assert receiver.got[0][0]["X-GitHub-Event"] == "ping" and receiver.got[0][1] == b'{"zen":"x"}'


async def test_a_full_queue_drops_and_counts_each_delivery_renders_none_and_later_ones_arrive_whole() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()
    got: list[dict[str, Any]] = []

    async def held(request: web.Request) -> web.Response:
        got.append(await request.json())
        arrived.set()
        await asyncio.wait_for(release.wait(), 5.0)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", held)
    runner, base = await serve(app)
    emu = GitHubEmulator(user="bot", token="tok", name="Bot")
    emu.app.dispatcher = HookDispatcher(max_queue=1, workers=1, timeout=5.0)
    url = await emu.start(host="127.0.0.1", port=0)
    repo = emu.state.create_repo("bot", "tracker")
    repo.hooks[1] = Hook(id=1, url=f"{base}/hook", events=["issues", "issue_comment"])
    rendered: list[tuple[str, str]] = []  # (event, action) of each payload built
    fire = emu.app._fire

    def counting(repo: Repo, event: str, action: str, payload: Callable[[], dict[str, Any]]) -> None:
        def render() -> dict[str, Any]:
            rendered.append((event, action))
            return payload()

        fire(repo, event, action, render)

    emu.app._fire = counting  # type: ignore[method-assign]
    headers = {"Authorization": "Bearer tok", "Accept": "application/vnd.github+json"}
    try:
        async with aiohttp.ClientSession(base_url=url, headers=headers) as http:

            async def open_issue(title: str) -> None:
                async with http.post("/repos/bot/tracker/issues", json={"title": title}) as resp:
                    assert resp.status == 201

            await open_issue("in flight")
            await asyncio.wait_for(arrived.wait(), 5.0)  # the one worker is held by the receiver
            await open_issue("queued")  # fills the queue (1)
            await open_issue("dropped")
            async with http.post(
                "/repos/bot/tracker/issues/1/comments", json={"body": "dropped too"}
            ) as resp:
                assert resp.status == 201
            stats = emu.app.dispatcher.stats
            assert (stats.queued, stats.dropped) == (2, 2)
            assert rendered == [("issues", "opened")] * 2  # nothing built for the dropped deliveries
            release.set()
            await asyncio.wait_for(emu.drain_webhooks(), 5.0)
            await open_issue("after the drain")
            await asyncio.wait_for(emu.drain_webhooks(), 5.0)
    finally:
        release.set()
        await emu.stop()
        await runner.cleanup()
    assert (stats.queued, stats.dropped, stats.delivered) == (3, 2, 3)
    assert rendered == [("issues", "opened")] * 3
    assert [(p["action"], p["issue"]["title"]) for p in got] == [
        ("opened", "in flight"),
        ("opened", "queued"),
        ("opened", "after the drain"),
    ]
