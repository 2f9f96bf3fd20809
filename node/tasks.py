"""Stopping background tasks reliably.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as the awaited
event fires (fixed in 3.12); a loop built on it then runs on, and a ``stop()`` that awaits it after
one ``cancel()`` hangs. Loops here wait with ``asyncio.timeout`` instead, and stopping cancels
again until every task has ended, whatever a library underneath does with one cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]], *, again_after: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until all have ended, cancelling those still running every
    ``again_after`` seconds. Their exceptions are retrieved (logged at debug), not raised."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    while pending:
        _done, pending = await asyncio.wait(pending, timeout=again_after)
        for task in pending:
            log.debug("task %s survived a cancellation; cancelling it again", task.get_name())
            task.cancel()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.debug("task %s ended with %r", task.get_name(), task.exception())
