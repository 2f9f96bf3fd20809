"""The correctness guarantees: no echo, no duplicate twins, crash safety, concurrent edits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from node.trackers.base import IssueSnapshot, IssueUpdate
from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, eventually


async def linked(pair: Pair, summary: str) -> tuple[str, str]:
    key = await pair.support.create(summary)
    await pair.support.engine.sync(key, pair.support.connection)
    return key, await pair.twin_of(pair.support, key)


async def test_echo_is_not_sent_but_a_person_edit_is(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Echo chamber")
    await sup.human.update_issue(key, IssueUpdate(summary="Echo chamber v2", priority="High"))
    await sup.human.add_comment(key, from_plain_text("hello engineering"))
    await sup.engine.local_change(key)

    async def applied() -> bool:
        [view] = await eng.engine.status(eng_key)
        return view.last_received_version == 2

    await eventually(applied, what="the update to be applied")
    # the webhook of engineering's own write comes back: nothing is sent
    await eng.engine.local_change(eng_key)
    await eng.engine.local_change(eng_key, reason="poll")
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version is None
    outcome = await eng.engine.sync(eng_key, eng.connection)
    assert not outcome.sent and "unchanged" in outcome.reason
    # a person's edit right after IS sent
    await eng.human.update_issue(eng_key, IssueUpdate(priority="Low"))
    await eng.engine.local_change(eng_key)
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version == 1

    async def back() -> bool:
        return (await sup.adapter.get_issue(key)).priority == "Low"

    await eventually(back, what="the person's edit on support")
    # ...and support's application of it is not echoed either
    await pair.settle()
    await sup.engine.local_change(key)
    [sview] = await sup.engine.status(key)
    assert sview.last_sent_version == 2
    assert len((await sup.adapter.get_issue(key)).comments) == 1


async def test_no_duplicate_twin_when_webhook_manual_and_bulk_collide(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await sup.engine.add_trigger(sup.connection, "project = SUP AND labels = escalate", note="escalations")
    key = await sup.create("Everyone at once", labels=["escalate"])
    results = await asyncio.gather(
        sup.engine.local_change(key),
        sup.engine.local_change(key, reason="poll"),
        sup.engine.sync(key, sup.connection),
        sup.engine.start_bulk(sup.connection, "project = SUP"),
        sup.engine.local_change(key),
    )
    job = results[3]

    async def bulk_done() -> bool:
        return (await sup.engine.bulk_job(job.id)).state == "done"  # type: ignore[attr-defined]

    await eventually(bulk_done, what="the bulk job")
    await pair.twin_of(sup, key)
    await pair.settle()
    assert eng.twin_keys() == ["ENG-1"]
    [view] = await sup.engine.status(key)
    assert view.last_sent_version == 1
    finished = await sup.engine.bulk_job(job.id)  # type: ignore[attr-defined]
    assert (finished.total, finished.done, finished.failed) == (1, 1, 0)


async def test_crash_between_create_and_record_adopts_by_marker(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    eng.engine.crash_points.add("create_issue")
    key = await sup.create("Created, then killed")
    await sup.engine.sync(key, sup.connection)

    async def created() -> bool:
        return len(eng.twin_keys()) == 1

    await eventually(created, what="the issue on the engineering tracker")
    assert await eng.engine.status("ENG-1") == []  # the crash left it unrecorded
    await eng.restart_engine()
    eng_key = await pair.twin_of(sup, key)
    assert eng_key == "ENG-1" and eng.twin_keys() == ["ENG-1"]
    [view] = await eng.engine.status("ENG-1")
    assert view.remote_key == key and view.state == "linked" and view.last_received_version == 1
    # later updates land on the adopted issue
    await sup.human.update_issue(key, IssueUpdate(summary="Created, killed, adopted"))
    await sup.engine.local_change(key)

    async def updated() -> bool:
        return (await eng.adapter.get_issue("ENG-1")).summary == "Created, killed, adopted"

    await eventually(updated, what="the update on the adopted issue")
    assert eng.twin_keys() == ["ENG-1"]


async def test_crash_between_comment_and_record_adds_it_once(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Comment then crash")
    eng.engine.crash_points.add("add_comment")
    await sup.human.add_comment(key, from_plain_text("only once, please"))
    await sup.engine.local_change(key)

    async def commented() -> bool:
        return len((await eng.adapter.get_issue(eng_key)).comments) == 1

    await eventually(commented, what="the comment on the engineering tracker")
    await eng.restart_engine()

    async def answered() -> bool:
        [view] = await eng.engine.status(eng_key)
        return view.last_received_version == 2

    await eventually(answered, what="the replica re-processed after the restart")
    assert len((await eng.adapter.get_issue(eng_key)).comments) == 1
    # and the adopted comment is mapped: deleting it on support deletes it on engineering
    [original] = (await sup.adapter.get_issue(key)).comments
    await sup.human.delete_comment(key, original.id)
    await sup.engine.local_change(key)

    async def gone() -> bool:
        return (await eng.adapter.get_issue(eng_key)).comments == []

    await eventually(gone, what="the deletion of the adopted comment")


async def test_concurrent_edits_to_different_fields_are_both_kept(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Two hands")
    await sup.human.update_issue(key, IssueUpdate(priority="Highest"))
    await eng.human.update_issue(eng_key, IssueUpdate(summary="Two hands, one issue"))
    await asyncio.gather(sup.engine.local_change(key), eng.engine.local_change(eng_key))

    async def converged() -> bool:
        a, b = await sup.adapter.get_issue(key), await eng.adapter.get_issue(eng_key)
        return (a.summary, a.priority) == (b.summary, b.priority) == ("Two hands, one issue", "Highest")

    await eventually(converged, what="both edits on both sides")
    assert await sup.engine.conflicts() == [] and await eng.engine.conflicts() == []


async def test_same_field_edited_on_both_sides_later_wins_and_is_recorded(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key, eng_key = await linked(pair, "Tug of war")
    await sup.human.update_issue(key, IssueUpdate(summary="Support's title"))
    await asyncio.sleep(0.01)  # distinct change times: the engineering edit is the later one
    await eng.human.update_issue(eng_key, IssueUpdate(summary="Engineering's title"))
    await asyncio.gather(sup.engine.local_change(key), eng.engine.local_change(eng_key))

    async def converged() -> bool:
        a, b = await sup.adapter.get_issue(key), await eng.adapter.get_issue(eng_key)
        return a.summary == b.summary == "Engineering's title"

    await eventually(converged, what="the later edit on both sides")
    await pair.settle()
    conflicts = [*await sup.engine.conflicts(), *await eng.engine.conflicts()]
    assert conflicts, "the conflict must be recorded"
    assert all(c.field == "summary" for c in conflicts)
    assert {(c.local_value, c.remote_value) for c in conflicts} <= {
        ("Support's title", "Engineering's title"),
        ("Engineering's title", "Support's title"),
    }


async def test_an_issue_created_with_the_peers_comments_is_not_echoed_back(pair: Pair) -> None:
    """The create's baseline counts the comments it added as the peer's (they are recorded with
    the outcome, after the fingerprint): their webhooks coming back send nothing. Engineering's
    reads lose the comments' markers here, so only the recorded comment ids can tell."""
    sup, eng = pair.support, pair.engineering
    adapter: Any = eng.adapter
    real_get_issue, real_get_issues = adapter.get_issue, adapter.get_issues

    async def get_issue(id_or_key: str) -> IssueSnapshot:
        return (await real_get_issue(id_or_key)).model_copy(update={"comment_markers": {}})

    async def get_issues(ids: Sequence[str]) -> dict[str, IssueSnapshot]:
        got = await real_get_issues(ids)
        return {k: v.model_copy(update={"comment_markers": {}}) for k, v in got.items()}

    adapter.get_issue, adapter.get_issues = get_issue, get_issues
    key = await sup.create("Created with comments")
    await sup.human.add_comment(key, from_plain_text("first"))
    await sup.human.add_comment(key, from_plain_text("second"))
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await pair.settle()
    assert len((await eng.adapter.get_issue(eng_key)).comments) == 2
    await eng.engine.local_change(eng_key)
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version is None
    # a person's comment there is not the peer's: it goes out
    await eng.human.add_comment(eng_key, from_plain_text("from engineering"))
    await eng.engine.local_change(eng_key)
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version == 1
