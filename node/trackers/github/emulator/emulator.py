"""The GitHub emulator's lifecycle: start an aiohttp site, deliver webhooks, stop cleanly."""

from __future__ import annotations

import logging

from aiohttp import web

from .faults import Faults
from .server import GitHubApp
from .state import GitHubState

log = logging.getLogger(__name__)


class GitHubEmulator:
    """GitHub's REST API on a local port, with one initial user (``user``, authenticated by ``token``).

    >>> emu = GitHubEmulator(user="octocat", token="ghp_octocat")
    >>> base_url = await emu.start(host="127.0.0.1", port=0)   # "http://127.0.0.1:PORT"
    >>> emu.state.create_repo("octocat", "hello")
    >>> await emu.stop()

    State lives in memory only (``POST /_emulator/reset`` starts over).
    """

    def __init__(self, *, user: str = "octocat", token: str = "ghp_octocat", name: str | None = None) -> None:
        state = GitHubState()
        state.add_user(user, token=token, name=name or user.capitalize())
        self.user = user
        self.token = token
        self.app = GitHubApp(state)
        self.app.initial_user = (user, token)
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    @property
    def state(self) -> GitHubState:
        return self.app.state

    @property
    def faults(self) -> Faults:
        return self.app.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.app.faults = value

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.app.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None and getattr(server, "sockets", None)
        bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"
        self.app.base_url = self.base_url
        await self.app.dispatcher.start()
        log.info("GitHub emulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        await self.app.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drain_webhooks(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every webhook queued so far was delivered or failed."""
        await self.app.dispatcher.drain(timeout)

    async def __aenter__(self) -> GitHubEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
