"""Stopping background tasks reliably.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as the awaited
event fires (fixed in 3.12); a loop built on it then runs on, and a ``stop()`` that awaits it after
one ``cancel()`` hangs. Loops here wait with ``asyncio.timeout`` instead, and stopping cancels
again until every task has ended, whatever a library underneath does with one cancellation.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` on uvloop's event loop when it is installed (a dependency on Linux and
    macOS: node B's CPU in a 2,000-issue bulk was about a tenth lower on it than on asyncio's
    selector loop in one A/B pair, docs/benchmarks.md), else on asyncio's own.
    ``TANDEM_EVENT_LOOP=asyncio`` in the environment chooses asyncio's loop regardless (for
    comparing, or to rule uvloop out)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if os.environ.get("TANDEM_EVENT_LOOP", "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


#: Allocations (net, of objects the collector tracks) between two young-generation collections.
#: With Python's default, 700, each node of a 3,000-issue benchmark run collected 1,700–2,700 times
#: and spent 2.6 s of CPU in it, mostly in the oldest generation's passes over every long-lived
#: object. At 50,000 the same run collected 2–3 times per node (0.04–0.07 s) at the same peak RSS.
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze what exists now (modules, classes, settings: never garbage, never scanned again)
    and collect the young generation less often (:data:`GC_GEN0_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
