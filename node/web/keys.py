"""Typed aiohttp application keys shared by the admin and peer apps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from node.app import Node

NODE: web.AppKey[Node] = web.AppKey("node")
