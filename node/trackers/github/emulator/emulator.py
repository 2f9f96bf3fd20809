"""The GitHub emulator's lifecycle: start an aiohttp site, deliver webhooks, stop cleanly."""

from __future__ import annotations

from node.trackers.common.emulator import Emulator

from .faults import Faults
from .server import GitHubApp
from .state import GitHubState


class GitHubEmulator(Emulator):
    """GitHub's REST API on a local port, with one initial user (``user``, authenticated by ``token``).

    >>> emu = GitHubEmulator(user="octocat", token="ghp_octocat")
    >>> base_url = await emu.start(host="127.0.0.1", port=0)   # "http://127.0.0.1:PORT"
    >>> emu.state.create_repo("octocat", "hello")
    >>> await emu.stop()

    State lives in memory only (``POST /_emulator/reset`` starts over). Lifecycle: :class:`Emulator`.
    """

    app: GitHubApp

    def __init__(self, *, user: str = "octocat", token: str = "ghp_octocat", name: str | None = None) -> None:
        self.user = user
        self.token = token
        self.app = GitHubApp(GitHubState())
        self.app.initial_user = (user, token, name or user.capitalize())
        self.app.reset()  # the initial user, made the same way as after POST /_emulator/reset

    def _describe(self) -> str:
        return "GitHub emulator"

    @property
    def state(self) -> GitHubState:
        return self.app.state

    @property
    def faults(self) -> Faults:
        return self.app.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self.app.faults = value

    async def drain_webhooks(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every webhook queued so far was delivered or failed."""
        await self.app.dispatcher.drain(timeout)
