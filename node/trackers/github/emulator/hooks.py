"""Webhook delivery for the GitHub emulator: a bounded queue and a few workers that POST each
payload with GitHub's headers (``X-GitHub-Event``, ``X-GitHub-Delivery``, ``X-GitHub-Hook-ID``,
``X-Hub-Signature-256`` when the hook has a secret).

Queueing, timeouts and counting are the shared :class:`~node.trackers.common.emulator.DeliveryQueue`;
a failed delivery is recorded on the hook's ``last_response`` (GitHub does not retry).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from node.trackers.common.emulator import BaseDeliveryStats, DeliveryQueue
from node.trackers.common.signing import sign

from .state import Hook


@dataclass
class Delivery:
    hook: Hook
    repo_id: int
    event: str
    action: str | None
    body: bytes
    guid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class DeliveryStats(BaseDeliveryStats):
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "recent": list(self.recent)}


class HookDispatcher(DeliveryQueue[Delivery, DeliveryStats]):
    task_name: ClassVar[str] = "github-emu-hook"

    def __init__(self, *, max_queue: int = 1000, workers: int = 4, timeout: float = 10.0) -> None:
        super().__init__(DeliveryStats(), max_queue=max_queue, workers=workers, timeout=timeout)

    def enqueue(self, delivery: Delivery) -> bool:
        return self.put(delivery)

    def request(self, d: Delivery) -> tuple[str, bytes, dict[str, str]]:
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
            headers["X-Hub-Signature-256"] = sign(d.body, d.hook.secret)
            headers["X-Hub-Signature"] = (
                "sha1=" + hmac.new(d.hook.secret.encode(), d.body, hashlib.sha1).hexdigest()
            )
        return d.hook.url, d.body, headers

    def finished(self, d: Delivery, status: int | None, error: BaseException | None) -> None:
        """GitHub does not retry: the outcome is kept on the hook's ``last_response``."""
        if error is None:
            d.hook.last_response = {"code": status, "status": "active", "message": "OK"}
        else:
            d.hook.last_response = {"code": status, "status": "failed", "message": str(error)[:200]}
        self.stats.recent.append(
            {"guid": d.guid, "event": d.event, "action": d.action, "url": d.hook.url, "status": status}
        )
