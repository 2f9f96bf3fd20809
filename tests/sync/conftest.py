"""Two real nodes beside two Jira emulators, paired through the real ConnectionManager.

* "support": a Jira Cloud emulator, project SUP on the support workflow (Open → Accept → Root Cause →
  Provide Workaround → Resolve → Close), node A (public).
* "engineering": a Jira Server emulator, project ENG on the simple workflow, node B (private: it
  dials A).

Each node has a JiraAdapter (as the proxy user "admin") and a SyncEngine; intake does not exist
here, so tests call ``engine.local_change(key)`` where a webhook would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from node.app import Node
from node.config import parse_config
from node.home import Home
from node.sync.engine import SyncEngine
from node.sync.settings import SyncSettings
from node.trackers.base import IssueUpdate
from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator

ADMIN_PASSWORD = "admin-api-token"
FAST: dict[str, Any] = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, within: float = 10.0, what: str = "") -> T:
    """Poll ``check`` (every 20 ms, at most ``within`` s) until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


@dataclass
class Side:
    name: str
    emu: JiraEmulator
    base_url: str
    node: Node
    adapter: JiraAdapter  # the proxy user's adapter, shared with the engine
    human: JiraAdapter  # a person editing issues
    engine: SyncEngine
    project: str
    connection: str = ""
    settings: SyncSettings | None = None

    async def restart_engine(self, settings: SyncSettings | None = None, *, start: bool = True) -> SyncEngine:
        """Stop the engine (as a crash would leave things) and start a fresh one on the same store
        (``start=False``: made, not started yet)."""
        await self.engine.stop()
        self.engine = SyncEngine(
            self.node.db,
            self.node.manager,
            self.adapter,
            node_name=self.name,
            settings=settings or self.settings or SyncSettings(),
        )
        if start:
            await self.engine.start()
        return self.engine

    async def create(self, summary: str, **fields: Any) -> str:
        issue = await self.human.create_issue(self.project, IssueUpdate(summary=summary, **fields))
        return issue.key

    def twin_keys(self) -> list[str]:
        return sorted(i.key for i in self.emu.state.issues.values() if i.project == self.project)


@dataclass
class Pair:
    support: Side
    engineering: Side

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until both engines have processed everything delivered to them."""
        await self.support.engine.idle(timeout)
        await self.engineering.engine.idle(timeout)

    async def twin_of(self, side: Side, key: str, *, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The key of ``key``'s twin on the other side, once the peer reported it."""

        async def check() -> str | None:
            views = await side.engine.status(key)
            return views[0].remote_key if views and views[0].remote_key else None

        return await eventually(check, within=timeout, what=f"the twin of {key}")


async def _site(
    mode: str, project: str, workflow: str, humans: list[tuple[str, str, str]]
) -> tuple[JiraEmulator, str]:
    emu = JiraEmulator(mode=mode, user="admin", password=ADMIN_PASSWORD, state_file=None)  # type: ignore[arg-type]
    base_url = await emu.start(host="127.0.0.1", port=0)
    for login, display, email in humans:
        emu.state.add_user(login, password=f"{login}-pw", display_name=display, email=email)
    emu.state.add_project(project, lead="admin", workflow=workflow, components=["Backend", "Frontend", "API"])
    return emu, base_url


def _adapter(emu: JiraEmulator, base_url: str, login: str, password: str) -> JiraAdapter:
    mode = emu.state.mode
    return JiraAdapter(base_url, deployment=mode, user=login, token=password, **FAST)


async def _node(tmp: Path, name: str, *, public: bool) -> Node:
    data: dict[str, Any] = {
        "node": {"name": name},
        "peer": {"mode": "public", "listen": "127.0.0.1:0"} if public else {"mode": "private"},
        "admin": {"listen": "127.0.0.1:0"},
    }
    config = parse_config(data, "test")
    home = Home(tmp / name.lower())
    identity = home.create(config)
    node = Node(home, home.load_config(), identity, home.admin_token())
    await node.start()
    return node


@pytest.fixture
def sync_settings() -> tuple[SyncSettings, SyncSettings]:
    """(support, engineering) settings; override in a test module to change them."""
    return SyncSettings(retry_base_seconds=0.05), SyncSettings(retry_base_seconds=0.05)


@pytest.fixture
async def pair(tmp_path: Path, sync_settings: tuple[SyncSettings, SyncSettings]) -> AsyncIterator[Pair]:
    sup_emu, sup_url = await _site(
        "cloud",
        "SUP",
        "support",
        [
            ("jane.agent", "Jane Agent", "jane@support.example"),
            ("sam.shared", "Sam Shared", "sam@shared.example"),
        ],
    )
    eng_emu, eng_url = await _site(
        "server",
        "ENG",
        "simple",
        [
            ("eng.dev", "Eve Developer", "eve@eng.example"),
            ("sam.shared", "Sam Shared", "sam@shared.example"),
            ("eng.triage", "Triage Engineer", "triage@eng.example"),
        ],
    )
    node_a = await _node(tmp_path, "Support", public=True)
    node_b = await _node(tmp_path, "Engineering", public=False)
    code, _ = await node_a.manager.invite(name="to-eng", project="SUP")
    rt_b = await node_b.manager.accept(code, name="to-sup", project="ENG", wait_seconds=10)
    assert rt_b.row.state == "active", rt_b.row.error

    async def active() -> bool:
        return node_a.manager.get("to-eng").row.state == "active"

    await eventually(active, what="the inviter side to become active")
    sup_admin = _adapter(sup_emu, sup_url, "admin@example.com", ADMIN_PASSWORD)
    eng_admin = _adapter(eng_emu, eng_url, "admin", ADMIN_PASSWORD)
    sup_settings, eng_settings = sync_settings
    eng_a = SyncEngine(node_a.db, node_a.manager, sup_admin, node_name="Support", settings=sup_settings)
    eng_b = SyncEngine(node_b.db, node_b.manager, eng_admin, node_name="Engineering", settings=eng_settings)
    await eng_a.start()
    await eng_b.start()
    support = Side(
        "Support",
        sup_emu,
        sup_url,
        node_a,
        sup_admin,
        _adapter(sup_emu, sup_url, "jane.agent", "jane.agent-pw"),
        eng_a,
        "SUP",
        "to-eng",
        sup_settings,
    )
    engineering = Side(
        "Engineering",
        eng_emu,
        eng_url,
        node_b,
        eng_admin,
        _adapter(eng_emu, eng_url, "eng.dev", "eng.dev-pw"),
        eng_b,
        "ENG",
        "to-sup",
        eng_settings,
    )
    try:
        yield Pair(support, engineering)
    finally:
        for side in (support, engineering):
            await side.engine.stop()
        for side in (support, engineering):
            await side.node.stop()
            await side.adapter.close()
            await side.human.close()
            await side.emu.stop()
