"""The real client libraries (pycontribs ``jira`` and ``atlassian-python-api``) work against the
emulator in Cloud and Server mode. They are synchronous, so each scenario runs in a thread while the
emulator serves on this test's event loop."""

from __future__ import annotations

import asyncio
import importlib
import io
from typing import Any

import pytest
from atlassian import Jira as AtlassianJira
from jira import JIRA

from node.trackers.jira.emulator import JiraEmulator


def jql_available() -> bool:
    try:
        module = importlib.import_module("node.jql")
    except ImportError:
        return False
    return all(hasattr(module, n) for n in ("compile_query", "JqlError", "EvalContext"))


def pycontribs_scenario(base: str, cloud: bool, search: bool) -> dict[str, Any]:
    jira = JIRA(server=base, basic_auth=("admin", "admin"), options={"check_update": False}, max_retries=0)
    assert jira._is_cloud is cloud
    jira.create_project("LIB", name="Library project")
    issue = jira.create_issue(
        fields={
            "project": {"key": "LIB"},
            "issuetype": {"name": "Bug"},
            "summary": "From jira lib",
            "labels": ["x"],
        }
    )
    issue.update(summary="Edited by jira lib", fields={"labels": ["x", "y"]})
    issue = jira.issue(issue.key, expand="changelog")
    comment = jira.add_comment(issue, "A *wiki* comment")
    names = [t["name"] for t in jira.transitions(issue)]
    jira.transition_issue(issue, "Done")
    attachment = jira.add_attachment(issue=issue.key, attachment=io.BytesIO(b"payload"), filename="a.txt")
    content = attachment.get()
    issue = jira.issue(issue.key)
    out = {
        "key": issue.key,
        "summary": issue.fields.summary,
        "labels": issue.fields.labels,
        "status": issue.fields.status.name,
        "resolution": issue.fields.resolution.name,
        "comments": [c.body for c in jira.comments(issue)],
        "comment_id": comment.id,
        "transitions": names,
        "attachment": content,
        "attachments": [a.filename for a in issue.fields.attachment],
        "fields": len(jira.fields()),
    }
    if search:
        found = jira.search_issues("project = LIB", maxResults=10)
        out["search"] = [i.key for i in found]
    jira.close()
    return out


def atlassian_scenario(base: str, cloud: bool, search: bool) -> dict[str, Any]:
    jira = AtlassianJira(url=base, username="admin", password="admin", cloud=cloud)
    created = jira.create_project_from_raw_json(
        {"key": "ATL", "name": "Atlassian lib", "projectTypeKey": "software", "projectTemplateKey": "x"}
    )
    assert created["key"] == "ATL"
    issue = jira.issue_create(
        fields={"project": {"key": "ATL"}, "issuetype": {"name": "Task"}, "summary": "From atlassian"}
    )
    key = issue["key"]
    jira.update_issue_field(key, {"summary": "Edited by atlassian", "labels": ["atl"]})
    jira.issue_add_comment(key, "hello from atlassian")
    jira.set_issue_status(key, "In Progress")
    jira.add_attachment_object(key, io.BytesIO(b"atl-bytes"))
    got = jira.issue(key)
    out = {
        "summary": got["fields"]["summary"],
        "labels": got["fields"]["labels"],
        "status": got["fields"]["status"]["name"],
        "comments": [c["body"] for c in got["fields"]["comment"]["comments"]],
        "attachments": len(got["fields"]["attachment"]),
    }
    if search:
        result = jira.jql("project = ATL", limit=10)
        out["search"] = [i["key"] for i in result["issues"]]
    return out


@pytest.mark.parametrize("mode", ["cloud", "server"])
async def test_pycontribs_jira_library(mode: str) -> None:
    emu = JiraEmulator(mode=mode)  # type: ignore[arg-type]
    base = await emu.start()
    try:
        search = jql_available()
        out = await asyncio.wait_for(
            asyncio.to_thread(pycontribs_scenario, base, mode == "cloud", search), 60
        )
    finally:
        await emu.stop()
    assert out["key"] == "LIB-1" and out["summary"] == "Edited by jira lib"
    assert out["labels"] == ["x", "y"] and out["status"] == "Done" and out["resolution"] == "Done"
    assert out["comments"] == ["A *wiki* comment"] and "Done" in out["transitions"]
    assert out["attachment"] == b"payload" and out["attachments"] == ["a.txt"]
    assert out["fields"] > 20
    if search:
        assert out["search"] == ["LIB-1"]


@pytest.mark.parametrize("mode", ["cloud", "server"])
async def test_atlassian_python_api(mode: str) -> None:
    emu = JiraEmulator(mode=mode)  # type: ignore[arg-type]
    base = await emu.start()
    try:
        search = jql_available()
        out = await asyncio.wait_for(asyncio.to_thread(atlassian_scenario, base, mode == "cloud", search), 60)
    finally:
        await emu.stop()
    assert out["summary"] == "Edited by atlassian" and out["labels"] == ["atl"]
    assert out["status"] == "In Progress" and out["comments"] == ["hello from atlassian"]
    assert out["attachments"] == 1
    if search:
        assert out["search"] == ["ATL-1"]
