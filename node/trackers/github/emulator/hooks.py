"""Webhook delivery for the GitHub emulator: a bounded queue and a few workers that POST each
payload with GitHub's headers (``X-GitHub-Event``, ``X-GitHub-Delivery``, ``X-GitHub-Hook-ID``,
``X-Hub-Signature-256`` when the hook has a secret).

The API never waits for a receiver: a full queue drops (and counts) the delivery, each POST has a
timeout, and a failed delivery is recorded on the hook's ``last_response`` (GitHub does not retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .state import Hook

log = logging.getLogger(__name__)


def signature_256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    hook: Hook
    repo_id: int
    event: str
    action: str | None
    body: bytes
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class DeliveryStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "lastError": self.last_error,
            "recent": list(self.recent),
        }


class HookDispatcher:
    def __init__(self, *, max_queue: int = 1000, workers: int = 4, timeout: float = 10.0) -> None:
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=max_queue)
        self._workers = workers
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = DeliveryStats()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"github-emu-hook-{i}") for i in range(self._workers)
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

    def enqueue(self, delivery: Delivery) -> bool:
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every delivery queued so far was attempted."""
        await asyncio.wait_for(self._queue.join(), timeout)

    async def _worker(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._post(delivery)
            finally:
                self._queue.task_done()

    async def _post(self, d: Delivery) -> None:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/tandem-emulator",
            "X-GitHub-Event": d.event,
            "X-GitHub-Delivery": d.guid,
            "X-GitHub-Hook-ID": str(d.hook.id),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": str(d.repo_id),
        }
        if d.hook.secret:
            headers["X-Hub-Signature-256"] = signature_256(d.hook.secret, d.body)
            headers["X-Hub-Signature"] = (
                "sha1=" + hmac.new(d.hook.secret.encode(), d.body, hashlib.sha1).hexdigest()
            )
        record: dict[str, Any] = {"guid": d.guid, "event": d.event, "action": d.action, "url": d.hook.url}
        try:
            async with self._session.post(d.hook.url, data=d.body, headers=headers) as resp:
                await resp.read()
                record["status"] = resp.status
                d.hook.last_response = {"code": resp.status, "status": "active", "message": "OK"}
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=f"receiver answered {resp.status}"
                    )
            self.stats.delivered += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self.stats.failed += 1
            self.stats.last_error = f"{d.hook.url}: {err!r}"
            record.setdefault("status", None)
            d.hook.last_response = {"code": record["status"], "status": "failed", "message": str(err)[:200]}
            log.info("webhook delivery to %s failed: %r", d.hook.url, err)
        finally:
            self.stats.recent.append(record)
