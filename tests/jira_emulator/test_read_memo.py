"""Reads that reuse earlier renderings (a search naming its issues by id or key, a comment list) answer
exactly what a fresh rendering answers, after every kind of change to what they show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from node.trackers.jira.emulator import JiraEmulator

from .conftest import Client, make_issue

Step = Callable[[], Awaitable[Any]]


def comparable(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "properties"} for row in page["comments"]]


async def check(client: Client, issue_id: str, api: int) -> None:
    """Memo paths (plain lookup, comment list) against paths that render afresh (a compiled query, one
    comment at a time)."""
    body = {
        "jql": f"id in ({issue_id})",
        "fields": ["*all"],
        "expand": ["names", "changelog"],
        "properties": ["*all"],
    }
    memo_status, memo = await client.post(f"/rest/api/{api}/search", body)
    fresh_status, fresh = await client.post(
        f"/rest/api/{api}/search", {**body, "jql": f"id in ({issue_id}) AND project = PROJ"}
    )
    assert memo_status == fresh_status == 200
    assert memo["issues"] == fresh["issues"] and len(memo["issues"]) == 1
    status, listed = await client.get(
        f"/rest/api/{api}/issue/{issue_id}/comment", params={"expand": "properties", "orderBy": "created"}
    )
    assert status == 200
    singles = []
    for row in listed["comments"]:
        status, one = await client.get(f"/rest/api/{api}/issue/{issue_id}/comment/{row['id']}")
        assert status == 200
        singles.append(one)
        status, props = await client.get(f"/rest/api/{api}/comment/{row['id']}/properties")
        assert status == 200 and [p["key"] for p in row["properties"]] == [k["key"] for k in props["keys"]]
    assert comparable(listed) == singles
    assert memo["issues"][0]["fields"]["comment"]["comments"] == singles


@pytest.mark.parametrize("mode", ["cloud", "server"])
async def test_memo_reads_equal_fresh_ones_after_each_kind_of_change(
    mode: str, cloud: JiraEmulator, server: JiraEmulator, cc: Client, sc: Client
) -> None:
    emu, client = (cloud, cc) if mode == "cloud" else (server, sc)
    state = emu.state
    bob = state.add_user("bob", password="bobpw", display_name="Bob Builder", email="bob@example.com")
    as_bob = client.as_user("bob", "bobpw")
    key = await make_issue(client, "memo")
    issue_id = state.keys[key]
    base = f"/rest/api/2/issue/{key}/comment"

    async def add(c: Client, body: str, **extra: Any) -> str:
        status, made = await c.post(base, {"body": body, **extra})
        assert status == 201, made
        return str(made["id"])

    first = await add(client, "first *bold*")
    second = await add(as_bob, "second")
    await check(client, issue_id, 2)
    steps: list[Step] = [
        lambda: client.put(f"{base}/{first}", {"body": "first, edited"}),
        lambda: client.put(f"/rest/api/2/comment/{second}/properties/tandem.marker", {"marker": "m2"}),
        lambda: client.put(f"/rest/api/2/comment/{first}/properties/sd.public.comment", {"internal": True}),
        lambda: client.put(
            f"{base}/{second}", {"body": "second", "visibility": {"type": "role", "value": "Developers"}}
        ),
        lambda: add(client, "third"),
        lambda: client.delete(f"{base}/{first}"),
        lambda: client.put(f"/rest/api/2/issue/{key}", {"fields": {"summary": "memo, renamed"}}),
    ]
    for n, step in enumerate(steps):
        await step()
        await check(client, issue_id, 2)
        if n == 2:
            bob.display_name = "Robert Builder"  # a user renamed: every rendering that shows them changes
            await check(client, issue_id, 2)
            bob.email = "robert@example.com"
    if mode == "cloud":
        await check(client, issue_id, 3)  # ADF bodies: their own memo, not the wiki renderings
    status, listed = await client.get(f"{base}", params={"expand": "properties"})
    assert status == 200 and [c["body"] for c in listed["comments"]] == ["second", "third"]
    assert listed["comments"][0]["author"]["displayName"] == "Robert Builder"
    assert listed["comments"][0]["author"].get("emailAddress") == "robert@example.com"
