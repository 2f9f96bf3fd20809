"""Comments, status through a status map, custom fields, users, attachments."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from node.sync.settings import SyncSettings
from node.trackers.base import IssueUpdate, TrackerError, TrackerTransient
from protocol.replica import UserRef
from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, Side, eventually

ENG_INCOMING = """
fields:
  customfield_10050: true
  assignee: true
values:
  status:
    map: {Open: To Do, Accepted: To Do, Root Cause Identified: In Progress, Workaround Provided: In Progress,
          Resolved: Done, Closed: Done}
    unmatched: {default: To Do}
users:
  match: [email]
  unmatched: %s
"""
SUP_OUTGOING = """
fields:
  customfield_10050: true
  assignee: true
"""
SUP_INCOMING = """
values:
  status:
    map: {To Do: Open, In Progress: Root Cause Identified, Done: Closed}
    unmatched: ignore
"""


async def publish(side: Side, direction: str, source: str) -> None:
    await side.engine.save_draft(side.connection, direction, "visual", source)  # type: ignore[arg-type]
    await side.engine.publish(side.connection, direction)  # type: ignore[arg-type]


async def linked(pair: Pair, summary: str, **fields: object) -> tuple[str, str]:
    key = await pair.support.create(summary, **fields)  # type: ignore[arg-type]
    await pair.support.engine.sync(key, pair.support.connection)
    return key, await pair.twin_of(pair.support, key)


def texts(issue: object) -> list[str]:
    return [str(c.body) for c in issue.comments]  # type: ignore[attr-defined]


async def test_public_comments_cross_with_edits_and_deletions_internal_never(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Crash on save")
    public = await sup.human.add_comment(key, from_plain_text("customer says: it crashes"))
    await sup.human.add_comment(key, from_plain_text("agent note: customer is grumpy"), internal=True)
    await sup.engine.local_change(key)

    async def arrived() -> bool:
        return any("it crashes" in t for t in texts(await eng.adapter.get_issue(eng_key)))

    await eventually(arrived, what="the public comment")
    issue = await eng.adapter.get_issue(eng_key)
    assert len(issue.comments) == 1 and not any("grumpy" in t for t in texts(issue))
    assert "Jane Agent" in texts(issue)[0]  # the header names the remote author
    # an internal comment on the engineering side never goes to support
    await eng.human.add_comment(eng_key, from_plain_text("eng internal: blame the cache"), internal=True)
    await eng.human.add_comment(eng_key, from_plain_text("eng public: fixed in 2.1"))
    await eng.engine.local_change(eng_key)

    async def back() -> bool:
        return any("fixed in 2.1" in t for t in texts(await sup.adapter.get_issue(key)))

    await eventually(back, what="the engineering comment on support")
    sup_issue = await sup.adapter.get_issue(key)
    assert not any("blame the cache" in t for t in texts(sup_issue))
    assert len(sup_issue.comments) == 3  # public + internal of support, + engineering's public one
    # no echo: the copy on support is not sent back to engineering as a new comment
    await sup.engine.local_change(key)
    await pair.settle()
    assert len((await eng.adapter.get_issue(eng_key)).comments) == 3
    # edit and delete follow
    await sup.human.update_comment(key, public.id, from_plain_text("customer says: it crashes on Tuesdays"))
    await sup.engine.local_change(key)

    async def edited() -> bool:
        return any("on Tuesdays" in t for t in texts(await eng.adapter.get_issue(eng_key)))

    await eventually(edited, what="the comment edit")
    await sup.human.delete_comment(key, public.id)
    await sup.engine.local_change(key)

    async def deleted() -> bool:
        return not any("crashes" in t for t in texts(await eng.adapter.get_issue(eng_key)))

    await eventually(deleted, what="the comment deletion")


async def test_comments_added_by_an_apply_that_fails_later_are_recorded(pair: Pair) -> None:
    """The apply adds the peer's comments, then fails (its final read): the comments it added are
    recorded all the same, as the peer's, so they are never sent back nor added twice."""
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Fails after its comments")
    await sup.human.add_comment(key, from_plain_text("one"))
    await sup.human.add_comment(key, from_plain_text("two"))
    adapter: Any = eng.adapter
    real_get_issues = adapter.get_issues

    async def failing(ids: Sequence[str]) -> object:
        raise TrackerError("the final read is refused")

    adapter.get_issues = failing
    try:
        await sup.engine.sync(key, sup.connection)

        async def failed() -> list[object]:
            return [e for e in await eng.engine.errors() if "the final read is refused" in e.message]

        await eventually(failed, what="the failed apply")
    finally:
        adapter.get_issues = real_get_issues
    [eng_key] = eng.twin_keys()
    local_ids = {c.id for c in (await eng.adapter.get_issue(eng_key)).comments}
    assert len(local_ids) == 2
    rows = await eng.node.db.read(
        lambda c: c.execute("SELECT local_comment_id FROM twin_comments").fetchall()
    )
    assert {str(r[0]) for r in rows} == local_ids


async def test_status_walks_the_support_workflow_through_a_status_map(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await publish(sup, "incoming", SUP_INCOMING)
    await publish(eng, "incoming", ENG_INCOMING % "keep")
    key, eng_key = await linked(pair, "Data loss")
    assert (await eng.adapter.get_issue(eng_key)).status.name == "To Do"  # type: ignore[union-attr]
    done = next(t for t in await eng.human.transitions(eng_key) if t.to.name == "Done")
    await eng.human.transition(eng_key, done.id)
    await eng.engine.local_change(eng_key)

    async def closed() -> str | None:
        status = (await sup.adapter.get_issue(key)).status
        return status.name if status and status.name == "Closed" else None

    await eventually(closed, what="support to reach Closed")
    issue = await sup.adapter.get_issue(key)
    walked = [c.to_value for c in issue.changelog if c.field == "status"]
    assert walked == ["Accepted", "Root Cause Identified", "Workaround Provided", "Resolved", "Closed"]
    # support's own multi-step progress maps back to engineering's statuses
    reopen = next(t for t in await sup.human.transitions(key) if t.name == "Reopen")
    await sup.human.transition(key, reopen.id)
    await sup.engine.local_change(key)

    async def todo() -> bool:
        return (await eng.adapter.get_issue(eng_key)).status.name == "To Do"  # type: ignore[union-attr]

    await eventually(todo, what="engineering back to To Do")


async def test_custom_field_follows_with_visual_rules(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await publish(sup, "outgoing", SUP_OUTGOING)
    await publish(eng, "incoming", ENG_INCOMING % "keep")
    key, eng_key = await linked(pair, "VIP outage", custom_fields={"customfield_10050": "ACME Corp"})
    assert (await eng.adapter.get_issue(eng_key)).custom_fields.get("customfield_10050") == "ACME Corp"
    await sup.human.update_issue(key, IssueUpdate(custom_fields={"customfield_10050": "ACME Inc"}))
    await sup.engine.local_change(key)

    async def follows() -> bool:
        return (await eng.adapter.get_issue(eng_key)).custom_fields.get("customfield_10050") == "ACME Inc"

    await eventually(follows, what="the custom field edit")


@pytest.mark.parametrize("policy", ["default", "keep", "error"])
async def test_unmatched_user_policy(pair: Pair, policy: str) -> None:
    sup, eng = pair.support, pair.engineering
    await publish(sup, "outgoing", SUP_OUTGOING)
    unmatched = {"default": "{default: eng.triage}", "keep": "keep", "error": "error"}[policy]
    await publish(eng, "incoming", ENG_INCOMING % unmatched)
    # a user both sites know (same email) maps by email
    key, eng_key = await linked(
        pair, "Who owns it", assignee=UserRef(username="sam.shared", account_id=_aid(sup, "sam.shared"))
    )
    assignee = (await eng.adapter.get_issue(eng_key)).assignee
    assert assignee is not None and assignee.username == "sam.shared"
    # a support-only user matches nobody in engineering
    await sup.human.update_issue(key, IssueUpdate(assignee=UserRef(account_id=_aid(sup, "jane.agent"))))
    await sup.engine.local_change(key)

    async def answered() -> str | None:
        [view] = await eng.engine.status(eng_key)
        return view.last_result if view.last_received_version == 2 or policy == "error" else None

    if policy == "error":

        async def paused() -> list[object]:
            return [e for e in await eng.engine.errors() if e.kind == "rule"]

        [error] = await eventually(paused, what="the rule error")
        assert error.paused and "no local user matches" in error.message  # type: ignore[attr-defined]
        assert error.entity == eng_key  # type: ignore[attr-defined]

        async def failed() -> str | None:
            [view] = await sup.engine.status(key)
            return view.last_result if (view.last_result or "").startswith("failed") else None

        assert "no local user matches" in await eventually(failed, what="the failure reported back")
    else:
        await eventually(answered, what="engineering to apply version 2")
    assignee = (await eng.adapter.get_issue(eng_key)).assignee
    assert assignee is not None  # never silently unassigned
    assert assignee.username == ("eng.triage" if policy == "default" else "sam.shared")


def _aid(side: Side, login: str) -> str:
    user = side.emu.state.find_user(name=login)
    assert user is not None
    return user.account_id


async def test_attachment_bytes_identical(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Logs attached")
    content = bytes(range(256)) * 2000  # 512 000 bytes: two Blob chunks
    await sup.human.add_attachment(key, "server.log", content, mime_type="text/plain")
    await sup.engine.local_change(key)

    async def arrived() -> list[object]:
        return list((await eng.adapter.get_issue(eng_key)).attachments)

    [att] = await eventually(arrived, what="the attachment")
    assert att.filename == "server.log"  # type: ignore[attr-defined]
    assert att.sha256 == hashlib.sha256(content).hexdigest()  # type: ignore[attr-defined]
    assert await eng.adapter.get_attachment_content(att.id) == content  # type: ignore[attr-defined]
    # the copy is not sent back, and a second local_change adds nothing twice
    await eng.engine.local_change(eng_key)
    await sup.engine.local_change(key)
    await pair.settle()
    assert len((await sup.adapter.get_issue(key)).attachments) == 1
    assert len((await eng.adapter.get_issue(eng_key)).attachments) == 1


async def test_a_retrying_attachment_error_is_resolved_by_the_blob_after_a_restart(pair: Pair) -> None:
    """A Blob names no entity: its retrying error must still be resolved once it succeeds, also
    by an engine that did not record the error itself (the row is found at start-up)."""
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Retried upload")
    real_add = eng.adapter.add_attachment
    calls: list[str] = []

    async def unavailable(*args: object, **kwargs: object) -> object:
        calls.append("add")
        raise TrackerTransient("503 from the tracker", status=503)

    eng.adapter.add_attachment = unavailable  # type: ignore[method-assign]
    try:
        await sup.human.add_attachment(key, "trace.txt", b"stack trace", mime_type="text/plain")
        await sup.engine.local_change(key)

        async def retrying() -> list[object]:
            return [e for e in await eng.engine.errors() if e.state == "retrying"]

        [error] = await eventually(retrying, what="the retrying upload error")
        assert error.entity is None and "503" in error.message  # type: ignore[attr-defined]
        await eng.engine.stop()
    finally:
        eng.adapter.add_attachment = real_add  # type: ignore[method-assign]
    await eng.restart_engine()

    async def arrived() -> list[object]:
        return list((await eng.adapter.get_issue(eng_key)).attachments)

    [att] = await eventually(arrived, what="the attachment after the restart")
    assert att.filename == "trace.txt"  # type: ignore[attr-defined]
    await pair.settle()
    assert [e for e in await eng.engine.errors() if e.state == "retrying"] == []
    [resolved] = [e for e in await eng.engine.errors(include_resolved=True) if e.id == error.id]  # type: ignore[attr-defined]
    assert resolved.state == "resolved"


@pytest.fixture
def sync_settings(request: pytest.FixtureRequest) -> tuple[SyncSettings, SyncSettings]:
    limit = getattr(request, "param", 20 * 1024 * 1024)
    return SyncSettings(retry_base_seconds=0.05), SyncSettings(
        retry_base_seconds=0.05, attachment_max_bytes=limit
    )


@pytest.mark.parametrize("sync_settings", [1000], indirect=True)
async def test_oversize_attachment_refused_with_a_clear_error(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Huge dump")
    await sup.human.add_attachment(key, "core.dump", b"x" * 5000)
    await sup.engine.local_change(key)

    async def refused() -> list[object]:
        return [e for e in await eng.engine.errors() if "core.dump" in e.message]

    [error] = await eventually(refused, what="the size error")
    assert "5000 bytes" in error.message and "1000 bytes" in error.message  # type: ignore[attr-defined]
    assert (await eng.adapter.get_issue(eng_key)).attachments == []
