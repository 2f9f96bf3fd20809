"""The memo of comment properties the adapter wrote itself (``WrittenComments``): a batched read right
after an apply need not read them back, and reads them whenever they could have changed."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging

import pytest

from node.trackers.base import IssueSnapshot, IssueUpdate
from node.trackers.jira import JiraAdapter
from node.trackers.jira.adapter import WrittenComments
from node.trackers.jira.emulator import ops, server
from protocol.replica import UserRef
from protocol.richtext import from_plain_text

from .conftest import PROJECT, Site
from .test_create_lean import delta, routes

COMMENTS = "GET /rest/api/{v}/issue/{key}/comment"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticking(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's clock moves one second per reading: writes never share a millisecond (Jira's
    timestamp granularity), so "changed after our write" is visible in ``updated``."""
    start, ticks = dt.datetime.now(dt.UTC), itertools.count()

    def now() -> dt.datetime:
        return start + dt.timedelta(seconds=next(ticks))

    monkeypatch.setattr(ops, "now", now)
    monkeypatch.setattr(server, "now", now)


async def issue_with_own_comments(adapter: JiraAdapter, count: int, tag: str) -> IssueSnapshot:
    [issue] = await adapter.create_issues_ref(PROJECT, [(IssueUpdate(summary=tag), f"tandem:{tag}")])
    assert isinstance(issue, IssueSnapshot)
    for k in range(count):
        await adapter.add_comment(
            issue.key, from_plain_text(f"{tag} {k}"), internal=k == 1, marker=f"tandem:{tag}.{k}"
        )
    return issue


async def comment_reads(site: Site, adapter: JiraAdapter, issue: IssueSnapshot) -> tuple[IssueSnapshot, int]:
    before = await routes(site)
    got = await adapter.get_issues([issue.id])
    return got[issue.id], delta(before, await routes(site)).get(COMMENTS, 0)


async def primed(site: Site, adapter: JiraAdapter) -> None:
    """The first read that could use the memo checks once that the site keeps comment properties."""
    issue = await issue_with_own_comments(adapter, 1, "prime")
    _snap, reads = await comment_reads(site, adapter, issue)
    assert reads == 1


# ------------------------------------------------------------------ the memo alone


def test_memo_hit_needs_the_same_updated_within_the_window() -> None:
    clock = Clock()
    memo = WrittenComments(size=10, window=60, clock=clock)
    memo.remember("7", "2024-01-01T10:00:00.000+0000", [{"key": "tandem.marker", "value": {"marker": "m"}}])
    assert memo.get("7", "2024-01-01T10:00:00.000+0000") == (("tandem.marker", {"marker": "m"}),)
    assert memo.get("7", "2024-01-01T10:05:00.000+0000") is None  # edited since
    assert memo.get("8", "2024-01-01T10:00:00.000+0000") is None  # never written by us
    clock.now += 60
    assert memo.get("7", "2024-01-01T10:00:00.000+0000") is None  # the window is over
    assert len(memo) == 0


def test_take_hands_over_the_properties_within_the_window_and_removes_the_entry() -> None:
    clock = Clock()
    memo = WrittenComments(size=10, window=60, clock=clock)
    for n in ("7", "8"):
        memo.remember(n, "2024-01-01T10:00:00.000+0000", [{"key": "tandem.marker", "value": {"marker": n}}])
    assert memo.take("7") == (("tandem.marker", {"marker": "7"}),)  # whatever ``updated`` shows now
    assert memo.take("7") is None and memo.get("7", "2024-01-01T10:00:00.000+0000") is None
    assert memo.take("9") is None  # never written by us
    clock.now += 60
    assert memo.take("8") is None  # the window is over
    assert len(memo) == 0


def test_memo_evicts_the_oldest_beyond_its_size() -> None:
    memo = WrittenComments(size=2, window=60)
    for n in range(3):
        memo.remember(str(n), "t", [])
    assert len(memo) == 2
    assert memo.get("0", "t") is None and memo.get("1", "t") == () and memo.get("2", "t") == ()


# ------------------------------------------------------------------ through the adapter


async def test_own_fresh_comments_are_not_read_back(site: Site) -> None:
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 3, "hit")
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 0
        assert len(snap.comment_markers) == 3 and [c.internal for c in snap.comments] == [False, True, False]
        assert snap == await adapter.get_issue(issue.id)
    finally:
        await adapter.close()


async def test_an_edit_by_someone_else_is_read(site: Site, ticking: None) -> None:
    adapter, other = site.adapter(), site.adapter()  # ``other``: same account, another process
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "edit")
        first = (await adapter.get_issue(issue.id)).comments[0]
        await other.update_comment(issue.key, first.id, from_plain_text("edited"), internal=True)
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1 and snap.comments[0].internal
        assert snap == await adapter.get_issue(issue.id)
    finally:
        await adapter.close()
        await other.close()


async def test_a_property_toggled_by_someone_else_is_read(site: Site, ticking: None) -> None:
    adapter, other = site.adapter(), site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "jsm")
        internal = (await adapter.get_issue(issue.id)).comments[1]
        assert internal.internal
        await other.client.request(
            "PUT", f"comment/{internal.id}/properties/sd.public.comment", json_body={"internal": False}
        )
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1 and not snap.comments[1].internal
    finally:
        await adapter.close()
        await other.close()


async def test_our_own_edit_keeps_the_memo_true(site: Site, ticking: None) -> None:
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "own-edit")
        second = (await adapter.get_issue(issue.id)).comments[1]
        await adapter.update_comment(issue.key, second.id, from_plain_text("now public"), internal=False)
        snap, reads = await comment_reads(site, adapter, issue)
        assert not snap.comments[1].internal and snap.comment_markers[second.id] == "tandem:own-edit.1"
        assert snap == await adapter.get_issue(issue.id)
        assert reads == 1  # the property write after the edit bumped the issue (as the emulator does)
    finally:
        await adapter.close()


async def test_our_own_body_edit_keeps_the_memo_and_needs_no_read(site: Site, ticking: None) -> None:
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "own-body")
        second = (await adapter.get_issue(issue.id)).comments[1]
        await adapter.update_comment(issue.key, second.id, from_plain_text("reworded"))
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 0  # the memo, refreshed with the edit's `updated`, still answers
        assert snap.comment_markers[second.id] == "tandem:own-body.1"
        assert snap == await adapter.get_issue(issue.id)
    finally:
        await adapter.close()


async def test_a_persons_comment_is_read(site: Site, ticking: None) -> None:
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "person")
        await site.human.add_comment(issue.key, from_plain_text("a person's"))
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1  # Server: its properties are unknown; both: the issue changed after our writes
        assert snap == await adapter.get_issue(issue.id)
    finally:
        await adapter.close()


async def test_after_the_window_comments_are_read(site: Site) -> None:
    clock = Clock()
    adapter = site.adapter(written_comments=WrittenComments(window=30, clock=clock))
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "late")
        clock.now += 30
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1 and len(snap.comment_markers) == 2
    finally:
        await adapter.close()


async def test_evicted_comments_are_read(site: Site) -> None:
    adapter = site.adapter(written_comments=WrittenComments(size=3))
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "old")
        await issue_with_own_comments(adapter, 2, "new")  # pushes one of "old"'s comments out
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1 and len(snap.comment_markers) == 2
    finally:
        await adapter.close()


async def test_a_site_dropping_comment_properties_is_always_read(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = site.adapter()

    async def dropped(tag: str) -> IssueSnapshot:
        issue = await issue_with_own_comments(adapter, 2, tag)
        for stored in site.emu.state.issues[issue.id].comments:
            stored.properties.clear()  # as a Jira that ignores create-time comment properties
        return issue

    try:
        with caplog.at_level(logging.WARNING, logger="node.trackers.jira.adapter"):
            issue = await dropped("dropped")
            snap, reads = await comment_reads(site, adapter, issue)
            assert reads == 1 and snap.comment_markers == {}
            later = await issue_with_own_comments(adapter, 1, "later")  # this one's properties are kept
            snap, reads = await comment_reads(site, adapter, later)
            assert reads == 1 and snap == await adapter.get_issue(later.id)
            # Still read: the site is known to drop them (not merely unchecked, which the kept
            # properties of "later" would have settled the other way).
            again = await dropped("again")
            snap, reads = await comment_reads(site, adapter, again)
            assert reads == 1 and snap.comment_markers == {}
        warnings = [r for r in caplog.records if "did not keep the create-time properties" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await adapter.close()


def comment_updated(issue: IssueSnapshot, comment_id: str, who: UserRef) -> bytes:
    """A ``comment_updated`` delivery in Jira's shape, made by ``who``."""
    user = {"accountId": who.account_id} if who.account_id else {"name": who.username}
    return json.dumps(
        {
            "webhookEvent": "comment_updated",
            "timestamp": 1_700_000_000_000,
            "user": user,
            "comment": {"id": comment_id, "author": user, "updateAuthor": user},
            "issue": {"id": issue.id, "key": issue.key, "fields": {"project": {"key": PROJECT}}},
        }
    ).encode()


async def test_a_webhook_about_our_comment_from_someone_else_drops_it(site: Site) -> None:
    # e.g. JSM toggling internal/public where Jira bumps no ``updated`` but tells by webhook
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        me = (await adapter.check()).user
        person = (await site.human.check()).user
        issue = await issue_with_own_comments(adapter, 2, "hook")
        first = (await adapter.get_issue(issue.id)).comments[0].id
        [echo] = adapter.parse_webhook({}, comment_updated(issue, first, me))
        assert echo.comment_id == first
        _snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 0  # the echo of our own write leaves the memo as it was
        adapter.parse_webhook({}, comment_updated(issue, first, person))
        _snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 1
    finally:
        await adapter.close()


async def test_on_cloud_jsd_public_outranks_the_memo(site: Site) -> None:
    if site.mode != "cloud":
        pytest.skip("Server shows JSM's flag only as a comment property")
    adapter = site.adapter()
    try:
        await primed(site, adapter)
        issue = await issue_with_own_comments(adapter, 2, "live")
        stored = site.emu.state.issues[issue.id].comments[1]
        stored.properties["sd.public.comment"] = {"internal": False}  # JSM: public, ``updated`` as was
        snap, reads = await comment_reads(site, adapter, issue)
        assert reads == 0 and not snap.comments[1].internal
        assert snap == await adapter.get_issue(issue.id)
    finally:
        await adapter.close()
