"""An in-process node whose admin API and CLI are driven for real; its engine is a FakeEngine
(``fake``), none at all (no tracker), or the real SyncEngine (``test_engine_surface.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result

from node.app import Node
from node.cli import main
from node.config import parse_config
from node.home import Home
from tests.helpers.admin_api import Api as Api  # re-exported for the surface tests
from tests.surface.fake import FakeEngine

Cli = Callable[..., Awaitable[Result]]


class FakeEngineNode(Node):
    """A node without a tracker whose ``engine`` a test sets (None: no tracker)."""

    engine: Any = None


async def start_node(root: Path, name: str = "A") -> Node:
    config = parse_config(
        {"node": {"name": name}, "peer": {"mode": "private"}, "admin": {"listen": "127.0.0.1:0"}}, "test"
    )
    home = Home(root / name.lower())
    identity = home.create(config)
    node = FakeEngineNode(home, home.load_config(), identity, home.admin_token())
    await node.start()
    return node


def make_cli(home: Path) -> Cli:
    """Run `tandem --home HOME ARGS…` with the real CLI in a worker thread (it blocks on HTTP while
    the node serves it on this event loop)."""

    async def run(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return await asyncio.wait_for(
            asyncio.to_thread(runner.invoke, main, ["--home", str(home), *args], input=input), timeout=60
        )

    return run


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    started = await start_node(tmp_path)
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def fake(node: Node) -> FakeEngine:
    engine = FakeEngine(issues=(*(f"SUP-{i}" for i in range(1, 21)), "BOOM-1"))
    node.engine = engine
    return engine


@pytest.fixture
async def api(node: Node) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(node, session)


@pytest.fixture
def cli(node: Node) -> Cli:
    return make_cli(node.home.root)
