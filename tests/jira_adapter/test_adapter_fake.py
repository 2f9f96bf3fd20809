"""Adapter behaviour the emulator cannot show, against a scripted local server: the JQL the poller
sends (time zone, minute granularity), Cloud's truncated changelogs, comment pages, request bodies
for custom fields and users, Server attachment URLs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from node.trackers.base import IssueUpdate, TrackerRejected
from node.trackers.jira import JiraAdapter
from protocol.replica import UserRef

from .fakesite import Site

PERSON = {"accountId": "acc-1", "name": "jdoe", "displayName": "J Doe", "emailAddress": "j@example.com"}


@pytest.fixture
async def fake() -> AsyncIterator[Site]:
    s = Site()
    await s.start()
    yield s
    await s.stop()


def adapter_for(site: Site, deployment: str = "cloud", **kw: Any) -> JiraAdapter:
    return JiraAdapter(
        f"http://127.0.0.1:{site.port}",
        deployment=deployment,  # type: ignore[arg-type]
        user="bot@example.com",
        token="t",
        max_attempts=2,
        base_delay=0.01,
        **kw,
    )


def json_route(payload: Any, status: int = 200) -> Any:
    async def handler(_r: web.Request) -> web.StreamResponse:
        return web.json_response(payload, status=status)

    return handler


def issue_json(key: str = "A-1", *, histories: int = 0, total_histories: int | None = None) -> dict[str, Any]:
    return {
        "id": "10",
        "key": key,
        "fields": {
            "project": {"key": "A"},
            "summary": "s",
            "updated": "2024-05-01T12:00:00.000+0000",
            "comment": {"total": 0, "comments": []},
        },
        "changelog": {
            "total": total_histories if total_histories is not None else histories,
            "histories": [_history(i) for i in range(histories)],
        },
    }


def _history(i: int) -> dict[str, Any]:
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
    return {
        "id": str(i),
        "author": PERSON,
        "created": at.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "items": [{"field": "summary", "fieldId": "summary", "toString": f"v{i}"}],
    }


def _at(issue: dict[str, Any], updated: str) -> dict[str, Any]:
    return {**issue, "fields": {**issue["fields"], "updated": updated}}


async def test_poll_jql_uses_user_time_zone_minutes_and_margin(fake: Site) -> None:
    fake.handlers["/rest/api/3/myself"] = json_route({**PERSON, "timeZone": "America/Los_Angeles"})
    early = {**_at(issue_json("A-0"), "2024-05-01T11:58:45.000+0000"), "id": "9"}
    a1 = issue_json("A-1")  # 12:00 UTC
    a2 = {**issue_json("A-2"), "id": "11"}
    pages = iter(
        [
            {"issues": [early], "nextPageToken": "tok-2", "isLast": False},  # still the first minute
            {"issues": [a1, a2], "nextPageToken": "tok-3", "isLast": False},  # reached 05:00 local
            {"issues": [a1, a2], "isLast": True},
        ]
    )

    async def search(_r: web.Request) -> web.StreamResponse:
        return web.json_response(next(pages))

    fake.handlers["/rest/api/3/search/jql"] = search
    adapter = adapter_for(fake, poll_margin=dt.timedelta(minutes=2))
    since = dt.datetime(2024, 5, 1, 12, 0, 30, tzinfo=dt.UTC)
    try:
        got = [s.key async for s in adapter.changed_since(since, projects=["A", 'we"ird'])]
    finally:
        await adapter.close()
    assert got == ["A-0", "A-1", "A-2"]  # repeats (same id and updated) are dropped
    searches = [r for r in fake.seen if r.path.endswith("/search/jql")]
    # 12:00:30 UTC - 2 min = 11:58:30 UTC = 04:58 in Los Angeles (PDT, UTC-7), floored to the minute
    first = 'project in ("A", "we\\"ird") AND updated >= "2024/05/01 04:58" ORDER BY updated ASC'
    assert searches[0].query["jql"] == first
    assert searches[0].query["fields"] == "*all"
    # same minute as the cursor: continue the same query
    assert (searches[1].query["jql"], searches[1].query["nextPageToken"]) == (first, "tok-2")
    # newer minute reached: restart from it (keyset), no token
    assert searches[2].query["jql"].endswith('updated >= "2024/05/01 05:00" ORDER BY updated ASC')
    assert "nextPageToken" not in searches[2].query


async def test_server_poll_pages_overlap(fake: Site) -> None:
    fake.handlers["/rest/api/2/myself"] = json_route({**PERSON, "timeZone": "UTC"})
    issues = [{**issue_json(f"A-{i}"), "id": str(i)} for i in range(25)]

    async def search(r: web.Request) -> web.StreamResponse:
        start, size = int(r.query["startAt"]), int(r.query["maxResults"])
        return web.json_response({"startAt": start, "total": 25, "issues": issues[start : start + size]})

    fake.handlers["/rest/api/2/search"] = search
    adapter = adapter_for(fake, "server", poll_page_size=10)
    try:
        got = [s.id async for s in adapter.changed_since(dt.datetime(2024, 5, 1, tzinfo=dt.UTC))]
    finally:
        await adapter.close()
    assert got == [str(i) for i in range(25)]
    starts = [int(r.query["startAt"]) for r in fake.seen if r.path.endswith("/search")]
    # the first page reaches the issues' minute, so the query restarts there (offset 0); inside
    # that one minute it pages by offset, re-reading 2 issues of the page before
    assert starts == [0, 0, 8, 16]
    assert all('updated >= "2024/05/01 12:00"' in r.query["jql"] for r in fake.seen[2:] if "jql" in r.query)


async def test_truncated_cloud_changelog_is_paged(fake: Site) -> None:
    fake.handlers["/rest/api/3/issue/A-1"] = json_route(issue_json(histories=100, total_histories=150))

    async def changelog(r: web.Request) -> web.StreamResponse:
        start, size = int(r.query["startAt"]), int(r.query["maxResults"])
        values = [_history(i) for i in range(start, min(150, start + size))]
        return web.json_response(
            {"startAt": start, "total": 150, "isLast": start + size >= 150, "values": values}
        )

    fake.handlers["/rest/api/3/issue/10/changelog"] = changelog
    adapter = adapter_for(fake)
    try:
        snap = await adapter.get_issue("A-1")
    finally:
        await adapter.close()
    assert [c.to_value for c in snap.changelog] == [f"v{i}" for i in range(150)]
    assert snap.updated_by is not None and snap.updated_by.account_id == "acc-1"


async def test_comments_are_paged_with_properties(fake: Site) -> None:
    raw = issue_json()
    raw["fields"]["comment"] = {"total": 130, "comments": []}
    fake.handlers["/rest/api/3/issue/A-1"] = json_route(raw)

    async def comments(r: web.Request) -> web.StreamResponse:
        assert r.query["expand"] == "properties"
        start, size = int(r.query["startAt"]), int(r.query["maxResults"])
        rows = [
            {
                "id": str(i),
                "body": {"type": "doc", "version": 1, "content": []},
                "properties": [{"key": "tandem.marker", "value": {"marker": f"m{i}"}}],
            }
            for i in range(start, min(130, start + size))
        ]
        return web.json_response({"startAt": start, "total": 130, "comments": rows})

    fake.handlers["/rest/api/3/issue/10/comment"] = comments
    adapter = adapter_for(fake)
    try:
        snap = await adapter.get_issue("A-1")
    finally:
        await adapter.close()
    assert len(snap.comments) == 130
    assert snap.comment_markers["129"] == "m129"


FIELDS = [
    {"id": "customfield_1", "name": "Region", "schema": {"type": "option-with-child"}},
    {"id": "customfield_2", "name": "Found in", "schema": {"type": "array", "items": "version"}},
    {"id": "customfield_3", "name": "Owner", "schema": {"type": "user"}},
    {"id": "customfield_4", "name": "When", "schema": {"type": "datetime"}},
    {"id": "customfield_5", "name": "Points", "schema": {"type": "number"}},
    {
        "id": "customfield_6",
        "name": "Notes",
        "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea"},
    },
    {"id": "customfield_7", "name": "Tags", "schema": {"type": "array", "items": "string"}},
]


async def _put_body(fake: Site, deployment: str, update: IssueUpdate) -> dict[str, Any]:
    api = "3" if deployment == "cloud" else "2"
    fake.handlers[f"/rest/api/{api}/field"] = json_route(FIELDS)
    fake.handlers[f"/rest/api/{api}/user/search"] = json_route([PERSON])

    async def put(_r: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    fake.handlers[f"/rest/api/{api}/issue/A-1"] = put
    adapter = adapter_for(fake, deployment)
    try:
        await adapter.update_issue("A-1", update)
    finally:
        await adapter.close()
    body: dict[str, Any] = json.loads(fake.bodies[-1])
    return body


@pytest.mark.parametrize("deployment", ["cloud", "server"])
async def test_custom_field_values_follow_the_field_schema(fake: Site, deployment: str) -> None:
    body = await _put_body(
        fake,
        deployment,
        IssueUpdate(
            custom_fields={
                "customfield_1": "EU - Paris",
                "customfield_2": ["1.0", "2.0"],
                "customfield_3": {"email": "j@example.com"},
                "customfield_4": "2024-05-01T10:00:00+00:00",
                "customfield_5": "3.5",
                "customfield_6": "plain notes",
                "customfield_7": ["a", "b"],
            }
        ),
    )
    fields = body["fields"]
    assert fields["customfield_1"] == {"value": "EU", "child": {"value": "Paris"}}
    assert fields["customfield_2"] == [{"name": "1.0"}, {"name": "2.0"}]
    assert fields["customfield_3"] == ({"accountId": "acc-1"} if deployment == "cloud" else {"name": "jdoe"})
    assert fields["customfield_4"] == "2024-05-01T10:00:00+00:00"
    assert fields["customfield_5"] == 3.5
    if deployment == "cloud":
        assert fields["customfield_6"]["type"] == "doc"  # ADF on REST v3
    else:
        assert fields["customfield_6"] == "plain notes"  # wiki markup on REST v2
    assert fields["customfield_7"] == ["a", "b"]
    assert set(fields) == {f"customfield_{i}" for i in range(1, 8)}  # nothing untouched is sent


@pytest.mark.parametrize("deployment", ["cloud", "server"])
async def test_user_fields_by_account_id_or_name(fake: Site, deployment: str) -> None:
    body = await _put_body(
        fake, deployment, IssueUpdate(assignee=UserRef(account_id="acc-9", username="someone"), reporter=None)
    )
    expected = {"accountId": "acc-9"} if deployment == "cloud" else {"name": "someone"}
    assert body == {"fields": {"assignee": expected, "reporter": None}}


async def test_unresolvable_user_is_rejected_naming_the_field(fake: Site) -> None:
    fake.handlers["/rest/api/3/user/search"] = json_route([])
    adapter = adapter_for(fake)
    try:
        with pytest.raises(TrackerRejected) as info:
            await adapter.update_issue("A-1", IssueUpdate(assignee=UserRef(email="ghost@example.com")))
    finally:
        await adapter.close()
    assert info.value.errors == {"assignee": "no such user"}
    assert "ghost@example.com" in str(info.value)


async def test_bad_number_is_rejected_before_calling_jira(fake: Site) -> None:
    fake.handlers["/rest/api/3/field"] = json_route(FIELDS)
    adapter = adapter_for(fake)
    try:
        with pytest.raises(TrackerRejected, match="needs a number"):
            await adapter.update_issue("A-1", IssueUpdate(custom_fields={"customfield_5": "lots"}))
    finally:
        await adapter.close()
    assert not any(r.method == "PUT" for r in fake.seen)


async def test_server_attachment_content_url_is_fetched_from_our_origin(fake: Site) -> None:
    content = b"server bytes"
    # Jira builds "content" from its configured base URL, which may not be how we reach it
    meta = {
        "id": 7,
        "filename": "f.txt",
        "content": "https://jira.internal.example/secure/attachment/7/f.txt",
    }
    fake.handlers["/rest/api/2/attachment/7"] = json_route(meta)

    async def blob(_r: web.Request) -> web.StreamResponse:
        return web.Response(body=content)

    fake.handlers["/secure/attachment/7/f.txt"] = blob
    adapter = adapter_for(fake, "server")
    try:
        assert await adapter.get_attachment_content("7") == content
    finally:
        await adapter.close()
    assert adapter.attachment_hashes["7"] == hashlib.sha256(content).hexdigest()


async def test_server_search_tokens(fake: Site) -> None:
    adapter = adapter_for(fake, "server")
    try:
        with pytest.raises(TrackerRejected, match="page token"):
            await adapter.search("project = A", page_token="not-a-number")
        with pytest.raises(TrackerRejected, match="page token"):
            await adapter.search("project = A", page_token="-5")
    finally:
        await adapter.close()
