"""Rate limits for the GitHub emulator, on top of the shared errors/latency and request accounting
of :mod:`node.trackers.common.emulator`.

GitHub has two kinds of limits, and the emulator has both:

* the **primary** limit: ``limit`` requests per token per ``window`` seconds (5000/hour by default).
  Every authenticated response carries ``x-ratelimit-limit/remaining/used/reset/resource``; when
  ``remaining`` is 0 the answer is 403 with ``x-ratelimit-remaining: 0`` until ``reset``. A 304 from a
  conditional request does not count (as on GitHub).
* **secondary** limits: ``secondary.next_n`` requests get 403 (or 429) with ``retry-after``.

Everything is driven by ``POST /_emulator/faults`` (see :meth:`Faults.from_spec`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from node.trackers.common.emulator import BaseFaults, BaseStats, FaultSpecError, spec_number

__all__ = ["Bucket", "FaultSpecError", "Faults", "Stats"]


@dataclass
class Bucket:
    used: int = 0
    reset: float = 0.0  # epoch seconds


@dataclass
class Faults(BaseFaults):
    EXTRA_KEYS: ClassVar[frozenset[str]] = frozenset({"rate_limit", "secondary"})

    limit: int = 5000
    window: float = 3600.0
    secondary_next_n: int = 0
    secondary_retry_after: float = 60.0
    secondary_status: int = 403
    buckets: dict[str, Bucket] = field(default_factory=dict, repr=False)

    def _read_spec(self, spec: dict[str, Any]) -> None:
        primary = spec.get("rate_limit")
        if primary is not None:
            if not isinstance(primary, dict):
                raise FaultSpecError('\'rate_limit\' must be an object like {"limit": 10, "window": 60}')
            self.limit = int(spec_number(primary, "limit", 5000, 0, 10_000_000))
            self.window = spec_number(primary, "window", 3600.0, 0.001, 86400.0)
        secondary = spec.get("secondary")
        if secondary is not None:
            if not isinstance(secondary, dict):
                raise FaultSpecError('\'secondary\' must be an object like {"next_n": 2, "retry_after": 1}')
            self.secondary_next_n = int(spec_number(secondary, "next_n", 1, 0, 1_000_000))
            self.secondary_retry_after = spec_number(secondary, "retry_after", 60.0, 0.0, 3600.0)
            self.secondary_status = int(spec_number(secondary, "status", 403, 403, 429))
            if self.secondary_status not in (403, 429):
                raise FaultSpecError("'secondary.status' must be 403 or 429")

    def _extra_dict(self) -> dict[str, Any]:
        return {
            "rate_limit": {"limit": self.limit, "window": self.window},
            "secondary": {
                "next_n": self.secondary_next_n,
                "retry_after": self.secondary_retry_after,
                "status": self.secondary_status,
            },
        }

    def bucket(self, who: str, now: float | None = None) -> Bucket:
        now = time.time() if now is None else now
        bucket = self.buckets.get(who)
        if bucket is None or now >= bucket.reset:
            bucket = Bucket(used=0, reset=now + self.window)
            self.buckets[who] = bucket
        return bucket

    def secondary_limited(self) -> float | None:
        if self.secondary_next_n > 0:
            self.secondary_next_n -= 1
            return self.secondary_retry_after
        return None


@dataclass
class Stats(BaseStats):
    secondary_limited: int = 0
    not_modified: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "secondaryLimited": self.secondary_limited,
            "notModified": self.not_modified,
        }
