"""A client for a node's admin API over HTTP, as any client sees it (shared by the node and surface
suites)."""

from __future__ import annotations

from typing import Any

import aiohttp

from node.app import Node


class Api:
    """The admin API over HTTP, as any client sees it: ``call`` sends the node's bearer token unless
    ``token`` names another one (None: no Authorization header) and insists on a JSON answer."""

    def __init__(self, node: Node, session: aiohttp.ClientSession) -> None:
        assert node.admin_url is not None
        self.url = node.admin_url
        self.token = node.home.admin_token()
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = "", raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {}
        if token == "":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.url + path, **kwargs) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()
