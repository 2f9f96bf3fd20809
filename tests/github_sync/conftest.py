"""A Jira Cloud emulator project synced with a GitHub emulator repository, by two real nodes.

* "jira": a Jira Cloud emulator, project SUP on a "triage" workflow (To Do, In Progress, Done, Won't
  Do — every transition global), node A (public), connection ``to-gh``.
* "github": a GitHub emulator, repository ``bot/tracker``, node B (private: it dials A), connection
  ``to-jira``.

Each node has its tracker adapter as the proxy user (Jira ``admin``, GitHub ``bot``) and a
SyncEngine; tests call ``engine.local_change(key)`` where a webhook or a poll would.
Mirrors ``tests/sync/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.app import Node
from node.sync.engine import SyncEngine
from node.sync.settings import SyncSettings
from node.trackers.base import IssueUpdate, TrackerAdapter
from node.trackers.github import GitHubAdapter
from node.trackers.github.emulator import GitHubEmulator
from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.state import Workflow, WorkflowTransition
from tests.sync.conftest import ADMIN_PASSWORD, FAST, _node, eventually

BOT_TOKEN = "ghp_tandem_bot"
HUMAN_TOKEN = "ghp_jane_human"
REPO = "bot/tracker"
JIRA_PROJECT = "SUP"


@dataclass
class Side:
    name: str
    node: Node
    adapter: TrackerAdapter  # the proxy user's adapter, shared with the engine
    human: TrackerAdapter  # a person editing issues
    engine: SyncEngine
    project: str
    connection: str

    async def create(self, summary: str, **fields: Any) -> str:
        issue = await self.human.create_issue(self.project, IssueUpdate(summary=summary, **fields))
        return issue.key

    async def publish(self, direction: str, source: str) -> None:
        await self.engine.save_draft(self.connection, direction, "visual", source)  # type: ignore[arg-type]
        await self.engine.publish(self.connection, direction)  # type: ignore[arg-type]

    async def sent_nothing(self, key: str) -> bool:
        """A second local change (the webhook of our own write) sends nothing."""
        views = await self.engine.status(key)
        before = views[0].last_sent_version if views else None
        await self.engine.local_change(key)
        views = await self.engine.status(key)
        return (views[0].last_sent_version if views else None) == before


@dataclass
class Pair:
    jira: Side
    github: Side
    jira_emu: JiraEmulator
    github_emu: GitHubEmulator

    async def settle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.jira.engine.idle(timeout)
        await self.github.engine.idle(timeout)

    async def twin_of(self, side: Side, key: str, *, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        async def check() -> str | None:
            views = await side.engine.status(key)
            return views[0].remote_key if views and views[0].remote_key else None

        return await eventually(check, within=timeout, what=f"the twin of {key}")

    def jira_account(self, login: str) -> str:
        return self.jira_emu.state.users[login].account_id


def _jira() -> JiraEmulator:
    emu = JiraEmulator(mode="cloud", user="admin", password=ADMIN_PASSWORD, state_file=None)
    st = emu.state
    wont = st.add_status("Won't Do", "done")
    st.add_workflow(
        Workflow(
            name="triage",
            initial="10000",
            statuses=["10000", "3", "10001", wont.id],
            transitions=[
                WorkflowTransition(id="11", name="To Do", to="10000"),
                WorkflowTransition(id="21", name="In Progress", to="3"),
                WorkflowTransition(id="31", name="Done", to="10001"),
                WorkflowTransition(id="41", name="Won't Do", to=wont.id),
            ],
        )
    )
    st.add_user(
        "jane.agent", password="jane.agent-pw", display_name="Jane Agent", email="jane@support.example"
    )
    st.add_user("sam.shared", password="sam.shared-pw", display_name="Sam Shared", email="sam@shared.example")
    st.add_project(JIRA_PROJECT, lead="admin", workflow="triage", components=["Backend", "Frontend"])
    return emu


def _github() -> GitHubEmulator:
    emu = GitHubEmulator(user="bot", token=BOT_TOKEN, name="Tandem Bot")
    emu.state.add_user("jane", token=HUMAN_TOKEN, name="Jane Human", email="jane@github.example")
    emu.state.add_user("triage-bot", name="Triage", email="triage@github.example")
    emu.state.create_repo("bot", "tracker")
    return emu


@pytest.fixture
async def gh_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    jira_emu, github_emu = _jira(), _github()
    jira_url = await jira_emu.start(host="127.0.0.1", port=0)
    github_url = await github_emu.start(host="127.0.0.1", port=0)
    node_a = await _node(tmp_path, "Support", public=True)
    node_b = await _node(tmp_path, "OpenSource", public=False)
    code, _ = await node_a.manager.invite(name="to-gh", project=JIRA_PROJECT)
    rt_b = await node_b.manager.accept(code, name="to-jira", project=REPO, wait_seconds=10)
    assert rt_b.row.state == "active", rt_b.row.error

    async def active() -> bool:
        return node_a.manager.get("to-gh").row.state == "active"

    await eventually(active, what="the inviter side to become active")
    jira_admin = JiraAdapter(
        jira_url, deployment="cloud", user="admin@example.com", token=ADMIN_PASSWORD, **FAST
    )
    jira_human = JiraAdapter(jira_url, deployment="cloud", user="jane.agent", token="jane.agent-pw", **FAST)
    gh_bot = GitHubAdapter(github_url, token=BOT_TOKEN, repos=[REPO], **FAST)
    gh_human = GitHubAdapter(github_url, token=HUMAN_TOKEN, repos=[REPO], **FAST)
    settings = SyncSettings(retry_base_seconds=0.05)
    eng_a = SyncEngine(node_a.db, node_a.manager, jira_admin, node_name="Support", settings=settings)
    eng_b = SyncEngine(node_b.db, node_b.manager, gh_bot, node_name="OpenSource", settings=settings)
    await eng_a.start()
    await eng_b.start()
    jira = Side("Jira", node_a, jira_admin, jira_human, eng_a, JIRA_PROJECT, "to-gh")
    github = Side("GitHub", node_b, gh_bot, gh_human, eng_b, REPO, "to-jira")
    try:
        yield Pair(jira, github, jira_emu, github_emu)
    finally:
        for side in (jira, github):
            await side.engine.stop()
        for side in (jira, github):
            await side.node.stop()
            await side.adapter.close()
            await side.human.close()
        await jira_emu.stop()
        await github_emu.stop()
