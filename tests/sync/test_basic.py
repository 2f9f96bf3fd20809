"""Create and update crossing between the two nodes (Basic rules)."""

from __future__ import annotations

import datetime as dt

from node.trackers.base import IssueUpdate
from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, eventually


async def test_create_crosses_with_its_fields(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create(
        "Printer on fire",
        description=from_plain_text("It smokes."),
        priority="High",
        labels=["cust-acme", "urgent"],
        due_date=dt.date(2030, 1, 2),
        components=["Backend"],
    )
    outcome = await sup.engine.sync(key, "to-eng")
    assert outcome.sent and outcome.version == 1
    eng_key = await pair.twin_of(sup, key)
    issue = await eng.adapter.get_issue(eng_key)
    assert issue.project == "ENG"
    assert issue.summary == "Printer on fire"
    assert issue.priority == "High"
    assert sorted(issue.labels) == ["cust-acme", "urgent"]
    assert issue.due_date == dt.date(2030, 1, 2)
    assert issue.components == ["Backend"]
    assert "It smokes." in str(issue.description)
    [view] = await sup.engine.status(key)
    assert (
        view.state == "linked"
        and view.remote_key == eng_key
        and (view.last_result or "").startswith("applied")
    )
    [back] = await eng.engine.status(eng_key)
    assert back.remote_key == key and back.last_received_version == 1


async def test_edits_follow(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Slow login", priority="Low")
    await sup.engine.sync(key, "to-eng")
    eng_key = await pair.twin_of(sup, key)
    await sup.human.update_issue(
        key,
        IssueUpdate(
            summary="Very slow login",
            priority="Highest",
            labels=["perf"],
            due_date=dt.date(2031, 5, 6),
            components=["API", "Frontend"],
            description=from_plain_text("Takes 30 s."),
        ),
    )
    await sup.engine.local_change(key)

    async def follows() -> bool:
        issue = await eng.adapter.get_issue(eng_key)
        return issue.summary == "Very slow login" and issue.priority == "Highest"

    await eventually(follows, what="the edit on the engineering side")
    issue = await eng.adapter.get_issue(eng_key)
    assert issue.labels == ["perf"]
    assert issue.due_date == dt.date(2031, 5, 6)
    assert sorted(issue.components) == ["API", "Frontend"]
    assert "Takes 30 s." in str(issue.description)
    # and back: engineering edits, support follows
    await eng.human.update_issue(eng_key, IssueUpdate(summary="Slow login (found it)"))
    await eng.engine.local_change(eng_key)

    async def back() -> bool:
        return (await sup.adapter.get_issue(key)).summary == "Slow login (found it)"

    await eventually(back, what="the edit back on the support side")
