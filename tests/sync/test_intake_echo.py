"""Intake beside the engine: the webhooks of the node's own writes are dropped before any tracker
call; a person's edit made right after one of them still goes out.

The Jira Server emulator delivers its real webhook payloads to a small listener that hands them to
a real :class:`Intake` in front of engineering's real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from node.sync.engine import SyncEngine
from node.sync.intake import Intake, IntakeSettings
from node.trackers.base import IssueUpdate
from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, eventually


@dataclass
class CountingSink:
    """The engine, with a record of what intake handed it."""

    engine: SyncEngine
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def proxy(self) -> object:
        return self.engine.proxy

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        self.calls.append((issue_id_or_key, reason))
        await self.engine.local_change(issue_id_or_key, reason=reason)


@dataclass
class Listening:
    intake: Intake
    sink: CountingSink
    registry: CollectorRegistry
    deliveries: list[int] = field(default_factory=list)

    def echoes(self) -> float:
        sample = self.registry.get_sample_value("tandem_intake_changes_total", {"reason": "echo_skipped"})
        return sample or 0.0


@pytest.fixture
async def eng_intake(pair: Pair) -> AsyncIterator[Listening]:
    eng = pair.engineering
    sink = CountingSink(eng.engine)
    registry = CollectorRegistry()
    holder: list[Listening] = []

    async def hook(request: web.Request) -> web.Response:
        listening = holder[0]
        if not listening.intake.path_matches(request.match_info["path"]):
            return web.Response(status=404)
        listening.deliveries.append(listening.intake.accept_webhook(request.headers, await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/{path}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    intake = Intake(
        eng.adapter,
        sink,
        eng.node.db,
        IntakeSettings(poll_seconds=3600.0, poll_seconds_webhooks=3600.0, reconcile_seconds=0.0),
        describe="Jira Server emulator",
        user="admin",
        webhook_base=f"http://127.0.0.1:{port}",
        registry=registry,
    )
    holder.append(Listening(intake, sink, registry))
    await intake.start()

    async def registered() -> bool:
        return intake.webhook_state == "registered"

    await eventually(registered, what="the webhook registration")
    try:
        yield holder[0]
    finally:
        await intake.stop()
        await runner.cleanup()


async def test_own_writes_are_dropped_and_a_person_edit_right_after_is_sent(
    pair: Pair, eng_intake: Listening
) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Echoes in intake")
    await sup.human.add_comment(key, from_plain_text("first"))
    await sup.human.add_comment(key, from_plain_text("second"))
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await pair.settle()

    # engineering's create + 2 comments came back by webhook: counted, never handed to the engine
    async def echoed() -> bool:
        return eng_intake.echoes() >= 3

    await eventually(echoed, what="the echo webhooks")
    await eng_intake.intake.idle()
    assert eng_intake.sink.calls == []

    # a person's edit right after the node's own write (a comment from support) is sent back
    await sup.human.update_issue(key, IssueUpdate(summary="Echoes in intake v2"))
    await sup.engine.local_change(key)

    async def applied() -> bool:
        [view] = await eng.engine.status(eng_key)
        return view.last_received_version == 2

    await eventually(applied, what="the summary edit to be applied")
    await eng.human.update_issue(eng_key, IssueUpdate(priority="Low"))

    async def back() -> bool:
        return (await sup.adapter.get_issue(key)).priority == "Low"

    await eventually(back, what="the person's edit to reach support")
    assert (await eng.adapter.get_issue(eng_key)).summary == "Echoes in intake v2"
    assert [reason for _, reason in eng_intake.sink.calls] == ["webhook"]
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version == 1


async def test_poll_hands_its_snapshot_for_twinned_issues(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Found by polling")
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await pair.settle()
    await eng.human.update_issue(eng_key, IssueUpdate(priority="Low"))
    untwinned = await eng.create("Never synced")
    intake = Intake(
        eng.adapter,
        eng.engine,
        eng.node.db,
        IntakeSettings(poll_seconds=3600.0, reconcile_seconds=0.0, register_webhooks=False),
        describe="Jira Server emulator",
        registry=CollectorRegistry(),
    )
    before = await routes(eng.base_url)
    assert await intake.poll_once() >= 2
    after = await routes(eng.base_url)
    reads = after.get(ISSUE_GET, 0) - before.get(ISSUE_GET, 0)
    assert reads == 1  # the untwinned issue is read in full (a trigger may test any of it)

    async def back() -> bool:
        return (await sup.adapter.get_issue(key)).priority == "Low"

    await eventually(back, what="the polled edit to reach support")
    assert await eng.engine.status(untwinned) == []


ISSUE_GET = "GET /rest/api/{v}/issue/{key}"


async def routes(base_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(f"{base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return dict(body["routes"])
