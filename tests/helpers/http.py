"""A real aiohttp server on loopback for tests (webhook receivers, fake sites)."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Start ``app`` on 127.0.0.1 at a port the OS chooses; returns the runner (``cleanup()`` it)
    and the base URL ``http://127.0.0.1:PORT``."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"
