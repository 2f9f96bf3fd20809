"""Fixtures for the Jira adapter's own tests: an emulated site with a proxy user and a human."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator

ADMIN_PASSWORD = "admin-api-token"
HUMAN_PASSWORD = "jane-personal-token"
PROJECT = "TAN"
FAST_RETRIES: dict[str, Any] = {"max_attempts": 4, "base_delay": 0.01, "max_delay": 0.05}


@dataclass
class Site:
    emu: JiraEmulator
    base_url: str
    admin: JiraAdapter
    human: JiraAdapter

    @property
    def mode(self) -> str:
        return str(self.emu.state.mode)

    def adapter(self, **options: Any) -> JiraAdapter:
        login = "admin@example.com" if self.mode == "cloud" else "admin"
        settings: dict[str, Any] = {"user": login, "token": ADMIN_PASSWORD, **FAST_RETRIES, **options}
        return JiraAdapter(self.base_url, deployment=self.emu.state.mode, **settings)


@pytest.fixture(params=["cloud", "server"])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    emu = JiraEmulator(mode=request.param, user="admin", password=ADMIN_PASSWORD, state_file=None)
    base_url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user(
        "jane.human", password=HUMAN_PASSWORD, display_name="Jane Human", email="jane@example.com"
    )
    emu.state.add_project(PROJECT, lead="admin")
    mode = emu.state.mode
    login = "admin@example.com" if mode == "cloud" else "admin"
    admin = JiraAdapter(base_url, deployment=mode, user=login, token=ADMIN_PASSWORD, **FAST_RETRIES)
    human = JiraAdapter(base_url, deployment=mode, user="jane.human", token=HUMAN_PASSWORD, **FAST_RETRIES)
    try:
        yield Site(emu, base_url, admin, human)
    finally:
        await admin.close()
        await human.close()
        await emu.stop()
