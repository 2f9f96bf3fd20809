"""Foreground runner for ``tandem emulate github``: start the emulator, print one readiness line
(``Emulating github at http://HOST:PORT (user LOGIN)``), serve until SIGINT/SIGTERM (or ``stop``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import click

from node.trackers.common.emulator import serve_foreground

from .emulator import GitHubEmulator
from .state import StateError


async def serve(
    host: str,
    port: int,
    *,
    user: str,
    token: str,
    repos: tuple[str, ...] = (),
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """``repos`` are ``owner/name`` (or ``name`` for the user's own); an owner other than ``user`` is
    created as an organisation."""
    try:
        emu = GitHubEmulator(user=user, token=token)
        for spec in repos:
            owner, sep, name = spec.partition("/")
            if not sep:
                owner, name = user, spec
            if emu.state.find_user(owner) is None:
                emu.state.add_user(owner, type="Organization")
            emu.state.create_repo(owner, name)
    except StateError as err:
        raise click.ClickException(f"{err}") from err
    await serve_foreground(
        emu,
        host,
        port,
        ready=lambda base: f"Emulating github at {base} (user {user})",
        stop=stop,
        on_ready=on_ready,
    )
