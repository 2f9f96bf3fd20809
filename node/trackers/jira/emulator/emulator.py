"""The emulator's lifecycle: start an aiohttp site, deliver webhooks, persist state, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal

from aiohttp import web

from .server import JiraApp
from .state import EmulatorState, Mode, StateError, new_state

log = logging.getLogger(__name__)


class JiraEmulator:
    """A Jira Cloud or Server site on a local port.

    >>> emu = JiraEmulator(mode="cloud")
    >>> base_url = await emu.start(host="127.0.0.1", port=0)   # "http://127.0.0.1:PORT"
    >>> emu.state.add_project("PROJ")
    >>> await emu.stop()

    ``state_file``: loaded at start if it exists (its mode must match), saved atomically every
    ``save_interval`` seconds when something changed, and on stop.
    """

    def __init__(
        self,
        mode: Literal["cloud", "server"] = "cloud",
        *,
        user: str = "admin",
        password: str = "admin",
        state_file: str | Path | None = None,
        save_interval: float = 5.0,
    ) -> None:
        if mode not in ("cloud", "server"):
            raise ValueError(f"mode must be 'cloud' or 'server', not {mode!r}")
        self.mode: Mode = mode
        self.state_file = Path(state_file) if state_file is not None else None
        self.save_interval = save_interval
        state = self._initial_state(user, password)
        self.app = JiraApp(state, admin=user, password=password)
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self.base_url: str | None = None

    def _initial_state(self, user: str, password: str) -> EmulatorState:
        if self.state_file is not None and self.state_file.exists():
            state = EmulatorState.load(self.state_file)
            if state.mode != self.mode:
                raise StateError(f"{self.state_file} holds a {state.mode} site, not {self.mode}")
            if state.find_user(name=user) is None:
                state.add_user(user, password=password, groups=["jira-administrators", "jira-users"])
            return state
        return new_state(self.mode, user=user, password=password)

    @property
    def state(self) -> EmulatorState:
        return self.app.state

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.app.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)
        assert sockets, "the site did not bind a socket"
        bound = sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"
        self.app.base_url = self.base_url
        await self.app.dispatcher.start()
        self.app.dispatcher_running = True
        if self.state_file is not None:
            self._saver = asyncio.create_task(self._save_loop(), name="jira-emu-save")
        log.info("Jira emulator (%s) listening on %s", self.mode, self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        self.app.dispatcher_running = False
        await self.app.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.save()

    def save(self) -> None:
        """Write the state file now (no-op without ``state_file``)."""
        if self.state_file is not None:
            self.state.save(self.state_file)
            self.app.dirty = False

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval)
            if self.app.dirty:
                try:
                    self.save()
                except OSError as err:
                    log.warning("could not save emulator state to %s: %s", self.state_file, err)

    async def drain_webhooks(self, wait: float = 10.0) -> None:
        """Wait until every webhook queued so far was delivered or failed."""
        await self.app.dispatcher.drain(wait)

    async def __aenter__(self) -> JiraEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
