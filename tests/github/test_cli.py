"""The foreground runner behind ``tandem emulate github`` (node.trackers.github.emulator.cli)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import click
import pytest

from node.trackers.github.emulator.cli import serve


async def test_serve_creates_repos_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(
            "127.0.0.1",
            0,
            user="demo",
            token="ghp_demo",
            repos=("acme/app", "own"),
            stop=stop,
            on_ready=ready.set_result,
        )
    )
    try:
        base = await asyncio.wait_for(ready, 10)
        assert re.search(rf"Emulating github at {re.escape(base)} \(user demo\)", capsys.readouterr().out)
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer ghp_demo"}) as http:
            for repo in ("acme/app", "demo/own"):
                async with http.get(f"{base}/repos/{repo}") as resp:
                    assert resp.status == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_bad_repo_name_is_a_clear_error() -> None:
    with pytest.raises(click.ClickException, match="Repository creation failed"):
        await serve("127.0.0.1", 0, user="demo", token="t", repos=("demo/bad name",))
