"""A node beside the GitHub emulator: the webhook is registered with a signing secret, signed
deliveries reach the engine, unsigned or mis-signed ones are refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from node.app import Node
from node.config import parse_config
from node.home import Home
from node.trackers.base import IssueUpdate
from node.trackers.github import GitHubAdapter
from node.trackers.github.emulator import GitHubEmulator

from .test_node import FAST, Spy, spy_on, until

BOT_TOKEN = "ghp_bot_token"
HUMAN_TOKEN = "ghp_human_token"
REPO = "bot/tracker"


@pytest.fixture
async def github() -> AsyncIterator[str]:
    emu = GitHubEmulator(user="bot", token=BOT_TOKEN, name="Tandem Bot")
    url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("jane", token=HUMAN_TOKEN, name="Jane Human", email="jane@example.com")
    emu.state.create_repo("bot", "tracker")
    try:
        yield url
    finally:
        await emu.stop()


@pytest.fixture
async def node(tmp_path: Path, github: str) -> AsyncIterator[Node]:
    data = {
        "node": {"name": "Engineering"},
        "peer": {"mode": "public", "listen": "127.0.0.1:0"},
        "admin": {"listen": "127.0.0.1:0"},
        "tracker": {
            "kind": "github",
            "url": github,
            "token": BOT_TOKEN,
            "projects": [REPO],
            "poll_seconds": 0.2,
            "reconcile_seconds": 0,
        },
    }
    config = parse_config(data)
    home = Home(tmp_path / "node")
    home.create(config)
    n = Node(home, config, home.load_identity(), home.admin_token())
    n.adapter_options = dict(FAST)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def test_signed_webhooks_from_github_reach_the_engine(node: Node, github: str) -> None:
    await until(lambda: node.intake is not None and node.intake.webhook_state == "registered")
    spy: Spy = spy_on(node)
    human = GitHubAdapter(github, token=HUMAN_TOKEN, repos=[REPO], **FAST)
    try:
        issue = await human.create_issue(REPO, IssueUpdate(summary="widget breaks on resize"))
    finally:
        await human.close()
    await spy.wait_for((issue.id, "webhook"))

    assert node.peer_url is not None and node.intake is not None
    url = node.peer_url + str(node.intake.webhook_path)
    body = json.dumps({"action": "edited", "issue": {"number": 1}}).encode()
    async with aiohttp.ClientSession() as s:
        for signature in (None, "sha256=" + "0" * 64):
            headers = {"X-GitHub-Event": "issues", "Content-Type": "application/json"}
            if signature:
                headers["X-Hub-Signature-256"] = signature
            async with s.post(url, data=body, headers=headers) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "bad_webhook"
        async with s.get(f"{node.admin_url}/metrics") as resp:
            metrics = await resp.text()
    assert 'tandem_webhook_rejected_total{reason="signature"} 2.0' in metrics
