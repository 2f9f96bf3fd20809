"""Foreground runner for ``tandem emulate github``: start the emulator, print one readiness line
(``Emulating github at http://HOST:PORT (user LOGIN)``), serve until SIGINT/SIGTERM (or ``stop``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable

import click

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
    try:
        base = await emu.start(host=host, port=port)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    click.echo(f"Emulating github at {base} (user {user})")
    sys.stdout.flush()
    if on_ready is not None:
        on_ready(base)
    try:
        await stop.wait()
    finally:
        await emu.stop()
        click.echo("Emulator stopped")
