"""Jira's fault injection: the shared errors/latency (:mod:`node.trackers.common.emulator`) plus
Jira's rate limit, a sliding window answered with 429 and ``Retry-After`` (driven by
``POST /_emulator/faults``)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from node.trackers.common.emulator import BaseFaults, FaultSpecError, spec_number
from node.trackers.common.emulator import BaseStats as Stats

__all__ = ["FaultSpecError", "Faults", "Stats"]


@dataclass
class Faults(BaseFaults):
    """What to do to the next requests under ``/rest`` and ``/secure``."""

    EXTRA_KEYS: ClassVar[frozenset[str]] = frozenset({"rate_limit"})

    rate_requests: int | None = None  # at most this many requests ...
    rate_seconds: float = 1.0  # ... per this many seconds, else 429
    next_n_429: int = 0  # the next N requests get 429 regardless
    retry_after: float = 1.0
    _window: deque[float] = field(default_factory=deque, repr=False)

    def _read_spec(self, spec: dict[str, Any]) -> None:
        rate = spec.get("rate_limit")
        if rate is None:
            return
        if not isinstance(rate, dict):
            raise FaultSpecError("'rate_limit' must be an object")
        self.retry_after = spec_number(rate, "retry_after", 1.0, 0.0, 3600.0)
        if "next_n_429" in rate:
            self.next_n_429 = int(spec_number(rate, "next_n_429", 0, 0, 1_000_000))
        if "requests" in rate:
            self.rate_requests = int(spec_number(rate, "requests", 1, 1, 1_000_000))
            self.rate_seconds = spec_number(rate, "per_seconds", 1.0, 0.001, 86400.0)
        if "next_n_429" not in rate and "requests" not in rate:
            raise FaultSpecError("'rate_limit' needs 'requests' (with 'per_seconds') or 'next_n_429'")

    def _extra_dict(self) -> dict[str, Any]:
        rate: dict[str, Any] | None = None
        if self.rate_requests is not None or self.next_n_429:
            rate = {"retry_after": self.retry_after, "next_n_429": self.next_n_429}
            if self.rate_requests is not None:
                rate.update(requests=self.rate_requests, per_seconds=self.rate_seconds)
        return {"rate_limit": rate}

    def rate_limited(self) -> float | None:
        """Seconds to put in Retry-After when this request must get a 429, else None."""
        if self.next_n_429 > 0:
            self.next_n_429 -= 1
            return self.retry_after
        if self.rate_requests is not None:
            t = time.monotonic()
            while self._window and t - self._window[0] >= self.rate_seconds:
                self._window.popleft()
            if len(self._window) >= self.rate_requests:
                wait = self.rate_seconds - (t - self._window[0])
                return max(self.retry_after, wait)
            self._window.append(t)
        return None
