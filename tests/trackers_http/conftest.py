"""Every async test here runs twice: on asyncio's own event loop and on uvloop (the nodes' loop in
production), whose transports differ in buffering, TLS and error paths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # not on Windows
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
