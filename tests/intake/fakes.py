"""A scripted tracker adapter and a recording engine for intake's unit tests."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from typing import NoReturn

from node.trackers.base import (
    IssueSnapshot,
    IssueUpdate,
    SearchPage,
    TrackerAccount,
    TrackerAdapter,
    TrackerAuthError,
    TrackerEvent,
    TrackerNotFound,
    Transition,
    WebhookError,
)
from protocol.replica import Attachment, Comment, UserRef
from protocol.richtext import Doc


def _unused() -> NoReturn:
    raise AssertionError("intake must not call this")


class FakeTracker(TrackerAdapter):
    """Issues are (id, updated) pairs; ``changed_since`` answers like a real tracker would, with a
    deliberate overlap (everything updated since ``since - margin``)."""

    kind = "fake"

    def __init__(self) -> None:
        self.issues: dict[str, dt.datetime] = {}
        self.password_ok = True
        self.down = False
        self.checks = 0
        self.since_calls: list[dt.datetime] = []
        self.skipped: list[str] = []  # issues polling did not read: a webhook had reported them
        self.webhooks: dict[str, str] = {}  # id -> url
        self.unregistered: list[str] = []
        self.secrets: list[str | None] = []
        self.margin = dt.timedelta(seconds=30)
        self._next_hook = 0

    def touch(self, issue_id: str, at: dt.datetime) -> None:
        self.issues[issue_id] = at

    async def check(self) -> TrackerAccount:
        self.checks += 1
        if self.down:
            raise ConnectionRefusedError("connection refused")
        if not self.password_ok:
            raise TrackerAuthError("Jira rejected the credentials", status=401)
        return TrackerAccount(user=UserRef(username="proxy"), tracker="fake", base_url="http://fake")

    async def changed_since(
        self,
        since: dt.datetime,
        *,
        projects: list[str] | None = None,
        known: Callable[[str, dt.datetime], bool] | None = None,
    ) -> AsyncIterator[IssueSnapshot]:
        self.since_calls.append(since)
        if self.down:
            raise ConnectionRefusedError("connection refused")
        rows = sorted(
            ((at, i) for i, at in self.issues.items() if at >= since - self.margin), key=lambda r: r[0]
        )
        for at, issue_id in rows:
            if known is not None and known(issue_id, at):
                self.skipped.append(issue_id)
                continue
            yield IssueSnapshot(tracker="fake", id=issue_id, key=f"K-{issue_id}", project="K", updated=at)

    async def register_webhook(self, url: str, *, secret: str | None = None) -> str:
        self._next_hook += 1
        hook = str(self._next_hook)
        self.webhooks[hook] = url
        self.secrets.append(secret)
        return hook

    async def unregister_webhook(self, webhook_id: str) -> None:
        self.unregistered.append(webhook_id)
        if self.webhooks.pop(webhook_id, None) is None:
            raise TrackerNotFound("no such webhook")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[TrackerEvent]:
        """``issue:<id>,<id>`` (a person's changes), ``echo:<id>`` (the proxy user's); an id may
        carry the change time: ``<id>@<ISO time>``."""
        text = body.decode(errors="replace")
        kind, _, rest = text.partition(":")
        if kind not in ("issue", "echo") or not rest:
            raise WebhookError("fake webhook: body must be issue:<id>,<id> or echo:<id>")
        actor = UserRef(username="proxy") if kind == "echo" else UserRef(username="jane")
        events = []
        for item in rest.split(","):
            issue_id, _, at = item.partition("@")
            if issue_id:
                when = dt.datetime.fromisoformat(at) if at else None
                events.append(TrackerEvent(kind="issue_updated", issue_id=issue_id, actor=actor, at=when))
        return events

    async def close(self) -> None:
        pass

    # -- not used by intake ------------------------------------------------------------------------
    async def get_issue(self, key_or_id: str) -> IssueSnapshot:
        _unused()

    async def search(self, query: str, *, page_token: str | None = None, page_size: int = 50) -> SearchPage:
        _unused()

    async def create_issue(
        self, project: str, update: IssueUpdate, *, marker: str | None = None
    ) -> IssueSnapshot:
        _unused()

    async def find_issue_by_marker(self, project: str, marker: str) -> IssueSnapshot | None:
        _unused()

    async def update_issue(self, key: str, update: IssueUpdate) -> None:
        _unused()

    async def delete_issue(self, key: str) -> None:
        _unused()

    async def transitions(self, key: str) -> list[Transition]:
        _unused()

    async def transition(self, key: str, transition_id: str) -> None:
        _unused()

    async def add_comment(
        self, key: str, body: Doc, *, internal: bool = False, marker: str | None = None
    ) -> Comment:
        _unused()

    async def update_comment(
        self, key: str, comment_id: str, body: Doc, *, internal: bool | None = None
    ) -> Comment:
        _unused()

    async def delete_comment(self, key: str, comment_id: str) -> None:
        _unused()

    async def add_attachment(
        self, key: str, filename: str, content: bytes, *, mime_type: str = "application/octet-stream"
    ) -> Attachment:
        _unused()

    async def get_attachment_content(self, attachment_id: str) -> bytes:
        _unused()

    async def find_user(self, ref: UserRef) -> UserRef | None:
        _unused()


class RecordingEngine:
    """Implements ``local_change``; records calls, can hold them on a gate or fail on given ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_on: set[str] = set()
        self.changed = asyncio.Event()
        self.running: set[str] = set()
        self.max_parallel_same = 0

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        if issue_id_or_key in self.running:
            self.max_parallel_same += 1
        self.running.add(issue_id_or_key)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if issue_id_or_key in self.fail_on:
                raise RuntimeError(f"engine failed on {issue_id_or_key}")
            self.calls.append((issue_id_or_key, reason))
            self.changed.set()
        finally:
            self.running.discard(issue_id_or_key)

    def ids(self, reason: str | None = None) -> list[str]:
        return [i for i, r in self.calls if reason is None or r == reason]

    async def wait_calls(self, n: int, within: float = 5.0) -> None:
        async def until() -> None:
            while len(self.calls) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), within)
