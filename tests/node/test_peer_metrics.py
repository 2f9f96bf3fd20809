"""The peer listener faces the internet: by default it does not serve /metrics (which names the
node's connections and counts their traffic); the admin listener always does."""

from __future__ import annotations

import aiohttp

from tests.node.conftest import MakeNode


async def test_peer_listener_hides_metrics_unless_asked(make_node: MakeNode) -> None:
    quiet = await make_node("Quiet")
    talkative = await make_node("Talkative", peer={"serve_metrics": True})
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{quiet.peer_url}/metrics") as r:
            assert r.status == 404
        async with http.get(f"{quiet.admin_url}/metrics") as r:
            assert r.status == 200
            assert "tandem_" in await r.text()
        async with http.get(f"{talkative.peer_url}/metrics") as r:
            assert r.status == 200
            assert "tandem_" in await r.text()
