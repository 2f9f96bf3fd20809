"""A bulk job reads its issues by search pages and is resumable: a job cut short half-way through
a page (its issues partly sent, progress counted item by item) goes on after a restart from where
it was, and every issue ends up with exactly one twin and the counts are right."""

from __future__ import annotations

import asyncio
from typing import Any

from node.sync.settings import SyncSettings
from protocol.messages import ReplicaMessage
from tests.sync.conftest import Pair, eventually


async def test_bulk_reads_by_pages_and_resumes_after_a_restart_mid_page(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    await sup.restart_engine(SyncSettings(retry_base_seconds=0.05, reconcile_batch=5, apply_concurrency=2))
    keys = [await sup.create(f"Paged {i}", labels=["paged"]) for i in range(12)]
    manager: Any = sup.engine.manager
    real_send = manager.send
    sent: list[str] = []
    gate = asyncio.Event()

    async def held_send(rt: Any, messages: Any, processed: Any = ()) -> Any:
        for m in messages:
            if isinstance(m, ReplicaMessage):
                if len(sent) >= 3:
                    await gate.wait()
                sent.append(m.replica.entity.key or "")
        return await real_send(rt, messages, processed=processed)

    manager.send = held_send
    reads: list[str] = []
    adapter: Any = sup.engine.adapter
    real_get = adapter.get_issue

    async def counted_get(key: str) -> Any:
        reads.append(key)
        return await real_get(key)

    adapter.get_issue = counted_get
    try:
        job = await sup.engine.start_bulk(sup.connection, "project = SUP AND labels = paged")

        async def stuck() -> bool:
            # later sends wait at the gate (one batched send may hold two lanes' replicas)
            return len(sent) >= 3 and 1 <= (await sup.engine.bulk_job(job.id)).done <= 3

        await eventually(stuck, what="the job held half-way through its first page")
        assert reads == []  # issues come from the search pages, not one read each
        await sup.restart_engine(SyncSettings(retry_base_seconds=0.05, reconcile_batch=5))
    finally:
        manager.send = real_send
        adapter.get_issue = real_get

    async def done() -> Any:
        view = await sup.engine.bulk_job(job.id)
        return view if view.state == "done" else None

    view = await eventually(done, what="the resumed bulk job")
    assert (view.total, view.done, view.failed) == (12, 12, 0)

    async def all_there() -> bool:
        return len(eng.twin_keys()) == 12

    await eventually(all_there, what="twelve twins")
    await pair.settle()
    assert len(eng.twin_keys()) == 12

    async def linked() -> list[Any] | None:
        views = [(await sup.engine.status(key))[0] for key in keys]
        return views if all(v.state == "linked" for v in views) else None

    views = await eventually(linked, what="every twin linked")
    # the send cut short by the restart cost its issue a version number, never a second twin
    assert all(v.last_sent_version in (1, 2) for v in views)
    assert sorted(v.remote_key for v in views) == eng.twin_keys()
