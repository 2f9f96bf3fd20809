"""The adapter contract, run against the Jira emulator in Cloud and in Server mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator
from tests.adapters.contract import AdapterContract, Capabilities, RateLimit

ADMIN_PASSWORD = "admin-api-token"
HUMAN_PASSWORD = "jane-personal-token"
PROJECT = "TAN"

FAST_RETRIES: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05}


@pytest.fixture(params=["cloud", "server"])
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[tuple[JiraEmulator, str]]:
    emu = JiraEmulator(mode=request.param, user="admin", password=ADMIN_PASSWORD, state_file=None)
    base_url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user(
        "jane.human", password=HUMAN_PASSWORD, display_name="Jane Human", email="jane@example.com"
    )
    emu.state.add_project(PROJECT, lead="admin", components=["Backend", "Frontend"], versions=["1.0", "2.0"])
    try:
        yield emu, base_url
    finally:
        await emu.stop()


def make_adapter(emu: JiraEmulator, base_url: str, login: str, password: str, **kw: Any) -> JiraAdapter:
    options = {**FAST_RETRIES, **kw}
    if emu.state.mode == "server" and login != "admin":
        # Server/DC: exercise personal access tokens (bearer) for the human
        return JiraAdapter(base_url, deployment="server", user=None, token=password, auth="bearer", **options)
    return JiraAdapter(base_url, deployment=emu.state.mode, user=login, token=password, **options)


@pytest.fixture
async def adapter(emulator: tuple[JiraEmulator, str]) -> AsyncIterator[JiraAdapter]:
    emu, base_url = emulator
    # Cloud logs in with the account email, Server with the username
    login = "admin@example.com" if emu.state.mode == "cloud" else "admin"
    a = make_adapter(emu, base_url, login, ADMIN_PASSWORD)
    yield a
    await a.close()


@pytest.fixture
async def as_human(emulator: tuple[JiraEmulator, str]) -> AsyncIterator[JiraAdapter]:
    emu, base_url = emulator
    a = make_adapter(emu, base_url, "jane@example.com", HUMAN_PASSWORD)
    yield a
    await a.close()


@pytest.fixture
async def bad_adapter(emulator: tuple[JiraEmulator, str]) -> AsyncIterator[JiraAdapter]:
    emu, base_url = emulator
    a = JiraAdapter(base_url, deployment=emu.state.mode, user="admin", token="wrong-token", **FAST_RETRIES)
    yield a
    await a.close()


@pytest.fixture
def project() -> str:
    return PROJECT


@pytest.fixture
def capabilities() -> Capabilities:
    return Capabilities(
        internal_comments=True,
        target_status="Done",
        target_category="done",
        priorities=("High", "Low"),
        issue_types=("Task", "Bug"),
        components=("Backend", "Frontend"),
        versions=("1.0", "2.0"),
        custom_fields=(
            ("customfield_10016", 5, 5.0),  # number
            ("customfield_10050", "ACME Corp", "ACME Corp"),  # text
            ("customfield_10051", "S2", "S2"),  # select
            ("customfield_10052", ["Linux", "Windows"], ["Linux", "Windows"]),  # multiselect
            ("customfield_10054", "root cause text", "root cause text"),  # textarea (wiki / ADF)
            ("customfield_10055", "2030-01-02", "2030-01-02"),  # date
        ),
        missing_key=f"{PROJECT}-999999",
        query_project=lambda p: f'project = "{p}" ORDER BY created ASC',
    )


@pytest.fixture
async def rate_limit(emulator: tuple[JiraEmulator, str]) -> AsyncIterator[RateLimit]:
    _emu, base_url = emulator
    async with aiohttp.ClientSession() as session:

        async def inject(times: int, retry_after: float) -> None:
            spec = {"rate_limit": {"next_n_429": times, "retry_after": retry_after}}
            async with session.post(f"{base_url}/_emulator/faults", json=spec) as resp:
                assert resp.status < 300, await resp.text()

        yield inject
        async with session.delete(f"{base_url}/_emulator/faults") as resp:
            assert resp.status < 300


class TestJiraContract(AdapterContract):
    pass
