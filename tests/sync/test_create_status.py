"""A replica created away from the initial status: the new twin is created without being read back,
then walked to the replica's status after the apply's final read."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.sync.conftest import Pair, Side


async def routes(side: Side) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(f"{side.base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return dict(body["routes"])


def issue_reads(before: dict[str, int], after: dict[str, int]) -> int:
    """Issue reads between two stats: ``GET issue/{key}``, or a search (``get_issues`` reads by one)."""
    return sum(
        n - before.get(route, 0)
        for route, n in after.items()
        if route == "GET /rest/api/{v}/issue/{key}" or route.endswith("/search") or "/search/" in route
    )


async def test_created_twin_is_walked_to_the_replica_status(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Created while in progress")
    accept = next(t for t in await sup.human.transitions(key) if t.to.category == "indeterminate")
    await sup.human.transition(key, accept.id)
    before = await routes(eng)
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await pair.settle()
    after = await routes(eng)
    status = (await eng.adapter.get_issue(eng_key)).status
    assert status is not None and status.category == "indeterminate"
    reads = issue_reads(before, after)
    assert reads == 2  # the final read, and again after the walk it showed was needed
    assert await eng.engine.errors(include_resolved=True) == []
    [view] = await eng.engine.status(eng_key)
    assert view.last_result == "applied"


async def test_created_twin_in_the_initial_status_is_read_once(pair: Pair) -> None:
    sup, eng = pair.support, pair.engineering
    key = await sup.create("Created and left alone")
    before = await routes(eng)
    await sup.engine.sync(key, sup.connection)
    eng_key = await pair.twin_of(sup, key)
    await pair.settle()
    after = await routes(eng)
    reads = issue_reads(before, after)
    assert reads == 1
    assert (await eng.adapter.get_issue(eng_key)).summary == "Created and left alone"
