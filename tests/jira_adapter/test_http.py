"""The shared retry policy: Retry-After parsing, backoff bounds, bounded attempts."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from node.trackers.base import TrackerAuthError, TrackerNotFound, TrackerRejected, TrackerTransient
from node.trackers.http import RetryPolicy, error_for_status, parse_retry_after, with_retries

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),  # in the past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(7)
    for attempt in range(1, 12):
        for _ in range(50):
            d = policy.delay(attempt, None, rng)
            assert 0.0 <= d <= min(8.0, 2 ** (attempt - 1))
    assert policy.delay(3, 42.0) == 42.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, TrackerTransient),
        (500, TrackerTransient),
        (503, TrackerTransient),
        (408, TrackerTransient),
        (501, TrackerRejected),
        (401, TrackerAuthError),
        (403, TrackerAuthError),
        (404, TrackerNotFound),
        (400, TrackerRejected),
        (409, TrackerRejected),
    ],
)
def test_error_for_status(status: int, kind: type[Exception]) -> None:
    err = error_for_status(status, "x", retry_after=2.0, errors={"summary": "required"})
    assert type(err) is kind
    assert err.status == status
    if isinstance(err, TrackerTransient):
        assert err.retry_after == 2.0
    if isinstance(err, TrackerRejected):
        assert err.errors == {"summary": "required"}


class _Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_retries_transient_then_succeeds_honouring_retry_after() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    call = _Flaky(
        [TrackerTransient("busy", status=429, retry_after=7.0), TrackerTransient("boom", status=502)]
    )
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=4.0)
    assert await with_retries(call, policy, sleep=sleep, rng=random.Random(1)) == "ok"
    assert call.calls == 3
    assert slept[0] == 7.0
    assert 0.0 <= slept[1] <= 1.0  # second attempt failed: ceiling base*2


async def test_gives_up_after_max_attempts() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    call = _Flaky([TrackerTransient(f"busy {i}", status=503) for i in range(10)])
    with pytest.raises(TrackerTransient, match="busy 3"):
        await with_retries(call, RetryPolicy(max_attempts=4, base_delay=0.01), sleep=sleep)
    assert call.calls == 4
    assert len(slept) == 3


async def test_does_not_retry_permanent_errors() -> None:
    async def sleep(s: float) -> None:
        raise AssertionError("must not sleep")

    for exc in (TrackerAuthError("no"), TrackerNotFound("gone"), TrackerRejected("bad")):
        call = _Flaky([exc])
        with pytest.raises(type(exc)):
            await with_retries(call, RetryPolicy(), sleep=sleep)
        assert call.calls == 1


async def test_too_long_retry_after_is_surfaced_not_slept() -> None:
    async def sleep(s: float) -> None:
        raise AssertionError("must not park for an hour")

    call = _Flaky([TrackerTransient("later", status=429, retry_after=3600.0)])
    with pytest.raises(TrackerTransient) as info:
        await with_retries(call, RetryPolicy(max_retry_after=60.0), sleep=sleep)
    assert info.value.retry_after == 3600.0
    assert call.calls == 1
