"""Exponential backoff with full jitter, for anything that reconnects or retries forever.

The delay before retry number *n* (0-based, counting failures since the last success) is drawn
uniformly from ``[0, min(cap, base * factor**n)]`` — "full jitter" (AWS Architecture Blog,
*Exponential Backoff and Jitter*): many clients that lost the same server at the same moment spread
their reconnects out instead of arriving together. :meth:`Backoff.reset` after a success starts the
series again from ``base``, so a peer that comes back is retried promptly next time it drops.

No I/O here except :meth:`Backoff.sleep`; the random source is injectable so tests are exact.
"""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """One retry series. Not shared between tasks: give each link its own."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        *,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("base and cap must be positive")
        if base > cap:
            raise ValueError("base must not exceed cap")
        if factor < 1:
            raise ValueError("factor must be at least 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self._rng = rng if rng is not None else random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures since the last :meth:`reset` (or since creation)."""
        return self._failures

    def ceiling(self) -> float:
        """The upper bound of the next delay, without drawing it."""
        # Cap the exponent too, so a link down for weeks never overflows a float.
        exponent = min(self._failures, 64)
        return min(self.cap, self.base * self.factor**exponent)

    def next_delay(self) -> float:
        """Draw the delay before the next attempt and count one more failure."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self._failures += 1
        return delay

    def reset(self) -> None:
        """Call after a success: the next failure waits at most ``base`` again."""
        self._failures = 0

    async def sleep(self) -> float:
        """Sleep for :meth:`next_delay` seconds (cancellable) and return how long that was."""
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay


__all__ = ["Backoff"]
