"""Fault injection and request accounting for the emulator (driven by ``POST /_emulator/faults``)."""

from __future__ import annotations

import random
import time
from collections import deque
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
class Faults:
    """What to do to the next requests under ``/rest`` and ``/secure``."""

    error_rate: float = 0.0  # probability of answering ``status`` instead of serving
    status: int = 503
    latency_ms: float = 0.0
    rate_requests: int | None = None  # at most this many requests ...
    rate_seconds: float = 1.0  # ... per this many seconds, else 429
    next_n_429: int = 0  # the next N requests get 429 regardless
    retry_after: float = 1.0
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _window: deque[float] = field(default_factory=deque, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> Faults:
        if not isinstance(spec, dict):
            raise FaultSpecError("the fault spec must be a JSON object")
        known = {"error_rate", "status", "latency_ms", "rate_limit", "seed"}
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
        rate = spec.get("rate_limit")
        if rate is not None:
            if not isinstance(rate, dict):
                raise FaultSpecError("'rate_limit' must be an object")
            faults.retry_after = _number(rate, "retry_after", 1.0, 0.0, 3600.0)
            if "next_n_429" in rate:
                faults.next_n_429 = int(_number(rate, "next_n_429", 0, 0, 1_000_000))
            if "requests" in rate:
                faults.rate_requests = int(_number(rate, "requests", 1, 1, 1_000_000))
                faults.rate_seconds = _number(rate, "per_seconds", 1.0, 0.001, 86400.0)
            if "next_n_429" not in rate and "requests" not in rate:
                raise FaultSpecError("'rate_limit' needs 'requests' (with 'per_seconds') or 'next_n_429'")
        return faults

    def as_dict(self) -> dict[str, Any]:
        rate: dict[str, Any] | None = None
        if self.rate_requests is not None or self.next_n_429:
            rate = {"retry_after": self.retry_after, "next_n_429": self.next_n_429}
            if self.rate_requests is not None:
                rate.update(requests=self.rate_requests, per_seconds=self.rate_seconds)
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "rate_limit": rate,
            "seed": self.seed,
        }

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

    def should_fail(self) -> bool:
        return self.error_rate > 0 and self._rng.random() < self.error_rate


@dataclass
class Stats:
    total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    injected_errors: int = 0
    rate_limited: int = 0

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
        }
