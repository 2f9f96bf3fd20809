from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from node.app import Node
from node.config import parse_config
from node.home import Home

MakeNode = Callable[..., Coroutine[Any, Any, Node]]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[MakeNode]:
    """Start in-process nodes on OS-chosen loopback ports; stopped at teardown."""
    started: list[Node] = []

    async def make(name: str = "A", *, public: bool = True, **sections: dict[str, Any]) -> Node:
        data: dict[str, Any] = {
            "node": {"name": name},
            "peer": {"mode": "public" if public else "private", "listen": "127.0.0.1:0"},
            "admin": {"listen": "127.0.0.1:0"},
            "links": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5},
        }
        for key, values in sections.items():
            data.setdefault(key, {}).update(values)
        config = parse_config(data)
        home = Home(tmp_path / name.lower())
        identity = home.create(config)
        node = Node(home, config, identity, home.admin_token())
        await node.start()
        started.append(node)
        return node

    yield make
    for node in reversed(started):
        await node.stop()
