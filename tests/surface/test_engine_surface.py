"""The sync commands end to end: two in-process nodes, each configured with a ``[tracker]`` (a Jira
emulator: Cloud for support, Server for engineering), paired; everything is driven through the real
`tandem` CLI and the real admin API, and checked in the emulators."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from node.app import Node
from node.config import parse_config
from node.home import Home
from node.trackers.base import IssueUpdate
from node.trackers.jira import JiraAdapter
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.faults import Faults
from tests.surface.conftest import Api, Cli, make_cli

PASSWORD = "admin-api-token"
FAST: dict[str, Any] = {"max_attempts": 3, "base_delay": 0.01, "max_delay": 0.05}
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = 15.0) -> T:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: last {last!r}")


@dataclass
class Side:
    node: Node
    emu: JiraEmulator
    human: JiraAdapter  # a person working in the tracker
    cli: Cli
    connection: str
    project: str

    async def create(self, summary: str, **fields: Any) -> str:
        return (await self.human.create_issue(self.project, IssueUpdate(summary=summary, **fields))).key

    def keys(self) -> list[str]:
        return sorted(i.key for i in self.emu.state.issues.values() if i.project == self.project)

    async def run(self, *args: str, code: int = 0, input: str | None = None) -> str:
        result = await self.cli(*args, input=input)
        assert result.exit_code == code, (args, result.output)
        return result.stdout if code == 0 else result.stderr

    async def status(self, key: str) -> dict[str, Any]:
        return dict(json.loads(await self.run("status", key, "--json")))

    async def twin(self, key: str) -> str:
        seen: list[Any] = []

        async def linked() -> str | None:
            twins = (await self.status(key))["twins"]
            seen[:] = [(t["state"], t["remote_key"], t["last_result"]) for t in twins]
            return (
                twins[0]["remote_key"]
                if twins and (twins[0]["last_result"] or "").startswith("applied")
                else None
            )

        try:
            return await eventually(linked, f"{key} to be applied on the other side")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; twins (state, remote key, last result): {seen}") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start(home: Home) -> Node:
    node = Node(home, home.load_config(), home.load_identity(), home.admin_token())
    node.adapter_options = dict(FAST)
    await node.start()
    return node


async def _side(
    tmp: Path, name: str, mode: str, project: str, workflow: str, *, public: bool, user: str
) -> tuple[Node, JiraEmulator, JiraAdapter]:
    emu = JiraEmulator(mode=mode, user="admin", password=PASSWORD, state_file=None)  # type: ignore[arg-type]
    url = await emu.start(host="127.0.0.1", port=0)
    emu.state.add_user("person", password="person-pw", display_name="A Person", email="person@example.com")
    emu.state.add_project(project, lead="admin", workflow=workflow)
    data: dict[str, Any] = {
        "node": {"name": name},
        # a port the OS chose, kept across a restart of the node (the private peer dials it)
        "peer": {"mode": "public", "listen": f"127.0.0.1:{free_port()}"} if public else {"mode": "private"},
        "admin": {"listen": "127.0.0.1:0"},
        # small bulk pages: a bulk job reads by search pages, so only several pages of a slow
        # tracker keep it running long enough to be stopped half-way
        "sync": {"reconcile_batch": 2},
        "tracker": {
            "kind": f"jira-{mode}",
            "url": url,
            "user": user,
            "token": PASSWORD,
            "webhooks": "off",
            "poll_seconds": 0.2,
            "reconcile_seconds": 0,
        },
    }
    config = parse_config(data, "test")
    home = Home(tmp / name.lower())
    home.create(config)
    node = await start(home)
    human = JiraAdapter(url, deployment=mode, user="person", token="person-pw", **FAST)  # type: ignore[arg-type]
    return node, emu, human


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    a, a_emu, a_human = await _side(
        tmp_path, "Support", "cloud", "SUP", "support", public=True, user="admin@example.com"
    )
    b, b_emu, b_human = await _side(
        tmp_path, "Engineering", "server", "ENG", "simple", public=False, user="admin"
    )
    try:
        code, _ = await a.manager.invite(name="to-eng", project="SUP")
        rt = await b.manager.accept(code, name="to-sup", project="ENG", wait_seconds=10)
        assert rt.row.state == "active", rt.row.error

        async def active() -> bool:
            return a.manager.get("to-eng").row.state == "active"

        await eventually(active, "the inviter side to become active")
        sides = (
            Side(a, a_emu, a_human, make_cli(a.home.root), "to-eng", "SUP"),
            Side(b, b_emu, b_human, make_cli(b.home.root), "to-sup", "ENG"),
        )
        yield sides
        a, b = sides[0].node, sides[1].node  # a test may have restarted them
    finally:
        for node in (a, b):
            await node.stop()
        for human in (a_human, b_human):
            await human.close()
        for emu in (a_emu, b_emu):
            await emu.stop()


async def test_triggers_manual_sync_status_unlink(pair: tuple[Side, Side]) -> None:
    sup, eng = pair
    out = await sup.run(
        "trigger", "add", "--connection", "to-eng", "--query", "project = SUP AND labels = escalated"
    )
    assert out.strip() == "trigger 1 (to-eng, active): project = SUP AND labels = escalated"
    escalated = await sup.create("Printer on fire", labels=["escalated"], priority="High")
    eng_key = await sup.twin(escalated)  # intake polled it, the trigger matched, the peer applied it
    issue = await eng.human.get_issue(eng_key)
    assert issue.summary == "Printer on fire" and issue.priority == "High"

    assert "to-eng, disabled" in await sup.run("trigger", "disable", "1")
    [listed] = json.loads(await sup.run("trigger", "list", "--json"))
    assert listed["active"] is False

    quiet = await sup.create("Coffee machine", priority="Low")
    out = await sup.run("sync", quiet, "--connection", "to-eng")
    assert out.strip() == f"{quiet}: sent to to-eng (version 1)"
    quiet_twin = await sup.twin(quiet)
    lines = (await sup.run("status", quiet)).splitlines()
    assert lines[0].startswith(f"{quiet} over to-eng: linked, twin {quiet_twin}  http")
    assert lines[1].endswith("(version 1)") and lines[3].startswith("  last result    applied")
    full = await sup.status(quiet)
    assert full["twins"][0]["local_replica"]["summary"] == "Coffee machine"
    back = (await eng.status(quiet_twin))["twins"][0]
    assert back["remote_key"] == quiet and back["last_received_version"] == 1
    assert back["remote_replica"]["summary"] == "Coffee machine"
    out = await sup.run("sync", quiet, "--connection", "to-eng")
    assert "not sent" in out and "unchanged" in out

    out = await sup.run("unlink", quiet, "--connection", "to-eng")
    assert out.strip() == f"{quiet}: unlinked from {quiet_twin} over to-eng"
    assert (await sup.status(quiet))["twins"][0]["state"] == "unlinked"
    err = await sup.run("sync", "SUP-999", "--connection", "to-eng", code=1)
    assert err.startswith("Error: ") and "SUP-999" in err
    err = await sup.run("sync", quiet, "--connection", "nope", code=1)
    assert err.startswith("Error: ") and "nope" in err
    assert sorted(eng.keys()) == sorted([eng_key, quiet_twin])


async def test_bulk_connects_every_matching_issue(pair: tuple[Side, Side]) -> None:
    sup, eng = pair
    keys = [await sup.create(f"Request {i}") for i in range(6)]
    out = await sup.run("bulk", "--connection", "to-eng", "--query", "project = SUP")
    assert out.strip() == "bulk job 1 done: 6/6 synced, 0 failed"
    for key in keys:
        await sup.twin(key)
    assert len(eng.keys()) == 6
    job_id = (
        await sup.run("bulk", "--connection", "to-eng", "--query", "project = SUP", "--no-wait")
    ).strip()
    job = json.loads(await sup.run("bulk", "--job", job_id, "--json"))
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("done", 6, 6, 0)
    assert len(eng.keys()) == 6  # a second bulk finds every issue linked: no duplicates
    err = await sup.run("bulk", "--connection", "to-eng", "--query", "project = = SUP", code=1)
    assert "invalid JQL" in err


async def test_a_bulk_job_resumes_after_a_restart_and_the_cli_reattaches(pair: tuple[Side, Side]) -> None:
    sup, eng = pair
    keys = [await sup.create(f"Old request {i}") for i in range(12)]
    sup.emu.app.faults = Faults(latency_ms=40)  # a slow tracker: the job is still running at the stop
    job_id = (
        await sup.run("bulk", "--connection", "to-eng", "--query", "project = SUP", "--no-wait")
    ).strip()
    async with aiohttp.ClientSession() as session:
        api = Api(sup.node, session)

        async def started() -> bool:
            status, job = await api.call("GET", f"/api/v1/bulk/{job_id}")
            assert status == 200 and job["state"] == "running", job
            return bool(job["done"])

        await eventually(started, "the job to sync its first issues")
    await sup.node.stop()  # mid-job
    sup.emu.app.faults = Faults()
    sup.node = await start(sup.node.home)
    out = await sup.run("bulk", "--job", job_id)
    assert out.strip() == f"bulk job {job_id} done: 12/12 synced, 0 failed"
    for key in keys:
        await sup.twin(key)
    assert len(eng.keys()) == 12  # nothing created twice across the restart


VISUAL = """\
values:
  priority: {map: {High: Highest}, unmatched: keep}
"""
BROKEN = """\
replica["summary"] = "[SUP] " + replica["summary"]
if replica["priority"] == "Low"
    skip("low")
"""
FAILS_AT_RUN = """\
labels = replica["labels"]
replica["summary"] = labels[5]
"""


async def test_rules_round_trip_and_errors(pair: tuple[Side, Side], tmp_path: Path) -> None:
    sup, eng = pair
    rules = ["--connection", "to-eng", "--direction", "outgoing"]
    key = await sup.create("Login broken", priority="High")

    visual = tmp_path / "out.yaml"
    visual.write_text(VISUAL)
    out = await sup.run("rules", "edit", *rules, "--file", str(visual))
    assert "draft saved as version" in out and "(visual, draft" in out
    draft_run = json.loads(await sup.run("rules", "test", *rules, "--key", key))
    assert draft_run["priority"] == "Highest" and draft_run["summary"] == "Login broken"
    published_run = json.loads(await sup.run("rules", "test", *rules, "--key", key, "--published"))
    assert published_run["priority"] == "High"
    assert eng.keys() == []  # a test run sends nothing

    broken = tmp_path / "broken.py"
    broken.write_text(BROKEN)
    err = await sup.run("rules", "edit", *rules, "--file", str(broken), code=1)
    assert err.splitlines()[0].startswith("Error: line 2: SyntaxError")
    assert err.splitlines()[1] == '  2 | if replica["priority"] == "Low"'

    out = await sup.run("rules", "publish", *rules)
    assert "published version" in out and "(visual, published" in out
    shown = json.loads(await sup.run("rules", "show", *rules, "--json"))
    assert shown["published"]["mode"] == "visual" and shown["published"]["source"] == VISUAL
    await sup.run("sync", key, "--connection", "to-eng")
    eng_key = await sup.twin(key)
    assert (await eng.human.get_issue(eng_key)).priority == "Highest"

    failing = tmp_path / "fails.py"
    failing.write_text(FAILS_AT_RUN)
    await sup.run("rules", "edit", *rules, "--file", str(failing))
    await sup.run("rules", "publish", *rules)
    await sup.human.update_issue(key, IssueUpdate(summary="Login broken again"))
    out = await sup.run("sync", key, "--connection", "to-eng")
    assert "not sent" in out and "line 2" in out and "IndexError" in out
    [error] = json.loads(await sup.run("errors", "--json"))
    assert (error["kind"], error["line"], error["entity"], error["paused"]) == ("rule", 2, key, True)
    table = await sup.run("errors")
    assert "line 2: IndexError" in table and "open, paused" in table

    out = await sup.run("rules", "rollback", *rules)
    assert "rolled back to version" in out and "(visual" in out
    out = await sup.run("retry", str(error["id"]))
    assert out.startswith(f"error {error['id']}: ")

    async def sent_again() -> bool:
        return (await eng.human.get_issue(eng_key)).summary == "Login broken again"

    await eventually(sent_again, "the retried issue to reach engineering")
    out = await sup.run("resolve", str(error["id"]))
    assert out.strip() == f"error {error['id']}: resolved"
    assert json.loads(await sup.run("errors", "--json")) == []
    assert [e["id"] for e in json.loads(await sup.run("errors", "--all", "--json"))] == [error["id"]]
    versions = (await sup.run("rules", "show", *rules, "--versions")).splitlines()
    assert versions[0].split() == ["VERSION", "STATE", "MODE", "CREATED"] and len(versions) >= 4

    # incoming, on engineering: the twin's last received replica, or a pasted one
    incoming = ["--connection", "to-sup", "--direction", "incoming"]
    changes = json.loads(await eng.run("rules", "test", *incoming, "--key", eng_key, "--published"))
    assert changes["action"] == "update" and "summary" not in changes["fields"]  # already applied
    replica = (await eng.status(eng_key))["twins"][0]["remote_replica"]
    replica["summary"] = "Pasted summary"
    pasted = json.dumps(replica)
    changes = json.loads(
        await eng.run("rules", "test", *incoming, "--replica", "-", "--published", input=pasted)
    )
    assert changes["action"] == "create" and changes["fields"]["summary"] == "Pasted summary"
    changes = json.loads(
        await eng.run("rules", "test", *incoming, "--replica", "-", "--key", eng_key, input=pasted)
    )
    assert changes["action"] == "update" and changes["fields"] == {"summary": "Pasted summary"}
    err = await eng.run("rules", "test", *incoming, "--replica", "-", input='{"summary": 5}', code=1)
    assert err.startswith("Error: not a replica: ")
    assert (await eng.human.get_issue(eng_key)).summary == "Login broken again"  # nothing applied
    assert json.loads(await sup.run("conflicts", "--json")) == []
