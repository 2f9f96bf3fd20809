"""An applied replica's inbox row is marked processed in the transaction that queues its reply:
a crash while the reply is being queued leaves the row unprocessed (never marked without its
reply), and after the restart the replica is answered, once, with its comments recorded once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from node.sync.engine import SimulatedCrash
from protocol.messages import Result
from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, eventually


async def _unprocessed(side: Any) -> int:
    row = await side.node.db.read(
        lambda c: c.execute("SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL").fetchone()
    )
    return int(row[0])


@contextlib.contextmanager
def crash_on_reply(side: Any) -> Iterator[list[int]]:
    """``side``'s engine crashes as it queues a ``Result`` (each crash's message count is listed)."""
    manager: Any = side.engine.manager
    real_send = manager.send
    crashed: list[int] = []

    async def crashing_send(rt: Any, messages: Any, processed: Any = ()) -> Any:
        if any(isinstance(m, Result) for m in messages):
            crashed.append(len(messages))
            raise SimulatedCrash("queue the reply")
        return await real_send(rt, messages, processed=processed)

    manager.send = crashing_send
    try:
        yield crashed
    finally:
        manager.send = real_send


async def test_a_crash_while_the_reply_is_queued_leaves_the_replica_to_answer_again(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Reply and mark")
    await sup.human.add_comment(key, from_plain_text("first words"))
    with crash_on_reply(eng) as crashed:
        await sup.engine.sync(key, sup.connection)

        async def crashed_once() -> bool:
            return bool(crashed) and len(eng.twin_keys()) == 1

        await eventually(crashed_once, what="the apply to crash while queuing its reply")
        assert await _unprocessed(eng) == 1  # applied and recorded, but not answered: not marked
    await eng.restart_engine()
    twin = await pair.twin_of(sup, key)
    await pair.settle()
    assert eng.twin_keys() == [twin]
    assert await _unprocessed(eng) == 0
    assert eng.node.manager.get(eng.connection).inbox_unprocessed == 0
    comments = (await eng.adapter.get_issue(twin)).comments
    assert len(comments) == 1 and "first words" in str(comments[0].body)
    mapped = await eng.node.db.read(lambda c: c.execute("SELECT COUNT(*) FROM twin_comments").fetchone())
    assert int(mapped[0]) == 1


async def test_a_replica_paused_by_a_rule_error_is_marked_with_its_reply(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await eng.engine.save_draft(eng.connection, "incoming", "script", "fridays = 0\nratio = 1 / fridays\n")
    await eng.engine.publish(eng.connection, "incoming")
    key = await sup.create("Paused on arrival")
    with crash_on_reply(eng) as crashed:
        await sup.engine.sync(key, sup.connection)

        async def paused() -> list[object]:
            return [e for e in await eng.engine.errors() if e.kind == "rule"] if crashed else []

        await eventually(paused, what="the rule error, then a crash while queuing its reply")
        assert await _unprocessed(eng) == 1  # paused and recorded, but not answered: not marked
    await eng.restart_engine()

    async def told() -> str | None:
        [view] = await sup.engine.status(key)
        return view.last_result if (view.last_result or "").startswith("failed") else None

    assert "paused" in await eventually(told, what="the failure reported to support")
    await pair.settle()
    assert await _unprocessed(eng) == 0
    assert eng.node.manager.get(eng.connection).inbox_unprocessed == 0
