"""The emulator's lifecycle: start an aiohttp site, deliver webhooks, persist state, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Literal

from node.trackers.common.emulator import Emulator

from .server import JiraApp
from .state import EmulatorState, Mode, StateError, new_state

log = logging.getLogger(__name__)


class JiraEmulator(Emulator):
    """A Jira Cloud or Server site on a local port.

    >>> emu = JiraEmulator(mode="cloud")
    >>> base_url = await emu.start(host="127.0.0.1", port=0)   # "http://127.0.0.1:PORT"
    >>> emu.state.add_project("PROJ")
    >>> await emu.stop()

    ``state_file``: loaded at start if it exists (its mode must match), saved atomically every
    ``save_interval`` seconds when something changed, and on stop. Lifecycle: :class:`Emulator`.
    """

    app: JiraApp

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
        self._saver: asyncio.Task[None] | None = None

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

    def _describe(self) -> str:
        return f"Jira emulator ({self.mode})"

    def _started(self) -> None:
        if self.state_file is not None:
            self._saver = asyncio.create_task(self._save_loop(), name="jira-emu-save")

    async def _stopping(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None

    def _stopped(self) -> None:
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
