"""A real node beside a real (emulated) Jira: credentials, webhook registration and delivery through
the peer listener, bad deliveries, polling across a restart. The sync engine is the real one; a spy
between intake and the engine records what intake handed over."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.app import Node
from node.config import parse_config
from node.home import Home, HomeError
from node.sync.intake import CURSOR_POLL, CURSOR_WEBHOOK
from node.sync.store import get_cursor
from node.trackers.base import IssueUpdate, TrackerEvent
from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator
from protocol.richtext import from_plain_text

ADMIN_PASSWORD = "admin-api-token"
HUMAN_PASSWORD = "jane-personal-token"
PROJECT = "TAN"
FAST: dict[str, Any] = {"max_attempts": 2, "base_delay": 0.01, "max_delay": 0.05}


class Spy:
    """Sits between intake and the real engine: records, then forwards."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.calls: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        self.calls.append((issue_id_or_key, reason))
        self._changed.set()
        await self.engine.local_change(issue_id_or_key, reason=reason)

    async def wait_for(self, call: tuple[str, str], within: float = 10.0) -> None:
        async def until() -> None:
            while call not in self.calls:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), within)


class Site:
    def __init__(self, emu: JiraEmulator, url: str) -> None:
        self.emu = emu
        self.url = url
        self.human = JiraAdapter(url, deployment="server", user="jane.human", token=HUMAN_PASSWORD, **FAST)

    async def hooks(self) -> list[dict[str, Any]]:
        auth = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{self.url}/rest/webhooks/1.0/webhook", headers={"Authorization": auth}) as resp,
        ):
            body: list[dict[str, Any]] = await resp.json()
            return body


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    emu = JiraEmulator(mode="server", user="admin", password=ADMIN_PASSWORD, state_file=None)
    url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("jane.human", password=HUMAN_PASSWORD, display_name="Jane Human", email="j@x.org")
    emu.state.add_project(PROJECT, lead="admin")
    s = Site(emu, url)
    try:
        yield s
    finally:
        await s.human.close()
        await emu.stop()


StartNode = Callable[..., Coroutine[Any, Any, Node]]


@pytest.fixture
async def start_node(tmp_path: Path, site: Site) -> AsyncIterator[StartNode]:
    running: list[Node] = []

    async def start(*, public: bool = True, token: str | None = ADMIN_PASSWORD, **tracker: Any) -> Node:
        home = Home(tmp_path / "node")
        section: dict[str, Any] = {
            "kind": "jira-server",
            "url": site.url,
            "user": "admin",
            "projects": [PROJECT],
            "poll_seconds": 0.1,
            "reconcile_seconds": 0,
            "retry_max_seconds": 0.2,
            **tracker,
        }
        if token is not None:
            section["token"] = token
        data = {
            "node": {"name": "Support"},
            "peer": {"mode": "public" if public else "private", "listen": "127.0.0.1:0"},
            "admin": {"listen": "127.0.0.1:0"},
            "tracker": section,
        }
        config = parse_config(data)
        if not home.exists():
            home.create(config)
        else:
            home.config_path.write_text(config.to_toml())
        node = Node(home, config, home.load_identity(), home.admin_token())
        node.adapter_options = dict(FAST)
        running.append(node)
        await node.start()
        return node

    yield start
    for node in running:
        await node.stop()


def spy_on(node: Node) -> Spy:
    assert node.intake is not None and node.engine is not None
    spy = Spy(node.engine)
    node.intake.sink = spy
    return spy


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def get_json(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, await resp.json()


async def test_webhook_registered_at_start_delivers_to_the_engine_and_restarts_do_not_pile_up(
    start_node: StartNode, site: Site
) -> None:
    node = await start_node()
    assert node.intake is not None and node.peer_url is not None
    await until(lambda: node.intake is not None and node.intake.webhook_state == "registered")
    hooks = await site.hooks()
    assert [h["url"] for h in hooks] == [node.peer_url + str(node.intake.webhook_path)]
    spy = spy_on(node)

    issue = await site.human.create_issue(PROJECT, IssueUpdate(summary="customer cannot log in"))
    await spy.wait_for((issue.id, "webhook"))  # emulator → POST /webhooks/<secret> → intake → engine

    status, health = await get_json(node.peer_url + "/healthz")
    assert status == 200 and health["tracker"] == "ok"

    await node.stop()
    again = await start_node()
    assert again.intake is not None
    await until(lambda: again.intake is not None and again.intake.webhook_state == "registered")
    hooks = await site.hooks()
    assert len(hooks) == 1 and hooks[0]["url"] == str(again.peer_url) + str(again.intake.webhook_path)
    spy = spy_on(again)
    await site.human.update_issue(issue.key, IssueUpdate(summary="customer still cannot log in"))
    await spy.wait_for((issue.id, "webhook"))


async def test_bad_webhook_deliveries_are_400_json_and_counted(start_node: StartNode) -> None:
    node = await start_node(webhooks="off")
    assert node.intake is not None and node.peer_url is not None
    await until(lambda: node.intake is not None and node.intake.webhook_path is not None)
    good_path = node.peer_url + str(node.intake.webhook_path)
    bodies = [b"", b"not json", b"[1, 2]", b'{"webhookEvent": "jira:issue_updated"}', b"\xff\xfe"]
    async with aiohttp.ClientSession() as s:
        for body in bodies:
            async with s.post(good_path, data=body) as resp:
                assert resp.status == 400
                error = (await resp.json())["error"]
                assert error["code"] == "bad_webhook" and "Jira webhook" in error["message"]
        async with s.post(node.peer_url + "/webhooks/a-guess", data=b"{}") as resp:
            assert resp.status == 404
            assert "Traceback" not in await resp.text()
        async with s.get(f"{node.admin_url}/metrics") as resp:
            metrics = await resp.text()
    assert 'tandem_webhook_rejected_total{reason="invalid"} 5.0' in metrics
    assert 'tandem_webhook_rejected_total{reason="unknown_path"} 1.0' in metrics
    assert 'tandem_tracker_state{state="ok"}' in metrics


async def test_wrong_credentials_say_so_clearly_and_the_node_keeps_running(
    start_node: StartNode, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        node = await start_node(token="not-the-token")
        assert node.intake is not None and node.peer_url is not None
        await until(lambda: node.intake is not None and node.intake.state == "auth_failed")
    expected = f"tracker: Jira Server at {site.url}: the credentials for user 'admin' were rejected (401)"
    messages = [r.getMessage() for r in caplog.records]
    assert expected in messages
    assert not any("not-the-token" in m for m in messages)
    status, health = await get_json(node.peer_url + "/healthz")
    assert status == 200 and health["tracker"] == "auth_failed" and health["status"] == "degraded"
    assert node.admin_url is not None
    status, health = await get_json(node.admin_url + "/healthz")  # the node itself still serves
    assert status == 200 and health["status"] == "degraded"
    assert health["tracker"]["state"] == "auth_failed" and "message" not in health["tracker"]


async def test_token_from_the_environment_and_a_clear_error_without_one(
    start_node: StartNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TANDEM_TEST_TRACKER_TOKEN", raising=False)
    with pytest.raises(HomeError, match=r"set the environment variable TANDEM_TEST_TRACKER_TOKEN"):
        await start_node(token=None, token_env="TANDEM_TEST_TRACKER_TOKEN")
    monkeypatch.setenv("TANDEM_TEST_TRACKER_TOKEN", ADMIN_PASSWORD)
    node = await start_node(token=None, token_env="TANDEM_TEST_TRACKER_TOKEN")
    await until(lambda: node.intake is not None and node.intake.state == "ok")


def stored(home: Home, key: str) -> str | None:
    with contextlib.closing(sqlite3.connect(home.db_path)) as c:
        return get_cursor(c, key)


async def test_polling_finds_changes_made_while_webhooks_were_off_and_the_node_was_down(
    start_node: StartNode, site: Site
) -> None:
    node = await start_node(public=False, webhooks="off")
    assert node.intake is not None and node.intake.webhook_state == "off"
    spy = spy_on(node)
    first = await site.human.create_issue(PROJECT, IssueUpdate(summary="before"))
    await spy.wait_for((first.id, "poll"))
    await until(lambda: stored(node.home, CURSOR_POLL) is not None)
    assert await site.hooks() == []
    await node.stop()
    cursor_before = stored(node.home, CURSOR_POLL)
    assert cursor_before is not None and stored(node.home, CURSOR_WEBHOOK) is None

    missed = await site.human.create_issue(PROJECT, IssueUpdate(summary="while the node was down"))
    again = await start_node(public=False, webhooks="off")
    spy = spy_on(again)
    again.intake.poll_now()  # type: ignore[union-attr]
    await spy.wait_for((missed.id, "poll"))
    await until(lambda: (stored(again.home, CURSOR_POLL) or "") > cursor_before)


async def echo_count(node: Node) -> float:
    async with aiohttp.ClientSession() as s, s.get(f"{node.admin_url}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith('tandem_intake_changes_total{reason="echo_skipped"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_each_comment_change_arrives_once_and_the_nodes_own_comment_is_an_echo(
    start_node: StartNode, site: Site
) -> None:
    node = await start_node(poll_seconds=3600, poll_seconds_webhooks=3600)
    intake = node.intake
    assert intake is not None and node.adapter is not None
    await until(lambda: intake.webhook_state == "registered")
    (hook,) = await site.hooks()
    assert sorted(hook["events"]) == ["jira:issue_created", "jira:issue_deleted", "jira:issue_updated"]
    issue = await site.human.create_issue(PROJECT, IssueUpdate(summary="comments only once"))
    await site.emu.drain_webhooks()
    await intake.idle()

    parsed: list[TrackerEvent] = []
    parse = node.adapter.parse_webhook

    def recording(headers: Any, body: bytes) -> list[TrackerEvent]:
        events = parse(headers, body)
        parsed.extend(events)
        return events

    node.adapter.parse_webhook = recording  # type: ignore[method-assign]
    spy = spy_on(node)
    jane = (await site.human.check()).user

    comment = await site.human.add_comment(issue.key, from_plain_text("a person speaks"))
    await site.human.update_comment(issue.key, comment.id, from_plain_text("a person corrects"))
    await site.human.delete_comment(issue.key, comment.id)
    await site.emu.drain_webhooks()
    await intake.idle()
    assert [(e.kind, e.issue_id, e.comment_id) for e in parsed] == [
        ("comment_created", issue.id, comment.id),
        ("comment_updated", issue.id, comment.id),
        ("comment_deleted", issue.id, comment.id),
    ]
    assert all(e.actor is not None and e.actor.username == jane.username for e in parsed)
    assert spy.calls and set(spy.calls) == {(issue.id, "webhook")}

    echoes = await echo_count(node)
    parsed.clear()
    spy.calls.clear()
    own = await node.adapter.add_comment(issue.key, from_plain_text("the node writes"))
    await site.emu.drain_webhooks()
    await intake.idle()
    assert [(e.kind, e.comment_id) for e in parsed] == [("comment_created", own.id)]
    assert await echo_count(node) == echoes + 1
    assert spy.calls == []


async def test_a_delivery_is_answered_with_the_number_of_events_taken(
    start_node: StartNode, vendor_data: Path
) -> None:
    node = await start_node(webhooks="off")
    assert node.intake is not None and node.peer_url is not None
    await until(lambda: node.intake is not None and node.intake.webhook_path is not None)
    url = node.peer_url + str(node.intake.webhook_path)
    recorded = (vendor_data / "dev/jira-webhooks/webhook-server-comment-updated.json").read_bytes()
    async with aiohttp.ClientSession() as s:
        for body, accepted in ((recorded, 1), (b'{"webhookEvent": "worklog_updated"}', 0)):
            async with s.post(url, data=body) as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                assert await resp.json() == {"accepted": accepted}


async def test_a_private_node_takes_its_deliveries_on_the_webhook_only_listener(
    start_node: StartNode, site: Site
) -> None:
    node = await start_node(
        public=False, webhook_listen="127.0.0.1:0", poll_seconds=3600, poll_seconds_webhooks=3600
    )
    intake = node.intake
    assert intake is not None and node.adapter is not None and node.peer_url is None
    await until(lambda: intake.webhook_state == "registered")
    (hook,) = await site.hooks()
    assert hook["url"].startswith("http://127.0.0.1:") and hook["url"].endswith(str(intake.webhook_path))
    listener = hook["url"].removesuffix(str(intake.webhook_path))
    spy = spy_on(node)

    issue = await site.human.create_issue(PROJECT, IssueUpdate(summary="reached a private node"))
    await spy.wait_for((issue.id, "webhook"))  # emulator → the listener → intake → engine
    echoes = await echo_count(node)
    spy.calls.clear()
    await node.adapter.add_comment(issue.key, from_plain_text("the node writes"))
    await site.emu.drain_webhooks()
    await intake.idle()
    assert await echo_count(node) == echoes + 1 and spy.calls == []

    async with aiohttp.ClientSession() as s:
        async with s.post(listener + "/webhooks/a-guess", data=b"{}") as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
        async with s.post(hook["url"], data=b"not json") as resp:
            assert resp.status == 400 and "Jira webhook" in (await resp.json())["error"]["message"]
        async with s.get(f"{node.admin_url}/metrics") as resp:
            metrics = await resp.text()
    assert 'tandem_webhook_rejected_total{reason="unknown_path"} 1.0' in metrics
    assert 'tandem_webhook_rejected_total{reason="invalid"} 1.0' in metrics
