"""A backlog of incoming replicas larger than the in-memory bound: beyond it only sequence numbers
wait in memory (read back from the inbox); every message is still applied, in order per issue."""

from __future__ import annotations

import asyncio
from typing import Any

from node.sync.settings import SyncSettings
from node.trackers.base import IssueUpdate
from tests.sync.conftest import Pair, eventually


async def test_backlog_beyond_the_in_memory_bound_is_applied_in_order(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await eng.restart_engine(SyncSettings(retry_base_seconds=0.05, apply_concurrency=4))
    eng.engine.in_memory = 2
    gate = asyncio.Event()
    adapter: Any = eng.engine.adapter
    create = adapter.create_issues_ref

    async def held_create(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await create(*args, **kwargs)

    adapter.create_issues_ref = held_create
    try:
        keys = [await sup.create(f"backlog {n}") for n in range(4)]
        for key in keys:
            await sup.engine.sync(key, sup.connection)
        for version in (2, 3):  # two edits of every issue, each its own replica
            for key in keys:
                await sup.human.update_issue(key, IssueUpdate(summary=f"{key} v{version}"))
                await sup.engine.local_change(key)

        async def backlog() -> tuple[int, int] | None:
            decoded, by_seq = eng.engine.waiting()
            # 12 replicas: 4 taken by the apply slots, 1 waiting for a slot, the rest queued
            return (decoded, by_seq) if decoded + by_seq >= 7 else None

        decoded, by_seq = await eventually(backlog, what="engineering's backlog")
        assert decoded <= 2 and by_seq >= 5
    finally:
        gate.set()
        adapter.create_issues_ref = create
    await pair.settle()
    for key in keys:
        eng_key = await pair.twin_of(sup, key)
        assert (await eng.adapter.get_issue(eng_key)).summary == f"{key} v3"
        [view] = await eng.engine.status(eng_key)
        assert view.last_received_version == 3 and view.last_result == "applied"
    assert eng.engine.waiting() == (0, 0)
    assert await eng.engine.errors(include_resolved=True) == []
