from __future__ import annotations

import asyncio
import random

import pytest

from node.transport.backoff import Backoff


class _Top(random.Random):
    """Always draws the top of the range, so the ceiling is observable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_doubles_until_cap() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=_Top())
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.failures == 6


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(base=0.25, cap=10.0, rng=_Top())
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next_delay() == 0.25


def test_full_jitter_spreads_over_whole_range() -> None:
    backoff = Backoff(base=8.0, cap=8.0, rng=random.Random(7))  # every draw from [0, 8]
    draws = [backoff.next_delay() for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 0.5 and max(draws) > 7.5  # full jitter, not "half" or "equal" jitter
    assert 3.5 < sum(draws) / len(draws) < 4.5


def test_long_outage_never_overflows() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rng=_Top())
    for _ in range(5000):
        assert backoff.next_delay() <= 30.0


@pytest.mark.parametrize(
    ("base", "cap", "factor"),
    [(0.0, 1.0, 2.0), (1.0, 0.0, 2.0), (2.0, 1.0, 2.0), (0.5, 1.0, 0.5)],
)
def test_rejects_nonsense_parameters(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap, factor=factor)


async def test_sleep_waits_the_drawn_delay() -> None:
    backoff = Backoff(base=0.02, cap=0.02, rng=_Top())
    loop = asyncio.get_running_loop()
    started = loop.time()
    slept = await backoff.sleep()
    assert slept == 0.02
    assert loop.time() - started >= 0.015
    assert backoff.failures == 1
