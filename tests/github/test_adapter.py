"""GitHub-specific adapter behaviour beyond the shared contract (tests/adapters/test_github.py):
hidden markers, pull requests, conditional polling, rate limits, GitHub's missing features."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from node.trackers.base import (
    IssueUpdate,
    TrackerAuthError,
    TrackerNotFound,
    TrackerRejected,
    TrackerTransient,
)
from node.trackers.github import GitHubAdapter
from node.trackers.github.mapping import split_marker, with_marker
from protocol.replica import UserRef
from protocol.richtext import from_plain_text, plain_text

from .conftest import BOT_TOKEN, FAST, REPO, Site

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("marker", ["tandem:abc", "a-->b <x> & ' \" \n tail", "ünï/cödé?#"])
def test_marker_round_trip_cannot_escape_the_comment(marker: str) -> None:
    body = with_marker("Some **text**", marker)
    assert body.count("-->") == 1 and "\n tail" not in body
    assert split_marker(body) == ("Some **text**", marker)
    assert split_marker("no marker here") == ("no marker here", None)


async def test_marker_is_hidden_kept_on_edit_and_found(site: Site, adapter: GitHubAdapter) -> None:
    created = await adapter.create_issue(
        REPO, IssueUpdate(summary="twin", description=from_plain_text("visible text")), marker="m-1"
    )
    raw = site.emu.state.repo("bot", "tracker").issues[1].body or ""
    assert "<!-- tandem:marker=m-1 -->" in raw
    assert plain_text(created.description).strip() == "visible text"
    assert created.properties == {"tandem.marker": {"marker": "m-1"}}
    await adapter.update_issue(created.key, IssueUpdate(description=from_plain_text("rewritten")))
    snap = await adapter.get_issue(created.key)
    assert plain_text(snap.description).strip() == "rewritten" and "tandem" not in str(snap.description)
    found = await adapter.find_issue_by_marker(REPO, "m-1")
    assert found is not None and found.key == created.key


async def test_pull_requests_are_skipped(site: Site, adapter: GitHubAdapter) -> None:
    issue = await adapter.create_issue(REPO, IssueUpdate(summary="real issue"), marker="m-2")
    repo = site.emu.state.repo("bot", "tracker")
    pull = site.emu.state.create_issue(repo, "bot", "a PR", pull_request=True)
    pull.body = with_marker("", "m-3")
    keys = [s.key async for s in adapter.changed_since(EPOCH)]
    assert keys == [issue.key]
    page = await adapter.search(f"repo:{REPO} state:all")
    assert [s.key for s in page.issues] == [issue.key]
    assert await adapter.find_issue_by_marker(REPO, "m-3") is None
    with pytest.raises(TrackerNotFound, match="pull request"):
        await adapter.get_issue(f"{REPO}#{pull.number}")


async def test_repeated_poll_is_answered_by_304(site: Site, adapter: GitHubAdapter) -> None:
    await adapter.create_issue(REPO, IssueUpdate(summary="one"))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    first = [s.key async for s in adapter.changed_since(since)]
    used = site.emu.app.faults.bucket("bot").used
    again = [s.key async for s in adapter.changed_since(since)]
    assert first == again == [f"{REPO}#1"]
    assert adapter.client.not_modified >= 2  # the list and the issue's events
    assert site.emu.app.faults.bucket("bot").used == used, "304 answers must not use the rate limit"


async def test_primary_limit_waits_until_reset(site: Site, adapter: GitHubAdapter) -> None:
    site.emu.app.faults.limit = 2
    site.emu.app.faults.window = 1.0
    site.emu.app.faults.buckets.clear()
    started = time.monotonic()
    for i in range(3):  # POSTs: never answered from the ETag cache
        await adapter.create_issue(REPO, IssueUpdate(summary=f"n{i}"))
    assert time.monotonic() - started >= 0.3, "the third call must have waited for the reset"
    assert adapter.client.rate.limit == 2


async def test_primary_limit_too_far_away_is_raised(site: Site) -> None:
    site.emu.app.faults.limit = 1
    site.emu.app.faults.window = 3600
    site.emu.app.faults.buckets.clear()
    a = GitHubAdapter(site.url, token=BOT_TOKEN, repos=[REPO], **FAST)
    try:
        await a.check()
        with pytest.raises(TrackerTransient, match="primary rate limit") as info:
            await a.check()
        assert info.value.retry_after is not None and info.value.retry_after > 3000
        assert a.client.rate.remaining == 0
    finally:
        await a.close()


async def test_secondary_limit_honours_retry_after(site: Site, adapter: GitHubAdapter) -> None:
    site.emu.app.faults.secondary_next_n = 1
    site.emu.app.faults.secondary_retry_after = 0.3
    started = time.monotonic()
    await adapter.check()
    assert time.monotonic() - started >= 0.3


async def test_transitions_follow_the_state(adapter: GitHubAdapter) -> None:
    issue = await adapter.create_issue(REPO, IssueUpdate(summary="flow"))
    assert [t.id for t in await adapter.transitions(issue.key)] == ["close", "close_not_planned"]
    await adapter.transition(issue.key, "close_not_planned")
    snap = await adapter.get_issue(issue.key)
    assert (snap.status and snap.status.name, snap.resolution) == ("closed", "not_planned")
    assert snap.resolved is not None
    assert [t.id for t in await adapter.transitions(issue.key)] == ["reopen"]
    await adapter.transition(issue.key, "reopen")
    snap = await adapter.get_issue(issue.key)
    assert (snap.status and snap.status.category, snap.resolution) == ("new", None)
    assert [(c.from_value, c.to_value) for c in snap.changelog if c.field == "status"] == [
        ("open", "closed"),
        ("closed", "open"),
    ]
    with pytest.raises(TrackerRejected, match="unknown GitHub transition"):
        await adapter.transition(issue.key, "Done")


async def test_what_github_cannot_do_is_refused_clearly(site: Site, adapter: GitHubAdapter) -> None:
    issue = await adapter.create_issue(REPO, IssueUpdate(summary="limits"))
    with pytest.raises(TrackerRejected, match="no internal"):
        await adapter.add_comment(issue.key, from_plain_text("secret"), internal=True)
    with pytest.raises(TrackerRejected, match="cannot delete issues"):
        await adapter.delete_issue(issue.key)
    with pytest.raises(TrackerRejected, match="not a supported qualifier"):
        await adapter.search("repo:bot/tracker some free text")
    with pytest.raises(TrackerRejected, match="not a GitHub repository"):
        await adapter.create_issue("no-slash", IssueUpdate(summary="x"))
    with pytest.raises(TrackerNotFound, match="not a GitHub issue key"):
        await adapter.get_issue("PROJ-1")
    with pytest.raises(TrackerRejected, match="no GitHub user"):
        await adapter.update_issue(issue.key, IssueUpdate(assignee=UserRef(username="ghost")))
    with pytest.raises(TrackerRejected, match="need a title"):  # refused before any side effect
        await adapter.update_issue(issue.key, IssueUpdate(summary=" ", fix_versions=["9.9"]))
    assert not site.emu.state.repo("bot", "tracker").milestones
    site.emu.state.repo("bot", "tracker").issues[1].locked = True
    with pytest.raises(TrackerAuthError, match="403"):
        await adapter.add_comment(issue.key, from_plain_text("locked"))


async def test_milestones_are_created_on_demand_or_refused(site: Site, adapter: GitHubAdapter) -> None:
    issue = await adapter.create_issue(REPO, IssueUpdate(summary="m", fix_versions=["2.0"]))
    assert issue.fix_versions == ["2.0"]
    strict = GitHubAdapter(site.url, token=BOT_TOKEN, repos=[REPO], create_missing_milestones=False, **FAST)
    try:
        await strict.update_issue(issue.key, IssueUpdate(fix_versions=["2.0"]))  # exists: fine
        with pytest.raises(TrackerRejected, match=r"no milestone '3\.0'"):
            await strict.update_issue(issue.key, IssueUpdate(fix_versions=["3.0"]))
    finally:
        await strict.close()


async def test_webhooks_with_a_secret(site: Site, adapter: GitHubAdapter, human: GitHubAdapter) -> None:
    from tests.adapters.contract import WebhookReceiver

    issue = await adapter.create_issue(REPO, IssueUpdate(summary="hooked"))
    async with WebhookReceiver() as receiver:
        hook_id = await adapter.register_webhook(receiver.url, secret="hush")
        assert hook_id.startswith(f"{REPO}:")
        await human.transition(issue.key, "close")
        event = await receiver.wait_for(adapter, lambda e: e.kind == "issue_updated", 5)
        assert event.changed_fields == ["status", "resolution"] and event.actor is not None
        assert event.actor.username == "jane"
        await adapter.unregister_webhook(hook_id)
        assert site.emu.state.repo("bot", "tracker").hooks == {}
    assert await asyncio.to_thread(lambda: True)


async def test_webhook_needs_configured_repos(site: Site) -> None:
    bare = GitHubAdapter(site.url, token=BOT_TOKEN, **FAST)
    try:
        with pytest.raises(TrackerRejected, match="per repository"):
            await bare.register_webhook("http://127.0.0.1:9/")
        with pytest.raises(TrackerRejected, match="repositories to watch"):
            [s async for s in bare.changed_since(EPOCH)]
    finally:
        await bare.close()


async def test_token_is_never_sent_to_another_host(adapter: GitHubAdapter) -> None:
    with pytest.raises(TrackerRejected, match="another host"):
        await adapter.client.request("GET", "http://example.invalid/repos/x/y")
    assert "ghp_" not in repr(adapter) and "ghp_" not in repr(adapter.client)
