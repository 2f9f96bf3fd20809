"""Rate limits, fault injection and request accounting for the GitHub emulator.

GitHub has two kinds of limits, and the emulator has both:

* the **primary** limit: ``limit`` requests per token per ``window`` seconds (5000/hour by default).
  Every authenticated response carries ``x-ratelimit-limit/remaining/used/reset/resource``; when
  ``remaining`` is 0 the answer is 403 with ``x-ratelimit-remaining: 0`` until ``reset``. A 304 from a
  conditional request does not count (as on GitHub).
* **secondary** limits: ``secondary.next_n`` requests get 403 (or 429) with ``retry-after``.

Everything is driven by ``POST /_emulator/faults`` (see :meth:`Faults.from_spec`).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any


class FaultSpecError(ValueError):
    pass


def _number(spec: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise FaultSpecError(f"'{key}' must be a number between {lo} and {hi}")
    return float(value)


@dataclass
class Bucket:
    used: int = 0
    reset: float = 0.0  # epoch seconds


@dataclass
class Faults:
    error_rate: float = 0.0
    status: int = 503
    latency_ms: float = 0.0
    limit: int = 5000
    window: float = 3600.0
    secondary_next_n: int = 0
    secondary_retry_after: float = 60.0
    secondary_status: int = 403
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    buckets: dict[str, Bucket] = field(default_factory=dict, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> Faults:
        if not isinstance(spec, dict):
            raise FaultSpecError("the fault spec must be a JSON object")
        known = {"error_rate", "status", "latency_ms", "rate_limit", "secondary", "seed"}
        unknown = set(spec) - known
        if unknown:
            raise FaultSpecError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        faults = cls(
            error_rate=_number(spec, "error_rate", 0.0, 0.0, 1.0),
            status=int(_number(spec, "status", 503, 400, 599)),
            latency_ms=_number(spec, "latency_ms", 0.0, 0.0, 60000.0),
        )
        seed = spec.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise FaultSpecError("'seed' must be an integer")
            faults.seed = seed
            faults._rng.seed(seed)
        primary = spec.get("rate_limit")
        if primary is not None:
            if not isinstance(primary, dict):
                raise FaultSpecError('\'rate_limit\' must be an object like {"limit": 10, "window": 60}')
            faults.limit = int(_number(primary, "limit", 5000, 0, 10_000_000))
            faults.window = _number(primary, "window", 3600.0, 0.001, 86400.0)
        secondary = spec.get("secondary")
        if secondary is not None:
            if not isinstance(secondary, dict):
                raise FaultSpecError('\'secondary\' must be an object like {"next_n": 2, "retry_after": 1}')
            faults.secondary_next_n = int(_number(secondary, "next_n", 1, 0, 1_000_000))
            faults.secondary_retry_after = _number(secondary, "retry_after", 60.0, 0.0, 3600.0)
            faults.secondary_status = int(_number(secondary, "status", 403, 403, 429))
            if faults.secondary_status not in (403, 429):
                raise FaultSpecError("'secondary.status' must be 403 or 429")
        return faults

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "rate_limit": {"limit": self.limit, "window": self.window},
            "secondary": {
                "next_n": self.secondary_next_n,
                "retry_after": self.secondary_retry_after,
                "status": self.secondary_status,
            },
            "seed": self.seed,
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

    def should_fail(self) -> bool:
        return self.error_rate > 0 and self._rng.random() < self.error_rate


@dataclass
class Stats:
    total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    injected_errors: int = 0
    rate_limited: int = 0
    secondary_limited: int = 0
    not_modified: int = 0

    def count(self, route: str) -> None:
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1

    def status(self, code: int) -> None:
        key = str(code)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "routes": dict(sorted(self.by_route.items())),
            "statuses": dict(sorted(self.by_status.items())),
            "injectedErrors": self.injected_errors,
            "rateLimited": self.rate_limited,
            "secondaryLimited": self.secondary_limited,
            "notModified": self.not_modified,
        }
