"""The adapter contract, run against the GitHub emulator.

GitHub differs from the contract's defaults only in ways :class:`Capabilities` expresses: no
internal comments, no deletion, status ``closed``, no priority, issue type, due date or affects
versions, no attachment API (uploads are refused), and rate limits answered with 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from node.trackers.base import TrackerAdapter
from node.trackers.github import GitHubAdapter
from node.trackers.github.emulator import GitHubEmulator
from tests.adapters.contract import AdapterContract, Capabilities, RateLimit

PROXY_TOKEN = "ghp_proxy_token"
HUMAN_TOKEN = "ghp_jane_token"
PROJECT = "tandem-bot/tracker"

FAST_RETRIES: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[GitHubEmulator, str]]:
    emu = GitHubEmulator(user="tandem-bot", token=PROXY_TOKEN, name="Tandem Bot")
    base_url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("jane-human", token=HUMAN_TOKEN, name="Jane Human", email="jane@example.com")
    emu.state.create_repo("tandem-bot", "tracker")
    try:
        yield emu, base_url
    finally:
        await emu.stop()


@pytest.fixture
async def adapter(emulator: tuple[GitHubEmulator, str]) -> AsyncIterator[GitHubAdapter]:
    a = GitHubAdapter(emulator[1], token=PROXY_TOKEN, repos=[PROJECT], **FAST_RETRIES)
    yield a
    await a.close()


@pytest.fixture
async def as_human(emulator: tuple[GitHubEmulator, str]) -> AsyncIterator[GitHubAdapter]:
    # the GitHub Enterprise style root, so both base URL forms are exercised
    a = GitHubAdapter(emulator[1] + "/api/v3", token=HUMAN_TOKEN, repos=[PROJECT], **FAST_RETRIES)
    yield a
    await a.close()


@pytest.fixture
async def bad_adapter(emulator: tuple[GitHubEmulator, str]) -> AsyncIterator[GitHubAdapter]:
    a = GitHubAdapter(emulator[1], token="ghp_wrong", repos=[PROJECT], **FAST_RETRIES)
    yield a
    await a.close()


@pytest.fixture
def project() -> str:
    return PROJECT


@pytest.fixture
def capabilities() -> Capabilities:
    return Capabilities(
        query_project=lambda p: f"repo:{p} state:all sort:created order:asc",
        missing_key=f"{PROJECT}#999999",
        internal_comments=False,
        can_delete=False,
        target_status="closed",
        target_category="done",
        priorities=(),
        issue_types=(),
        versions=("1.0", "2.0"),
        due_dates=False,
        affects_versions=False,
        attachments=False,
        rate_limit_status=403,
    )


@pytest.fixture
async def rate_limit(emulator: tuple[GitHubEmulator, str]) -> AsyncIterator[RateLimit]:
    base_url = emulator[1]
    async with aiohttp.ClientSession() as session:

        async def inject(times: int, retry_after: float) -> None:
            spec = {"secondary": {"next_n": times, "retry_after": retry_after, "status": 403}}
            async with session.post(f"{base_url}/_emulator/faults", json=spec) as resp:
                assert resp.status < 300, await resp.text()

        yield inject
        async with session.delete(f"{base_url}/_emulator/faults") as resp:
            assert resp.status < 300


class TestGitHubContract(AdapterContract):
    async def test_milestone_is_the_fix_version(self, adapter: TrackerAdapter, project: str) -> None:
        """GitHub only: the milestone is also shown as the custom field ``milestone``."""
        issue = await self.new_issue(adapter, project, fix_versions=["1.0"])
        snap = await adapter.get_issue(issue.key)
        assert snap.fix_versions == ["1.0"]
        assert snap.custom_fields["milestone"] == "1.0" and snap.field_names["milestone"]
