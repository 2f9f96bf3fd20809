"""Batched reads and creates (``get_issues``, ``search``, ``create_issues_ref``): what they cost in
calls, and that they say what the one-at-a-time calls say."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from node.trackers.base import IssueSnapshot, IssueUpdate, TrackerRejected, TrackerTransient
from node.trackers.jira import JiraAdapter
from protocol.richtext import from_plain_text

from .conftest import PROJECT, Site
from .fakesite import Site as FakeSite
from .test_adapter_fake import _history, adapter_for, issue_json, json_route
from .test_create_lean import delta, routes

SEARCH = {"cloud": "POST /rest/api/{v}/search/jql", "server": "POST /rest/api/{v}/search"}
COMMENTS = "GET /rest/api/{v}/issue/{key}/comment"
BULK = "POST /rest/api/{v}/issue/bulk"


async def made(site: Site, count: int, *, comments: int = 0) -> list[IssueSnapshot]:
    """``count`` issues by the proxy user, each with ``comments`` comments by a person."""
    outcomes = await site.admin.create_issues_ref(
        PROJECT, [(IssueUpdate(summary=f"issue {n}"), f"tandem:t:{n}") for n in range(count)]
    )
    issues = [o for o in outcomes if isinstance(o, IssueSnapshot)]
    assert len(issues) == count
    for issue in issues:
        for k in range(comments):
            await site.human.add_comment(issue.key, from_plain_text(f"comment {k}"))
    return issues


async def test_get_issues_reads_fifty_per_search(site: Site) -> None:
    issues = await made(site, 60, comments=2)
    await site.admin.check()  # who "me" is, asked once per adapter
    before = await routes(site)
    got = await site.admin.get_issues([i.id for i in issues])
    calls = delta(before, await routes(site))
    assert sorted(got) == sorted(i.id for i in issues)
    assert calls.pop(SEARCH[site.mode]) == 2
    if site.mode == "cloud":  # a person's comments carry jsdPublic: no need for their properties
        assert calls == {}
    else:  # Server shows the internal flag only as a comment property
        assert calls == {COMMENTS: 60}
    assert all(len(s.comments) == 2 for s in got.values())


async def test_own_comments_are_read_with_their_markers(site: Site) -> None:
    [issue] = await made(site, 1)
    own = await site.admin.add_comment(issue.key, from_plain_text("copied"), marker="tandem:c:r1")
    await site.human.add_comment(issue.key, from_plain_text("a person's"))
    got = await site.admin.get_issues([issue.key])
    assert got[issue.key].comment_markers == {own.id: "tandem:c:r1"}
    assert got[issue.key] == await site.admin.get_issue(issue.key)


async def test_search_pages_equal_get_issue(site: Site) -> None:
    issues = await made(site, 7, comments=1)
    await site.admin.add_comment(issues[0].key, from_plain_text("staff"), internal=True, marker="m")
    await site.human.add_attachment(issues[1].key, "a.txt", b"attached", mime_type="text/plain")
    seen: list[IssueSnapshot] = []
    token: str | None = None
    for _ in range(10):
        page = await site.admin.search(
            f"project = {PROJECT} ORDER BY created ASC", page_token=token, page_size=3
        )
        seen.extend(page.issues)
        token = page.next_page_token
        if token is None:
            break
    assert [s.id for s in seen] == [i.id for i in issues]
    for snap in seen:
        assert snap == await site.admin.get_issue(snap.id)
    assert seen[0].comments[-1].internal and seen[1].attachments[0].filename == "a.txt"


async def test_unknown_and_moved_refs(site: Site) -> None:
    [issue] = await made(site, 1)
    got = await site.admin.get_issues([issue.key.lower(), "99999999", f"{PROJECT}-424242"])
    assert list(got) == [issue.key.lower()] and got[issue.key.lower()].id == issue.id


async def test_create_issues_ref_by_fifty_checks_markers_once(site: Site) -> None:
    before = await routes(site)
    outcomes = await site.admin.create_issues_ref(
        PROJECT, [(IssueUpdate(summary=f"n{n}", labels=["x"]), f"tandem:b:{n}") for n in range(120)]
    )
    calls = delta(before, await routes(site))
    assert calls == {BULK: 3, "GET /rest/api/{v}/issue/{key}/properties/{prop}": 1}
    assert [o.summary for o in outcomes if isinstance(o, IssueSnapshot)] == [f"n{n}" for n in range(120)]
    last = outcomes[-1]
    assert isinstance(last, IssueSnapshot)
    assert (await site.admin.get_issue(last.key)).properties["tandem.marker"] == {"marker": "tandem:b:119"}


async def test_refused_elements_get_their_own_error(site: Site) -> None:
    items = [
        (IssueUpdate(summary="fine"), "tandem:r:0"),
        (IssueUpdate(summary="bad priority", priority="No Such Priority"), "tandem:r:1"),
        (IssueUpdate(summary="bad field", custom_fields={"customfield_99999": 1}), "tandem:r:2"),
        (IssueUpdate(summary="also fine"), "tandem:r:3"),
    ]
    outcomes = await site.admin.create_issues_ref(PROJECT, items)
    assert [type(o).__name__ for o in outcomes] == [
        "IssueSnapshot",
        "TrackerRejected",
        "TrackerRejected",
        "IssueSnapshot",
    ]
    priority, field = outcomes[1], outcomes[2]
    assert isinstance(priority, TrackerRejected) and "priority" in priority.errors
    assert "element 1" in str(priority) and priority.status == 400
    assert isinstance(field, TrackerRejected) and "customfield_99999" in field.errors
    for n in (0, 3):
        found = await site.admin.find_issue_by_marker(PROJECT, f"tandem:r:{n}")
        assert found is not None and found.id == outcomes[n].id  # type: ignore[union-attr]
    assert await site.admin.find_issue_by_marker(PROJECT, "tandem:r:1") is None
    # a request whose every element is refused (Jira answers 400 with the same shape)
    [only] = await site.admin.create_issues_ref(PROJECT, [(IssueUpdate(summary="x", priority="Nope"), None)])
    assert isinstance(only, TrackerRejected) and "priority" in only.errors


async def test_site_dropping_create_properties_gets_markers_written(site: Site) -> None:
    site.emu.app.site.keep_create_properties = False
    before = await routes(site)
    outcomes = await site.admin.create_issues_ref(
        PROJECT, [(IssueUpdate(summary=f"old {n}"), f"tandem:o:{n}") for n in range(3)]
    )
    calls = delta(before, await routes(site))
    assert calls.get("PUT /rest/api/{v}/issue/{key}/properties/{prop}") == 3
    for n, o in enumerate(outcomes):
        assert isinstance(o, IssueSnapshot)
        assert (await site.admin.get_issue(o.key)).properties["tandem.marker"] == {"marker": f"tandem:o:{n}"}


async def test_whole_request_fault_is_transient(site: Site) -> None:
    async with aiohttp.ClientSession() as s:
        spec = {"rate_limit": {"next_n_429": 50, "retry_after": 0}}
        async with s.post(f"{site.base_url}/_emulator/faults", json=spec) as resp:
            assert resp.status < 300
        with pytest.raises(TrackerTransient):
            await site.admin.create_issues_ref(PROJECT, [(IssueUpdate(summary="later"), "tandem:x:1")])
        with pytest.raises(TrackerTransient):
            await site.admin.get_issues(["10000"])
        async with s.delete(f"{site.base_url}/_emulator/faults") as resp:
            assert resp.status < 300


# ------------------------------------------------------------------ a scripted Cloud site


@pytest.fixture
async def fake() -> Any:
    s = FakeSite()
    await s.start()
    yield s
    await s.stop()


async def test_cloud_get_issues_pages_changelog_and_comments_and_reconciles(fake: FakeSite) -> None:
    """Cloud embeds at most 100 histories and a page of comments: the rest is read like get_issue
    does; the search asks Jira to reconcile the ids (read-after-write)."""
    row = issue_json(histories=100, total_histories=150)
    person = {"accountId": "acc-2", "displayName": "P"}
    shown = [{"id": str(n), "author": person, "body": f"c{n}", "jsdPublic": True} for n in range(2)]
    row["fields"]["comment"] = {"total": 3, "comments": shown}
    fake.handlers["/rest/api/3/search/jql"] = json_route({"issues": [row], "isLast": True})
    fake.handlers["/rest/api/3/myself"] = json_route({"accountId": "bot"})
    fake.handlers["/rest/api/3/issue/10"] = json_route(row)

    async def changelog(r: web.Request) -> web.StreamResponse:
        start, size = int(r.query["startAt"]), int(r.query["maxResults"])
        values = [_history(i) for i in range(start, min(150, start + size))]
        return web.json_response(
            {"startAt": start, "total": 150, "isLast": start + size >= 150, "values": values}
        )

    all_three = [*shown, {"id": "2", "author": person, "body": "c2", "jsdPublic": True}]
    fake.handlers["/rest/api/3/issue/10/changelog"] = changelog
    fake.handlers["/rest/api/3/issue/10/comment"] = json_route({"total": 3, "comments": all_three})
    adapter: JiraAdapter = adapter_for(fake)
    try:
        got = await adapter.get_issues(["10"])
        assert got["10"] == await adapter.get_issue("10")
    finally:
        await adapter.close()
    snap = got["10"]
    assert [c.to_value for c in snap.changelog] == [f"v{i}" for i in range(150)]
    assert [c.id for c in snap.comments] == ["0", "1", "2"]
    search = next(b for r, b in zip(fake.seen, fake.bodies, strict=True) if r.path.endswith("/search/jql"))
    assert b'"reconcileIssues":[10]' in search and b'"jql":"id in (10)"' in search
