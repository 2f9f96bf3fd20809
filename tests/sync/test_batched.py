"""Concurrent lanes share tracker calls: the creates of several new twins go to the tracker in one
batched call (each keeps its own intent and marker), and a crash after such a call, before any of
them is recorded, still converges without duplicates."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.richtext import from_plain_text
from tests.sync.conftest import Pair, Side, eventually


class HeldCreates:
    """Wraps the engineering adapter's ``create_issues_ref``: the first call waits for ``gate`` (so
    replicas pile up behind it); every call's batch size is recorded."""

    def __init__(self, adapter: Any) -> None:
        self.adapter, self.real = adapter, adapter.create_issues_ref
        self.gate = asyncio.Event()
        self.sizes: list[int] = []
        adapter.create_issues_ref = self

    async def __call__(self, project: str, items: Any) -> Any:
        self.sizes.append(len(items))
        await self.gate.wait()
        return await self.real(project, items)

    def restore(self) -> None:
        self.adapter.create_issues_ref = self.real


async def intents_kept(side: Side) -> int:
    """Create intents left in the store (a closed one is deleted, not kept)."""
    return int(await side.node.db.read(lambda c: c.execute("SELECT COUNT(*) FROM intents").fetchone()[0]))


async def pile_up(pair: Pair, count: int) -> tuple[list[str], HeldCreates]:
    """``count`` new issues on support, synced while engineering's first create is held."""
    sup, eng = pair.support, pair.engineering
    held = HeldCreates(eng.engine.adapter)
    keys = [await sup.create(f"batched {n}") for n in range(count)]
    for key in keys:
        await sup.engine.sync(key, sup.connection)

    async def all_waiting() -> bool:
        return eng.engine._busy == count and sum(held.sizes) >= 1

    await eventually(all_waiting, what="every replica waiting for its create")
    return keys, held


async def test_creates_of_concurrent_lanes_share_one_call(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    keys, held = await pile_up(pair, 4)
    held.gate.set()
    await pair.settle()
    held.restore()
    assert sum(held.sizes) == 4 and max(held.sizes) >= 2 and len(held.sizes) <= 3
    twins = [await pair.twin_of(sup, key) for key in keys]
    assert sorted(twins) == eng.twin_keys() and len(set(twins)) == 4
    for key, twin in zip(keys, twins, strict=True):
        issue = await eng.adapter.get_issue(twin)
        assert issue.summary == (await sup.adapter.get_issue(key)).summary
        [view] = await eng.engine.status(twin)
        assert view.state == "linked" and view.last_result == "applied"
    assert await eng.engine.errors(include_resolved=True) == []
    assert await intents_kept(eng) == 0


async def test_crash_after_a_batched_create_adopts_every_issue_once(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    eng.engine.crash_points.add("create_issue")
    keys, held = await pile_up(pair, 4)
    held.gate.set()

    async def created() -> bool:
        return len(eng.twin_keys()) == 4 and not eng.engine._busy

    await eventually(created, what="every issue created on engineering")
    held.restore()
    assert max(held.sizes) >= 2  # a batched call created several, then the crash
    for twin in eng.twin_keys():  # the crash left them unrecorded
        assert await eng.engine.status(twin) == []
    assert await intents_kept(eng) == 4  # open, settled at the next start
    await eng.restart_engine()
    twins = [await pair.twin_of(sup, key) for key in keys]
    await pair.settle()
    assert eng.twin_keys() == sorted(twins) and len(set(twins)) == 4
    for twin in twins:
        [view] = await eng.engine.status(twin)
        assert view.state == "linked" and view.last_received_version == 1
    assert await intents_kept(eng) == 0


async def test_a_created_twin_whose_apply_was_cut_short_is_not_sent_back_before_it_is_answered(
    pair: Pair,
) -> None:
    """A crash after the create was recorded and before the outcome: until the replica is applied
    again and answered, a change reported for the new issue must not go to the peer (which does
    not know the twin yet and would create a second issue from it)."""
    sup, eng = pair.support, pair.engineering
    eng.engine.crash_points.add("add_comment")
    key = await sup.create("Created, commented, killed")
    await sup.human.add_comment(key, from_plain_text("first words"))
    await sup.engine.sync(key, sup.connection)

    async def crashed() -> bool:
        return len(eng.twin_keys()) == 1 and not eng.engine._busy

    await eventually(crashed, what="the create and the crash on engineering")
    [eng_key] = eng.twin_keys()
    await eng.restart_engine(start=False)
    await eng.engine.local_change(eng_key, reason="poll")  # a poll sees the new issue first
    [view] = await eng.engine.status(eng_key)
    assert view.last_sent_version is None
    await eng.engine.start()
    assert await pair.twin_of(sup, key) == eng_key
    await pair.settle()
    await sup.engine.idle()
    assert sup.twin_keys() == [key] and eng.twin_keys() == [eng_key]
    assert len((await eng.adapter.get_issue(eng_key)).comments) == 1
