"""Jira-specific adapter behaviour against the emulator (the shared contract is in tests/adapters)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import pytest

from node.trackers.base import IssueSnapshot, IssueUpdate, TrackerAuthError, TrackerRejected
from node.trackers.jira import connect_jira
from node.trackers.jira.mapping import MARKER_PROPERTY
from protocol.richtext import from_plain_text

from .conftest import ADMIN_PASSWORD, PROJECT, Site


async def stats(site: Site) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{site.base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def test_factory_detects_the_deployment(site: Site) -> None:
    adapter = await connect_jira(site.base_url, user="admin", token=ADMIN_PASSWORD)
    try:
        assert adapter.deployment == site.mode
        assert adapter.text_format == ("adf" if site.mode == "cloud" else "wiki")
        account = await adapter.check()
        assert account.user.display_name == "Administrator"
        assert account.version
    finally:
        await adapter.close()


async def test_check_message_names_user_and_site(site: Site) -> None:
    bad = site.adapter(token="nope-not-it")
    try:
        with pytest.raises(TrackerAuthError) as info:
            await bad.check()
    finally:
        await bad.close()
    message = str(info.value)
    assert "Jira rejected the credentials for user" in message
    assert site.base_url in message
    assert "nope-not-it" not in message


async def test_marker_is_an_issue_property_written_at_create(site: Site) -> None:
    snap = await site.admin.create_issue(PROJECT, IssueUpdate(summary="m"), marker="tandem:abc")
    assert snap.properties[MARKER_PROPERTY] == {"marker": "tandem:abc"}


async def test_find_by_marker_ignores_issues_created_by_others(site: Site) -> None:
    await site.human.create_issue(PROJECT, IssueUpdate(summary="human made"), marker="tandem:same")
    assert await site.admin.find_issue_by_marker(PROJECT, "tandem:same") is None
    mine = await site.admin.create_issue(PROJECT, IssueUpdate(summary="mine"), marker="tandem:same")
    found = await site.admin.find_issue_by_marker(PROJECT, "tandem:same")
    assert found is not None and found.id == mine.id


async def test_find_by_marker_scan_is_bounded(site: Site) -> None:
    target = await site.admin.create_issue(PROJECT, IssueUpdate(summary="old"), marker="tandem:old")
    for i in range(5):
        await site.admin.create_issue(PROJECT, IssueUpdate(summary=f"newer {i}"))
    narrow = site.adapter(marker_scan_limit=3)
    try:
        # newest first: the marked issue is the 6th newest, beyond a 3-issue scan
        assert await narrow.find_issue_by_marker(PROJECT, "tandem:old") is None
    finally:
        await narrow.close()
    found = await site.admin.find_issue_by_marker(PROJECT, "tandem:old")
    assert found is not None and found.id == target.id


async def test_attachment_hash_is_computed_once(site: Site) -> None:
    issue = await site.admin.create_issue(PROJECT, IssueUpdate(summary="att"))
    await site.human.add_attachment(issue.key, "a.txt", b"first", mime_type="text/plain")
    fresh = site.adapter()  # knows no hashes yet
    try:
        before = await stats(site)
        await fresh.get_issue(issue.key)
        middle = await stats(site)
        await fresh.get_issue(issue.key)
        after = await stats(site)
    finally:
        await fresh.close()

    def downloads(s: dict[str, Any]) -> int:
        return sum(
            n for route, n in s["routes"].items() if "attachment/content" in route or "/secure/" in route
        )

    assert downloads(middle) - downloads(before) == 1
    assert downloads(after) - downloads(middle) == 0


async def test_user_custom_field_and_text_area(site: Site) -> None:
    human = (await site.human.check()).user
    issue = await site.admin.create_issue(
        PROJECT,
        IssueUpdate(
            summary="cf",
            custom_fields={
                "customfield_10053": human.model_dump(exclude_none=True),
                "customfield_10054": from_plain_text("Root *cause*"),
            },
        ),
    )
    value = issue.custom_fields["customfield_10053"]
    assert value.get("account_id") == human.account_id or value.get("username") == human.username
    assert issue.field_names["customfield_10053"] == "Escalation Owner"


async def test_unknown_custom_field_is_rejected_by_name(site: Site) -> None:
    issue = await site.admin.create_issue(PROJECT, IssueUpdate(summary="cf"))
    with pytest.raises(TrackerRejected) as info:
        await site.admin.update_issue(issue.key, IssueUpdate(custom_fields={"customfield_99999": "x"}))
    assert "customfield_99999" in info.value.errors


async def test_jira_validation_errors_surface_with_field_names(site: Site) -> None:
    with pytest.raises(TrackerRejected) as info:
        await site.admin.create_issue(PROJECT, IssueUpdate(summary="bad", priority="No Such Priority"))
    assert "priority" in info.value.errors


async def test_comment_author_and_updated_by_for_human_changes(site: Site) -> None:
    issue = await site.admin.create_issue(PROJECT, IssueUpdate(summary="who"))
    await site.human.add_comment(issue.key, from_plain_text("hi"))
    snap = await site.admin.get_issue(issue.key)
    human = (await site.human.check()).user
    assert snap.updated_by is not None
    assert (snap.updated_by.account_id, snap.updated_by.username) == (human.account_id, human.username)


# ------------------------------------------------------------------------------------------------
# Polling


async def _collect(site: Site, since: dt.datetime, page_size: int) -> list[IssueSnapshot]:
    poller = site.adapter(poll_page_size=page_size)
    out: list[IssueSnapshot] = []
    try:
        async for snap in poller.changed_since(since, projects=[PROJECT]):
            out.append(snap)
            assert len(out) < 500
    finally:
        await poller.close()
    return out


async def test_changed_since_across_page_boundaries_in_one_minute(site: Site) -> None:
    since = dt.datetime.now(dt.UTC)
    created = [await site.admin.create_issue(PROJECT, IssueUpdate(summary=f"p{i}")) for i in range(23)]
    got = await _collect(site, since, page_size=10)
    ids = [s.id for s in got]
    assert set(ids) >= {c.id for c in created}
    assert len(ids) == len(set(ids)), "overlapping pages must be de-duplicated"
    updated = [s.updated for s in got if s.updated is not None]
    assert updated == sorted(updated), "oldest first"


async def test_changed_since_survives_updates_during_the_scan(site: Site) -> None:
    since = dt.datetime.now(dt.UTC)
    created = [await site.admin.create_issue(PROJECT, IssueUpdate(summary=f"s{i}")) for i in range(25)]
    poller = site.adapter(poll_page_size=10)
    seen: dict[str, list[str | None]] = {}
    try:
        count = 0
        async for snap in poller.changed_since(since, projects=[PROJECT]):
            seen.setdefault(snap.id, []).append(snap.summary)
            count += 1
            assert count < 500
            if count == 1:
                # an issue of the first page jumps to the end, shifting every later one left:
                # with plain offset paging the issue at the page boundary would be skipped
                await site.human.update_issue(created[0].key, IssueUpdate(summary="moved"))
                await site.human.update_issue(created[1].key, IssueUpdate(summary="moved too"))
    finally:
        await poller.close()
    assert {c.id for c in created} <= set(seen)


async def test_changed_since_uses_the_users_time_zone_and_minute_granularity(site: Site) -> None:
    """An issue updated a few seconds before ``since`` is inside the margin; one from long ago is not."""
    old = await site.admin.create_issue(PROJECT, IssueUpdate(summary="old"))
    since = dt.datetime.now(dt.UTC)
    got = await _collect(site, since, page_size=10)
    assert old.id in {s.id for s in got}  # within poll_margin: re-delivered, callers dedupe
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    assert await _collect(site, later, page_size=10) == []


async def test_changed_since_with_known_lists_and_reads_only_the_unknown(site: Site) -> None:
    since = dt.datetime.now(dt.UTC)
    created = [await site.admin.create_issue(PROJECT, IssueUpdate(summary=f"k{i}")) for i in range(12)]
    await site.human.add_comment(created[3].key, from_plain_text("a person's comment"))
    reported = {c.id for c in created[:10]}  # "a webhook reported these"
    asked: list[str] = []

    def known(issue_id: str, updated: dt.datetime) -> bool:
        asked.append(issue_id)
        return issue_id in reported

    poller = site.adapter(poll_page_size=5)
    before = await stats(site)
    try:
        got = [s async for s in poller.changed_since(since, projects=[PROJECT], known=known)]
    finally:
        await poller.close()
    after = await stats(site)
    assert {s.id for s in got} == {c.id for c in created[10:]}
    assert set(asked) >= {c.id for c in created}
    full = {s.id: s for s in got}
    for c in created[10:]:
        assert full[c.id] == await site.admin.get_issue(c.id)  # what is read is read in full
    reads = {
        route: n - before["routes"].get(route, 0)
        for route, n in after["routes"].items()
        if "/issue/{key}" in route and route.startswith("GET")
    }
    assert not any(reads.values()), reads  # nothing reported was read issue by issue
