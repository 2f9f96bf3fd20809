"""Asynchronous webhook delivery: a bounded queue and a few workers that POST JSON bodies.

The API never waits for a receiver: :meth:`WebhookDispatcher.enqueue` drops (and counts) a delivery
when the queue is full, and each POST has a timeout, so a slow or dead receiver costs only its own
deliveries. Payloads are built by the caller at event time (the issue may be gone by delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None
    by_url: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "lastError": self.last_error,
            "byUrl": dict(self.by_url),
        }


class WebhookDispatcher:
    def __init__(self, *, max_queue: int = 1000, workers: int = 4, timeout: float = 10.0) -> None:
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=max_queue)
        self._workers = workers
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = DeliveryStats()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"jira-emu-webhook-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(self, url: str, body: bytes) -> bool:
        try:
            self._queue.put_nowait((url, body))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    async def drain(self, wait: float = 10.0) -> None:
        """Wait until every queued delivery was attempted (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), wait)

    async def _worker(self) -> None:
        while True:
            url, body = await self._queue.get()
            try:
                await self._post(url, body)
            finally:
                self._queue.task_done()

    async def _post(self, url: str, body: bytes) -> None:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
        }
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=f"receiver answered {resp.status}"
                    )
            self.stats.delivered += 1
            self.stats.by_url[url] = self.stats.by_url.get(url, 0) + 1
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            # Real Jira retries a few times; the emulator records the failure and moves on.
            self.stats.failed += 1
            self.stats.last_error = f"{url}: {err!r}"
            log.info("webhook delivery to %s failed: %r", url, err)
