"""HTTP plumbing shared by every tracker adapter: pooled sessions, status → error mapping, and the
retry policy (exponential backoff with full jitter, honouring ``Retry-After``, bounded attempts).

The policy, in one place so every adapter behaves the same:

* only :class:`~node.trackers.base.TrackerTransient` is retried (429, 5xx, timeouts, connection
  errors); auth, not-found and rejected errors surface at once;
* the delay before attempt *n+1* is ``Retry-After`` when the tracker sent one (capped at
  ``max_retry_after``: a tracker asking for an hour gets a ``TrackerTransient`` instead of a parked
  coroutine), else a random value in ``[0, min(max_delay, base_delay * 2**n)]`` ("full jitter");
* after ``max_attempts`` attempts the last ``TrackerTransient`` is raised, with its ``retry_after``,
  so the sync engine can park the work and try again later. Nothing is retried forever.

This module never logs request headers or bodies (they may carry tokens).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from node.trackers.base import (
    TrackerAuthError,
    TrackerError,
    TrackerNotFound,
    TrackerRejected,
    TrackerTransient,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth retrying besides 429: the 5xx family except "not implemented"/"version".
_TRANSIENT_5XX_EXCLUDED = frozenset({501, 505})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds (``"120"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``). ``None`` when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def is_transient_status(status: int) -> bool:
    return status == 429 or (500 <= status <= 599 and status not in _TRANSIENT_5XX_EXCLUDED)


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    errors: Mapping[str, str] | None = None,
) -> TrackerError:
    """The :class:`TrackerError` subclass for an HTTP error status (see the tree in ``base``)."""
    if is_transient_status(status) or status == 408:
        return TrackerTransient(message, status=status, retry_after=retry_after)
    if status in (401, 403):
        return TrackerAuthError(message, status=status)
    if status == 404:
        return TrackerNotFound(message, status=status)
    return TrackerRejected(message, status=status, errors=errors)


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    describe: str = "request",
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``call`` until it returns, raises a non-transient error, or ``policy.max_attempts`` is
    used up. ``call`` must turn connection problems into :class:`TrackerTransient` itself (see
    :func:`transient_from_client_error`)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except TrackerTransient as exc:
            if attempt >= policy.max_attempts:
                raise
            if exc.retry_after is not None and exc.retry_after > policy.max_retry_after:
                raise
            wait = policy.delay(attempt, exc.retry_after, rng)
            if attempt == 1:
                log.info("%s failed (%s); retrying up to %d times", describe, exc, policy.max_attempts - 1)
            else:
                log.debug("%s attempt %d failed (%s); next in %.2fs", describe, attempt, exc, wait)
            await sleep(wait)


def transient_from_client_error(exc: BaseException, describe: str) -> TrackerTransient:
    """Name a connection-level failure (refused, reset, timeout, bad response framing)."""
    if isinstance(exc, TimeoutError):
        detail = str(exc)  # the lean client says what it waited for
        return TrackerTransient(f"{describe}: timed out" + (f" ({detail})" if detail else ""))
    return TrackerTransient(f"{describe}: {type(exc).__name__}: {exc}")


def new_session(
    *,
    limit: int = 10,
    total_timeout: float = 60.0,
    connect_timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
    verify_tls: bool = True,
) -> aiohttp.ClientSession:
    """One pooled session per adapter: ``limit`` concurrent connections, bounded timeouts, TLS
    certificates verified unless ``verify_tls`` is false."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ssl=verify_tls)
    timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=dict(headers or {}))


CLIENT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
