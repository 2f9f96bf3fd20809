"""The behaviour every tracker adapter must have, written once against the neutral seam.

A tracker plugs in by subclassing :class:`AdapterContract` in its own test module and providing
these fixtures (see ``test_jira.py``):

``adapter``        the adapter under test, acting as the node's proxy user (admin on its tracker)
``as_human``       a second adapter on the same tracker acting as an ordinary human user
``project``        a project key both users can create and edit issues in
``capabilities``   a :class:`Capabilities` saying which values are valid on this tracker
``bad_adapter``    an adapter pointed at the same tracker with wrong credentials
``rate_limit``     ``async (times, retry_after_seconds)``: the next ``times`` tracker requests get
                   the tracker's rate-limit answer (HTTP ``capabilities.rate_limit_status``) with that
                   ``Retry-After`` (fault injection in the tracker's emulator)

Nothing tracker-specific belongs here: tracker quirks are either a :class:`Capabilities` value or a
test in the tracker's own suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from node.trackers.base import (
    IssueSnapshot,
    IssueUpdate,
    TrackerAdapter,
    TrackerAuthError,
    TrackerEvent,
    TrackerNotFound,
    TrackerRejected,
    TrackerTransient,
)
from protocol.replica import UserRef
from protocol.richtext import from_plain_text, plain_text
from tests.helpers.http import serve

RateLimit = Callable[[int, float], Awaitable[None]]


@dataclass(frozen=True)
class Capabilities:
    """What the tracker under test accepts; every default must hold for a stock installation."""

    #: the tracker's native query matching every issue of a project
    query_project: Callable[[str], str]
    #: a key or id no issue has
    missing_key: str
    internal_comments: bool = True
    can_delete: bool = True
    target_status: str = "Done"  # reachable in one transition from a new issue's status
    target_category: str = "done"
    priorities: tuple[str, ...] = ("High", "Low")
    issue_types: tuple[str, ...] = ("Task", "Bug")
    components: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    #: (field id, value to write, value expected back in ``IssueSnapshot.custom_fields``)
    custom_fields: tuple[tuple[str, Any, Any], ...] = ()
    webhook_timeout: float = 10.0
    #: ``IssueSnapshot.due_date`` can be written (and cleared)
    due_dates: bool = True
    #: ``affects_versions`` can be written besides ``fix_versions`` (``versions`` must be set too)
    affects_versions: bool = True
    #: files can be uploaded and read back; without, both calls must raise ``TrackerRejected``
    attachments: bool = True
    #: the HTTP status of a rate-limited answer (429; GitHub answers 403 with ``retry-after``)
    rate_limit_status: int = 429


def same_user(a: UserRef | None, b: UserRef | None) -> bool:
    if a is None or b is None:
        return False
    pairs = [(a.account_id, b.account_id), (a.username, b.username), (a.email, b.email)]
    return any(x is not None and x == y for x, y in pairs)


def text_of(doc: Any) -> str:
    return plain_text(doc).strip()


class WebhookReceiver:
    """A local HTTP endpoint (127.0.0.1, OS-chosen port) collecting deliveries."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner, base = await serve(app)
        self.url = f"{base}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        await self.deliveries.put((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def wait_for(
        self,
        adapter: TrackerAdapter,
        match: Callable[[TrackerEvent], bool],
        within: float,
    ) -> TrackerEvent:
        """Parse deliveries until one yields an event matching ``match`` (bounded by ``within`` s)."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching webhook delivery arrived in time")
            headers, body = await asyncio.wait_for(self.deliveries.get(), left)
            for event in adapter.parse_webhook(headers, body):
                if match(event):
                    return event


class AdapterContract:
    """Subclass in a tracker's test module; provide the fixtures named in the module docstring."""

    # ------------------------------------------------------------------ helpers

    @staticmethod
    async def new_issue(
        adapter: TrackerAdapter, project: str, summary: str | None = None, **fields: Any
    ) -> IssueSnapshot:
        update = IssueUpdate(summary=summary or f"contract {os.urandom(4).hex()}", **fields)
        return await adapter.create_issue(project, update)

    # ------------------------------------------------------------------ account

    async def test_check_names_the_proxy_user(self, adapter: TrackerAdapter) -> None:
        account = await adapter.check()
        assert not account.user.is_empty()
        assert account.tracker == adapter.kind
        assert account.base_url

    async def test_bad_credentials_raise_auth_error(self, bad_adapter: TrackerAdapter) -> None:
        with pytest.raises(TrackerAuthError) as info:
            await bad_adapter.check()
        assert "credentials" in str(info.value)

    async def test_unknown_issue_is_not_found(
        self, adapter: TrackerAdapter, capabilities: Capabilities
    ) -> None:
        with pytest.raises(TrackerNotFound):
            await adapter.get_issue(capabilities.missing_key)

    # ------------------------------------------------------------------ issues

    async def test_create_then_get(self, adapter: TrackerAdapter, project: str) -> None:
        description = from_plain_text("First line\n\nSecond paragraph")
        created = await adapter.create_issue(
            project,
            IssueUpdate(summary="Created by the contract", description=description, labels=["alpha", "beta"]),
        )
        fetched = await adapter.get_issue(created.key)
        for snap in (created, fetched):
            assert snap.id == created.id and snap.key == created.key
            assert snap.project == project
            assert snap.summary == "Created by the contract"
            assert snap.description is not None
            assert text_of(snap.description) == "First line\n\nSecond paragraph"
            assert sorted(snap.labels) == ["alpha", "beta"]
            assert snap.status is not None and snap.status.category == "new"
            assert snap.created is not None and snap.updated is not None
        me = (await adapter.check()).user
        assert same_user(fetched.updated_by, me), "the proxy user's own change must be attributable"
        assert (await adapter.get_issue(created.id)).key == created.key

    async def test_update_touches_only_given_fields(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        issue = await self.new_issue(
            adapter, project, "keep me", labels=["one"], description=from_plain_text("kept")
        )
        if capabilities.priorities:
            update = IssueUpdate(priority=capabilities.priorities[0])
        else:
            update = IssueUpdate(labels=["one", "two"])
        await adapter.update_issue(issue.key, update)
        after = await adapter.get_issue(issue.key)
        if capabilities.priorities:
            assert after.priority == capabilities.priorities[0] and after.labels == ["one"]
        else:
            assert sorted(after.labels) == ["one", "two"]
        assert after.summary == "keep me"
        assert after.description is not None and text_of(after.description) == "kept"
        await adapter.update_issue(issue.key, IssueUpdate())  # nothing touched: nothing happens
        assert (await adapter.get_issue(issue.key)).updated == after.updated

    async def test_update_each_neutral_field(
        self, adapter: TrackerAdapter, as_human: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        issue = await self.new_issue(adapter, project)
        human = (await as_human.check()).user
        new_doc = from_plain_text("Rewritten description")
        update = IssueUpdate(
            summary="Every field changed", description=new_doc, labels=["x", "y"], assignee=human
        )
        if capabilities.priorities:
            update.priority = capabilities.priorities[-1]
        if capabilities.due_dates:
            update.due_date = dt.date(2031, 12, 24)
        if len(capabilities.issue_types) > 1:
            update.issue_type = capabilities.issue_types[1]
        if capabilities.components:
            update.components = list(capabilities.components[:1])
        if capabilities.versions:
            update.fix_versions = list(capabilities.versions[:1])
            if capabilities.affects_versions:
                update.affects_versions = list(capabilities.versions[-1:])
        if capabilities.custom_fields:
            update.custom_fields = {fid: value for fid, value, _ in capabilities.custom_fields}
        await adapter.update_issue(issue.key, update)
        snap = await adapter.get_issue(issue.key)
        assert snap.summary == "Every field changed"
        assert snap.description is not None and text_of(snap.description) == "Rewritten description"
        if capabilities.priorities:
            assert snap.priority == capabilities.priorities[-1]
        assert sorted(snap.labels) == ["x", "y"]
        if capabilities.due_dates:
            assert snap.due_date == dt.date(2031, 12, 24)
        assert same_user(snap.assignee, human)
        if len(capabilities.issue_types) > 1:
            assert snap.issue_type == capabilities.issue_types[1]
        if capabilities.components:
            assert snap.components == list(capabilities.components[:1])
        if capabilities.versions:
            assert snap.fix_versions == list(capabilities.versions[:1])
            if capabilities.affects_versions:
                assert snap.affects_versions == list(capabilities.versions[-1:])
        for fid, _, expected in capabilities.custom_fields:
            got = snap.custom_fields.get(fid)
            if isinstance(expected, str) and isinstance(got, dict) and got.get("type") == "doc":
                got = text_of(got)
            assert got == expected, fid
            assert snap.field_names.get(fid), f"{fid} has no display name"

        # clearing: None clears a field, an empty list empties one
        clear = IssueUpdate(assignee=None, labels=[])
        if capabilities.due_dates:
            clear.due_date = None
        if capabilities.versions:
            clear.fix_versions = []
        await adapter.update_issue(issue.key, clear)
        cleared = await adapter.get_issue(issue.key)
        assert cleared.due_date is None and cleared.assignee is None and cleared.labels == []
        assert cleared.fix_versions == []
        assert cleared.summary == "Every field changed"

    async def test_delete_issue(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        if not capabilities.can_delete:
            pytest.skip("tracker cannot delete issues")
        issue = await self.new_issue(adapter, project)
        await adapter.delete_issue(issue.key)
        with pytest.raises(TrackerNotFound):
            await adapter.get_issue(issue.key)

    # ------------------------------------------------------------------ markers (crash safety)

    async def test_find_issue_by_marker(self, adapter: TrackerAdapter, project: str) -> None:
        marker = f"tandem:{os.urandom(8).hex()}"
        await self.new_issue(adapter, project)  # a decoy without a marker
        created = await adapter.create_issue(project, IssueUpdate(summary="with marker"), marker=marker)
        await self.new_issue(adapter, project)  # a newer decoy
        found = await adapter.find_issue_by_marker(project, marker)
        assert found is not None and found.id == created.id
        assert await adapter.find_issue_by_marker(project, f"tandem:{os.urandom(8).hex()}") is None

    async def test_create_issue_ref_is_found_by_marker_and_reads_back(
        self, adapter: TrackerAdapter, project: str
    ) -> None:
        marker = f"tandem:{os.urandom(8).hex()}"
        ref = await adapter.create_issue_ref(project, IssueUpdate(summary="lean create"), marker=marker)
        full = await adapter.get_issue(ref.key)
        assert (full.id, full.key, full.summary) == (ref.id, ref.key, "lean create")
        found = await adapter.find_issue_by_marker(project, marker)
        assert found is not None and found.id == ref.id

    async def test_create_issues_ref_one_outcome_per_item_in_order(
        self, adapter: TrackerAdapter, project: str
    ) -> None:
        tag = os.urandom(4).hex()
        items = [(IssueUpdate(summary=f"bulk {tag} {n}"), f"tandem:{tag}:{n}") for n in range(3)]
        items.append((IssueUpdate(summary=f"bulk {tag} unmarked"), None))
        outcomes = await adapter.create_issues_ref(project, items)
        assert len(outcomes) == len(items)
        for (update, marker), made in zip(items, outcomes, strict=True):
            assert isinstance(made, IssueSnapshot), made
            full = await adapter.get_issue(made.key)
            assert (full.id, full.summary) == (made.id, update.summary)
            if marker:
                found = await adapter.find_issue_by_marker(project, marker)
                assert found is not None and found.id == made.id
        assert await adapter.create_issues_ref(project, []) == []

    async def test_get_issues_equals_get_issue(
        self, adapter: TrackerAdapter, as_human: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        """Batched reads give the very snapshot get_issue gives: comments (own with markers,
        internal, a person's), attachments, history; absent ids are left out."""
        busy = await self.new_issue(adapter, project, summary="busy one")
        await adapter.update_issue(busy.key, IssueUpdate(summary="busy one, edited"))
        await adapter.update_issue(busy.key, IssueUpdate(labels=["alpha", "beta"]))
        await adapter.add_comment(busy.key, from_plain_text("mine"), marker=f"c:{os.urandom(4).hex()}")
        await as_human.add_comment(busy.key, from_plain_text("a person's"))
        if capabilities.internal_comments:
            await adapter.add_comment(busy.key, from_plain_text("staff only"), internal=True)
        if capabilities.attachments:
            await as_human.add_attachment(busy.key, "log.txt", b"line 1\n", mime_type="text/plain")
        chatty = await self.new_issue(adapter, project, summary="a person talks")
        await as_human.add_comment(chatty.key, from_plain_text("first"))
        await as_human.add_comment(chatty.key, from_plain_text("second"))
        quiet = await self.new_issue(adapter, project, summary="nothing yet")

        asked = [busy.id, chatty.key, quiet.id, capabilities.missing_key, busy.id]
        got = await adapter.get_issues(asked)
        assert sorted(got) == sorted({busy.id, chatty.key, quiet.id})
        for ref, snap in got.items():
            assert snap == await adapter.get_issue(ref), ref
        assert [text_of(c.body) for c in got[chatty.key].comments] == ["first", "second"]
        assert len(got[busy.id].comment_markers) == 1
        assert await adapter.get_issues([]) == {}

    # ------------------------------------------------------------------ comments

    async def test_comment_add_edit_delete(self, adapter: TrackerAdapter, project: str) -> None:
        issue = await self.new_issue(adapter, project)
        marker = f"c:{os.urandom(6).hex()}"
        added = await adapter.add_comment(issue.key, from_plain_text("hello there"), marker=marker)
        assert text_of(added.body) == "hello there"
        assert added.internal is False
        snap = await adapter.get_issue(issue.key)
        assert [c.id for c in snap.comments] == [added.id]
        assert snap.comment_markers == {added.id: marker}
        me = (await adapter.check()).user
        assert same_user(snap.comments[0].author, me)

        edited = await adapter.update_comment(issue.key, added.id, from_plain_text("hello again"))
        assert edited.id == added.id and text_of(edited.body) == "hello again"
        snap = await adapter.get_issue(issue.key)
        assert text_of(snap.comments[0].body) == "hello again"
        assert snap.comment_markers == {added.id: marker}, "editing must keep the marker"

        await adapter.delete_comment(issue.key, added.id)
        snap = await adapter.get_issue(issue.key)
        assert snap.comments == [] and snap.comment_markers == {}

    async def test_internal_comments(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        if not capabilities.internal_comments:
            pytest.skip("tracker has no internal comments")
        issue = await self.new_issue(adapter, project)
        public = await adapter.add_comment(issue.key, from_plain_text("for everyone"))
        private = await adapter.add_comment(issue.key, from_plain_text("staff only"), internal=True)
        assert private.internal is True
        snap = await adapter.get_issue(issue.key)
        flags = {c.id: c.internal for c in snap.comments}
        assert flags == {public.id: False, private.id: True}
        await adapter.update_comment(issue.key, public.id, from_plain_text("now private"), internal=True)
        snap = await adapter.get_issue(issue.key)
        assert all(c.internal for c in snap.comments)

    # ------------------------------------------------------------------ workflow

    async def test_transition_to_target_status(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        issue = await self.new_issue(adapter, project)
        options = await adapter.transitions(issue.key)
        assert options, "a new issue must have somewhere to go"
        target = next((t for t in options if t.to.name == capabilities.target_status), None)
        assert target is not None, [t.to.name for t in options]
        await adapter.transition(issue.key, target.id)
        snap = await adapter.get_issue(issue.key)
        assert snap.status is not None
        assert (snap.status.name, snap.status.category) == (
            capabilities.target_status,
            capabilities.target_category,
        )
        assert any(c.field == "status" and c.to_value == capabilities.target_status for c in snap.changelog)

    # ------------------------------------------------------------------ attachments

    async def test_attachment_round_trip(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        issue = await self.new_issue(adapter, project)
        if not capabilities.attachments:  # refused with a reason, never silently dropped
            with pytest.raises(TrackerRejected):
                await adapter.add_attachment(issue.key, "dump.bin", b"content")
            with pytest.raises(TrackerRejected):
                await adapter.get_attachment_content("1")
            assert (await adapter.get_issue(issue.key)).attachments == []
            return
        content = os.urandom(70_000) + b"\x00\r\n\xff end"
        digest = hashlib.sha256(content).hexdigest()
        att = await adapter.add_attachment(
            issue.key, "dump é.bin", content, mime_type="application/octet-stream"
        )
        assert att.sha256 == digest and att.size == len(content) and att.filename == "dump é.bin"
        assert await adapter.get_attachment_content(att.id) == content
        snap = await adapter.get_issue(issue.key)
        assert [(a.id, a.sha256, a.size) for a in snap.attachments] == [(att.id, digest, len(content))]

    async def test_attachment_hash_without_prior_upload(
        self, adapter: TrackerAdapter, as_human: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        """Attachments someone else uploaded still get their sha256 in the snapshot."""
        if not capabilities.attachments:
            pytest.skip("this tracker has no attachments (test_attachment_round_trip checks the refusal)")
        issue = await self.new_issue(adapter, project)
        content = b"uploaded by a human"
        await as_human.add_attachment(issue.key, "note.txt", content, mime_type="text/plain")
        snap = await adapter.get_issue(issue.key)
        assert [a.sha256 for a in snap.attachments] == [hashlib.sha256(content).hexdigest()]

    # ------------------------------------------------------------------ users

    async def test_find_user(self, adapter: TrackerAdapter, as_human: TrackerAdapter) -> None:
        human = (await as_human.check()).user
        for probe in (
            human,
            UserRef(email=human.email) if human.email else None,
            UserRef(display_name=human.display_name) if human.display_name else None,
        ):
            if probe is None:
                continue
            found = await adapter.find_user(probe)
            assert same_user(found, human), probe
        assert await adapter.find_user(UserRef(email="nobody-at-all@invalid.example")) is None

    # ------------------------------------------------------------------ search and polling

    async def test_search_pages(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        created = {(await self.new_issue(adapter, project)).id for _ in range(5)}
        seen: list[str] = []
        token: str | None = None
        for _ in range(10):
            page = await adapter.search(capabilities.query_project(project), page_token=token, page_size=2)
            assert len(page.issues) <= 2
            seen.extend(i.id for i in page.issues)
            token = page.next_page_token
            if token is None:
                break
        assert token is None, "pagination did not end"
        assert created <= set(seen)
        assert len(seen) == len(set(seen)), "search pages overlap"

    async def test_search_keys_lists_what_search_lists(
        self, adapter: TrackerAdapter, project: str, capabilities: Capabilities
    ) -> None:
        created = {(await self.new_issue(adapter, project)).key for _ in range(3)}
        query = capabilities.query_project(project)
        keys: list[str] = []
        token: str | None = None
        for _ in range(20):
            page, token = await adapter.search_keys(query, page_token=token, page_size=2)
            keys.extend(page)
            if token is None:
                break
        assert token is None, "pagination did not end"
        assert created <= set(keys) and len(keys) == len(set(keys))
        full: list[str] = []
        token = None
        for _ in range(20):
            result = await adapter.search(query, page_token=token, page_size=50)
            full.extend(i.key for i in result.issues)
            token = result.next_page_token
            if token is None:
                break
        assert sorted(keys) == sorted(full)

    async def test_changed_since(
        self, adapter: TrackerAdapter, as_human: TrackerAdapter, project: str
    ) -> None:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        a = await self.new_issue(adapter, project)
        b = await self.new_issue(as_human, project)
        await adapter.update_issue(a.key, IssueUpdate(summary="touched again"))
        got: dict[str, IssueSnapshot] = {}
        async for snap in _bounded(adapter.changed_since(since, projects=[project]), 500):
            got[snap.id] = snap
        assert {a.id, b.id} <= set(got)
        assert got[a.id].summary == "touched again"
        assert same_user(got[b.id].updated_by, (await as_human.check()).user)

    # ------------------------------------------------------------------ webhooks

    async def test_webhook_round_trip(
        self,
        adapter: TrackerAdapter,
        as_human: TrackerAdapter,
        project: str,
        capabilities: Capabilities,
    ) -> None:
        issue = await self.new_issue(adapter, project)
        human = (await as_human.check()).user
        async with WebhookReceiver() as receiver:
            hook = await adapter.register_webhook(receiver.url)
            try:
                await as_human.update_issue(issue.key, IssueUpdate(summary="edited by a human"))
                event = await receiver.wait_for(
                    adapter,
                    lambda e: (
                        e.kind == "issue_updated" and e.issue_id == issue.id and same_user(e.actor, human)
                    ),
                    capabilities.webhook_timeout,
                )
                assert "summary" in event.changed_fields
                change = next(c for c in event.changelog if c.field == "summary")
                assert change.to_value == "edited by a human"

                comment = await as_human.add_comment(issue.key, from_plain_text("a human speaks"))
                event = await receiver.wait_for(
                    adapter,
                    lambda e: e.kind == "comment_created" and e.comment_id == comment.id,
                    capabilities.webhook_timeout,
                )
                assert event.issue_id == issue.id
                assert same_user(event.actor, human)
            finally:
                await adapter.unregister_webhook(hook)

    # ------------------------------------------------------------------ reliability

    async def test_rate_limit_is_retried_honouring_retry_after(
        self, adapter: TrackerAdapter, project: str, rate_limit: RateLimit
    ) -> None:
        issue = await self.new_issue(adapter, project)
        await rate_limit(2, 0.25)
        started = time.monotonic()
        snap = await adapter.get_issue(issue.key)
        assert snap.id == issue.id
        assert time.monotonic() - started >= 0.5, "Retry-After was not honoured"

    async def test_persistent_rate_limit_gives_up_with_transient(
        self, adapter: TrackerAdapter, project: str, rate_limit: RateLimit, capabilities: Capabilities
    ) -> None:
        issue = await self.new_issue(adapter, project)
        await rate_limit(1000, 0.0)
        with pytest.raises(TrackerTransient) as info:
            await adapter.get_issue(issue.key)
        assert info.value.status == capabilities.rate_limit_status


async def _bounded(source: AsyncIterator[IssueSnapshot], limit: int) -> AsyncIterator[IssueSnapshot]:
    count = 0
    async for item in source:
        count += 1
        assert count <= limit, "changed_since did not end"
        yield item
