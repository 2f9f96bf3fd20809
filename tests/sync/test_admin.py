"""What the admin surface calls: rules versions and test runs, rule errors, retry/resolve, triggers,
unlink, bulk."""

from __future__ import annotations

import pytest

from node.sync.service import InvalidInput, NotFound, RuleProblem
from node.trackers.base import IssueUpdate
from tests.sync.conftest import Pair, eventually

BROKEN_SCRIPT = """\
fridays = 0
warn("checking")
ratio = 1 / fridays
"""


async def test_rules_draft_test_publish_rollback(pair: Pair) -> None:
    sup = pair.support
    conn = sup.connection
    [v0] = await sup.engine.rules(conn, "outgoing")
    assert (v0.version, v0.mode, v0.state) == (0, "basic", "published")
    with pytest.raises(RuleProblem, match="no draft"):
        await sup.engine.publish(conn, "outgoing")
    bad = await sup.engine.save_draft(conn, "outgoing", "visual", "fields:\n  summary: [not, a, rule]\n")
    assert bad.state == "draft" and bad.version == 1
    with pytest.raises(RuleProblem) as info:
        await sup.engine.publish(conn, "outgoing")
    assert info.value.path is not None and "summary" in info.value.path
    await sup.engine.save_draft(
        conn, "outgoing", "visual", "skip_if:\n  - {field: labels, contains: secret}\n"
    )
    key = await sup.create("Top secret", labels=["secret"])
    run = await sup.engine.test_rules(conn, "outgoing", key=key)
    assert run.replica is None and any("skipped" in w for w in run.warnings)
    current = await sup.engine.test_rules(conn, "outgoing", key=key, draft=False)
    assert current.replica is not None and current.replica["summary"] == "Top secret"
    v1 = await sup.engine.publish(conn, "outgoing")
    assert (v1.version, v1.state) == (1, "published")
    assert not (await sup.engine.sync(key, conn)).sent  # the published rules filter it out
    await sup.engine.save_draft(conn, "outgoing", "basic", "")
    v2 = await sup.engine.publish(conn, "outgoing")
    assert v2.version == 2
    v3 = await sup.engine.rollback(conn, "outgoing")
    assert (v3.version, v3.mode) == (3, "visual")  # v1 again, as a new version
    states = {(v.version, v.state) for v in await sup.engine.rules(conn, "outgoing")}
    assert states == {(1, "superseded"), (2, "superseded"), (3, "published")}
    with pytest.raises(RuleProblem, match="no earlier"):
        await sup.engine.rollback(conn, "outgoing")


async def test_incoming_test_run_on_a_pasted_replica_applies_nothing(pair: Pair) -> None:
    eng = pair.engineering
    replica = {"entity": {"id": "999", "key": "SUP-999"}, "summary": "Pasted", "priority": "High"}
    run = await eng.engine.test_rules(eng.connection, "incoming", replica=replica)
    assert run.changes is not None and run.changes["action"] == "create"
    assert run.changes["fields"]["summary"] == "Pasted"
    assert eng.twin_keys() == []
    with pytest.raises(InvalidInput, match="not a replica"):
        await eng.engine.test_rules(eng.connection, "incoming", replica={"summary": "no entity"})


async def test_script_error_pauses_the_entity_names_the_line_and_retry_resumes(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await eng.engine.save_draft(eng.connection, "incoming", "script", BROKEN_SCRIPT)
    await eng.engine.publish(eng.connection, "incoming")
    key = await sup.create("Friday escalation")
    await sup.engine.sync(key, sup.connection)

    async def paused() -> list[object]:
        return [e for e in await eng.engine.errors() if e.kind == "rule"]

    [error] = await eventually(paused, within=30, what="the rule error")
    assert error.paused and error.line == 3 and "division" in error.message  # type: ignore[attr-defined]
    assert eng.twin_keys() == []

    async def told() -> str | None:
        [view] = await sup.engine.status(key)
        return view.last_result if (view.last_result or "").startswith("failed") else None

    assert "division" in await eventually(told, what="the failure reported to support")
    # fix the rules, retry: the paused replica is applied
    await eng.engine.save_draft(eng.connection, "incoming", "basic", "")
    await eng.engine.publish(eng.connection, "incoming")
    after = await eng.engine.retry(error.id)  # type: ignore[attr-defined]
    assert after.state == "resolved"
    assert len(eng.twin_keys()) == 1
    assert await eng.engine.errors() == [] or all(e.kind != "rule" for e in await eng.engine.errors())
    with pytest.raises(NotFound):
        await eng.engine.retry(424242)


async def test_resolve_unpauses(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Ok at first")
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await eng.engine.save_draft(eng.connection, "incoming", "script", BROKEN_SCRIPT)
    await eng.engine.publish(eng.connection, "incoming")
    await sup.human.update_issue(key, IssueUpdate(summary="Now broken"))
    await sup.engine.local_change(key)

    async def paused() -> list[object]:
        return [e for e in await eng.engine.errors() if e.kind == "rule"]

    [error] = await eventually(paused, within=30, what="the rule error")
    [view] = await eng.engine.status(eng_key)
    assert view.state == "paused"
    resolved = await eng.engine.resolve(error.id)  # type: ignore[attr-defined]
    assert resolved.state == "resolved" and not resolved.paused
    [view] = await eng.engine.status(eng_key)
    assert view.state == "linked"
    rule_errors = [e for e in await eng.engine.errors(include_resolved=True) if e.kind == "rule"]
    assert [e.id for e in rule_errors] == [error.id]  # type: ignore[attr-defined]
    assert all(e.kind != "rule" for e in await eng.engine.errors())


async def test_triggers_scope_and_unlink(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    with pytest.raises(InvalidInput, match="JQL"):
        await sup.engine.add_trigger(sup.connection, "project = = SUP")
    with pytest.raises(NotFound):
        await sup.engine.add_trigger("nope", "project = SUP")
    trigger = await sup.engine.add_trigger(sup.connection, "priority = Highest", note="hot ones")
    cold = await sup.create("Cold", priority="Low")
    hot = await sup.create("Hot", priority="Highest")
    await sup.engine.local_change(cold)
    await sup.engine.local_change(hot)
    hot_twin = await pair.twin_of(sup, hot)
    assert await sup.engine.status(cold) == []
    await sup.engine.set_trigger_active(trigger.id, False)
    assert [t.active for t in await sup.engine.list_triggers(sup.connection)] == [False]
    await sup.engine.remove_trigger(trigger.id)
    assert await sup.engine.list_triggers() == []
    # unlink: both sides stop
    view = await sup.engine.unlink(hot, sup.connection)
    assert view.state == "unlinked"

    async def unlinked() -> bool:
        [v] = await eng.engine.status(hot_twin)
        return v.state == "unlinked"

    await eventually(unlinked, what="the peer to unlink")
    await sup.human.update_issue(hot, IssueUpdate(summary="Hot, but unlinked"))
    await sup.engine.local_change(hot)
    [after] = await sup.engine.status(hot)
    assert after.last_sent_version == 1
    # a manual sync links it again
    assert (await sup.engine.sync(hot, sup.connection)).sent

    async def relinked() -> bool:
        return (await eng.adapter.get_issue(hot_twin)).summary == "Hot, but unlinked"

    await eventually(relinked, what="the manual sync after unlink")


async def test_bulk_connects_every_matching_issue(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    keys = [await sup.create(f"Bulk {i}", labels=["bulk"]) for i in range(7)]
    await sup.create("Not this one")
    job = await sup.engine.start_bulk(sup.connection, "project = SUP AND labels = bulk")

    async def done() -> object:
        view = await sup.engine.bulk_job(job.id)
        return view if view.state == "done" else None

    view = await eventually(done, what="the bulk job")
    assert (view.total, view.done, view.failed) == (7, 7, 0)  # type: ignore[attr-defined]

    async def all_there() -> bool:
        return len(eng.twin_keys()) == 7

    await eventually(all_there, what="seven twins")
    assert [j.id for j in await sup.engine.list_bulk_jobs()] == [job.id]
    for k in keys:
        assert [v.state for v in await sup.engine.status(k)] in (["linked"], ["pending"])
    with pytest.raises(InvalidInput):
        await sup.engine.start_bulk(sup.connection, "labels ==")
