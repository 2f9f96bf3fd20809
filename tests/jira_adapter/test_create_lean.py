"""``JiraAdapter.create_issue_ref``: create without reading the issue back, marker guaranteed."""

from __future__ import annotations

from typing import Any

import aiohttp

from node.trackers.base import IssueUpdate

from .conftest import PROJECT, Site


async def routes(site: Site) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(f"{site.base_url}/_emulator/stats") as resp:
        body: dict[str, Any] = await resp.json()
        return dict(body["routes"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def test_marker_kept_at_create_costs_one_check_then_only_the_post(site: Site) -> None:
    t0 = await routes(site)
    first = await site.admin.create_issue_ref(PROJECT, IssueUpdate(summary="one"), marker="tandem:c:1")
    t1 = await routes(site)
    second = await site.admin.create_issue_ref(PROJECT, IssueUpdate(summary="two"), marker="tandem:c:2")
    t2 = await routes(site)
    assert sorted(delta(t0, t1)) == [
        "GET /rest/api/{v}/issue/{key}/properties/{prop}",
        "POST /rest/api/{v}/issue",
    ]
    assert list(delta(t1, t2)) == ["POST /rest/api/{v}/issue"]
    assert (first.status, second.summary) == (None, "two")  # not read back
    for snap, marker in ((first, "tandem:c:1"), (second, "tandem:c:2")):
        full = await site.admin.get_issue(snap.key)
        assert full.id == snap.id and full.project == PROJECT
        assert full.properties["tandem.marker"] == {"marker": marker}
        found = await site.admin.find_issue_by_marker(PROJECT, marker)
        assert found is not None and found.id == snap.id


async def test_site_that_ignores_create_properties_gets_the_marker_written(site: Site) -> None:
    site.emu.app.site.keep_create_properties = False
    for n in range(2):
        marker = f"tandem:c:old-{n}"
        before = await routes(site)
        snap = await site.admin.create_issue_ref(PROJECT, IssueUpdate(summary=f"old {n}"), marker=marker)
        made = delta(before, await routes(site))
        assert made.get("PUT /rest/api/{v}/issue/{key}/properties/{prop}") == 1
        assert (await site.admin.get_issue(snap.key)).properties["tandem.marker"] == {"marker": marker}
