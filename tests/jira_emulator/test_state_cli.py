"""Persistence through ``state_file`` / ``--state`` and the ``tandem emulate`` command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from node.cli import main
from node.trackers.jira.emulator import JiraEmulator, StateError

from .conftest import Client, make_issue

ROOT = Path(__file__).resolve().parents[2]


async def test_state_survives_a_restart(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    path = tmp_path / "jira.json"
    emu = JiraEmulator(mode="server", state_file=path)
    base = await emu.start()
    emu.state.add_project("PROJ")
    client = Client(session, base)
    key = await make_issue(client, labels=["kept"])
    await client.post(f"/rest/api/2/issue/{key}/comment", {"body": "still here"})
    form = aiohttp.FormData()
    form.add_field("file", b"\x00\x01bytes", filename="b.bin")
    await client.call(
        "POST", f"/rest/api/2/issue/{key}/attachments", data=form, headers={"X-Atlassian-Token": "no-check"}
    )
    await client.put(f"/rest/api/2/issue/{key}/properties/tandem", {"twin": 1})
    await emu.stop()
    assert json.loads(path.read_text())["mode"] == "server"

    emu2 = JiraEmulator(mode="server", state_file=path)
    base2 = await emu2.start()
    try:
        client2 = Client(session, base2)
        _, issue = await client2.get(f"/rest/api/2/issue/{key}?properties=tandem")
        assert issue["fields"]["labels"] == ["kept"]
        assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == ["still here"]
        assert issue["properties"] == {"tandem": {"twin": 1}}
        att = issue["fields"]["attachment"][0]
        assert (await client2.get(att["content"].removeprefix(base2)))[1] == b"\x00\x01bytes"
        assert await make_issue(client2) == "PROJ-2"  # counters persisted too
    finally:
        await emu2.stop()


async def test_periodic_save_is_atomic(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    path = tmp_path / "jira.json"
    emu = JiraEmulator(mode="cloud", state_file=path, save_interval=0.05)
    base = await emu.start()
    try:
        emu.state.add_project("PROJ")
        await make_issue(Client(session, base))
        for _ in range(100):  # bounded wait for the background save
            if path.exists() and "PROJ-1" in path.read_text():
                break
            await asyncio.sleep(0.05)
        assert "PROJ-1" in path.read_text()
        leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob("*.tmp")))
        assert not leftovers
    finally:
        await emu.stop()


def test_bad_or_mismatched_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{not json")
    with pytest.raises(StateError, match="cannot read"):
        JiraEmulator(mode="cloud", state_file=path)
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(StateError, match="not an emulator state"):
        JiraEmulator(mode="cloud", state_file=path)
    JiraEmulator(mode="server", state_file=tmp_path / "ok.json").save()
    with pytest.raises(StateError, match="server site"):
        JiraEmulator(mode="cloud", state_file=tmp_path / "ok.json")


def test_cli_reports_a_bad_state_file_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = CliRunner().invoke(main, ["emulate", "jira-cloud", "--port", "0", "--state", str(bad)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "not an emulator state" in result.output
    result = CliRunner().invoke(main, ["emulate", "zendesk"])
    assert result.exit_code == 2 and "jira-cloud" in result.output


@pytest.mark.parametrize("kind", ["jira-cloud", "jira-server"])
async def test_cli_starts_serves_and_saves_on_sigterm(kind: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from node.cli import main; main()",
        "emulate",
        kind,
        "--port",
        "0",
        "--state",
        str(state),
        "--project",
        "DEMO",
        "--user",
        "root",
        "--password",
        "s3cret",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base = match.group(1)
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/rest/api/2/serverInfo") as resp:
                info = await resp.json()
            assert info["deploymentType"] == ("Cloud" if kind == "jira-cloud" else "Server")
            client = Client(session, base, "root", "s3cret")
            status, projects = await client.get("/rest/api/2/project")
            assert status == 200 and [p["key"] for p in projects] == ["DEMO"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
    assert json.loads(state.read_text())["projects"]["DEMO"]["key"] == "DEMO"
