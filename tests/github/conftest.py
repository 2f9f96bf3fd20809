"""Fixtures for the GitHub adapter and emulator suites: a started emulator with a proxy user, a
human user and a repository; the OpenAPI description loaded once per session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.trackers.github import GitHubAdapter
from node.trackers.github.emulator import GitHubEmulator

BOT_TOKEN = "ghp_bot_token"
HUMAN_TOKEN = "ghp_human_token"
REPO = "bot/tracker"
FAST: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05}


@dataclass
class Site:
    emu: GitHubEmulator
    url: str

    def headers(self, token: str = BOT_TOKEN) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    emu = GitHubEmulator(user="bot", token=BOT_TOKEN, name="Tandem Bot")
    url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("jane", token=HUMAN_TOKEN, name="Jane Human", email="jane@example.com")
    emu.state.create_repo("bot", "tracker")
    try:
        yield Site(emu, url)
    finally:
        await emu.stop()


@pytest.fixture
async def http(site: Site) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=site.url, headers=site.headers()) as session:
        yield session


@pytest.fixture
async def adapter(site: Site) -> AsyncIterator[GitHubAdapter]:
    a = GitHubAdapter(site.url, token=BOT_TOKEN, repos=[REPO], **FAST)
    yield a
    await a.close()


@pytest.fixture
async def human(site: Site) -> AsyncIterator[GitHubAdapter]:
    a = GitHubAdapter(site.url, token=HUMAN_TOKEN, repos=[REPO], **FAST)
    yield a
    await a.close()


@pytest.fixture(scope="session")
def github_openapi(vendor_data: Path) -> dict[str, Any]:
    with (vendor_data / "dev" / "github" / "api.github.com.json").open(encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec
