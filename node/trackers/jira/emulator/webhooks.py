"""Jira's webhook delivery: the shared bounded queue (:class:`~node.trackers.common.emulator.DeliveryQueue`)
posting JSON bodies with Atlassian's headers, counted per receiver URL.

Payloads are built by the caller at event time (the issue may be gone by delivery). Real Jira
retries a few times; the emulator records the failure and moves on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from node.trackers.common.emulator import BaseDeliveryStats, DeliveryQueue

_HEADERS = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": "Atlassian Webhook HTTP Client"}


@dataclass
class DeliveryStats(BaseDeliveryStats):
    by_url: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "byUrl": dict(self.by_url)}


class WebhookDispatcher(DeliveryQueue[tuple[str, bytes], DeliveryStats]):
    task_name: ClassVar[str] = "jira-emu-webhook"

    def __init__(self, *, max_queue: int = 1000, workers: int = 4, timeout: float = 10.0) -> None:
        super().__init__(DeliveryStats(), max_queue=max_queue, workers=workers, timeout=timeout)

    def enqueue(self, url: str, body: bytes) -> bool:
        return self.put((url, body))

    def request(self, item: tuple[str, bytes]) -> tuple[str, bytes, dict[str, str]]:
        return item[0], item[1], dict(_HEADERS)

    def finished(self, item: tuple[str, bytes], status: int | None, error: BaseException | None) -> None:
        if error is None:
            self.stats.by_url[item[0]] = self.stats.by_url.get(item[0], 0) + 1
