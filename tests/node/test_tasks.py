"""Stopping background tasks ends them even when one swallows a cancellation (as Python 3.11's
``asyncio.wait_for`` can when the awaited event fires at the same moment)."""

from __future__ import annotations

import asyncio

import pytest

from node.tasks import GC_GEN0_THRESHOLD, cancel_and_wait, run, tune_gc


async def test_a_task_that_swallows_one_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    async def failing() -> None:
        raise RuntimeError("ended badly")

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(failing())]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(tasks, again_after=0.05), 5)
    assert swallowed == 2 and all(t.done() for t in tasks)


async def test_a_loop_waiting_with_a_timeout_stops_when_its_event_fires_in_the_same_turn() -> None:
    """The race itself: the loop's event fires in the same turn as the cancellation."""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                async with asyncio.timeout(3600):
                    await event.wait()
            except TimeoutError:
                pass
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    event.set()
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert task.cancelled()


def _loop_module() -> str:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    return run(which())


def test_run_uses_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv("TANDEM_EVENT_LOOP", raising=False)
    assert _loop_module().startswith("uvloop")
    monkeypatch.setenv("TANDEM_EVENT_LOOP", "asyncio")
    assert _loop_module().startswith("asyncio")


def test_run_returns_the_result_and_raises_the_error() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def boom() -> None:
        raise ValueError("from the coroutine")

    assert run(answer()) == 42
    with pytest.raises(ValueError, match="from the coroutine"):
        run(boom())


def test_tune_gc_freezes_what_exists_and_collects_less_often() -> None:
    import gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert GC_GEN0_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
