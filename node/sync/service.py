"""What the sync engine offers to the admin API, the CLI and intake — the seam between them.

``node.sync.engine.SyncEngine`` implements :class:`SyncService`. The admin API
(``node/web/sync_api.py``) and the CLI (``node/commands/sync_cmds.py``) only ever call these
methods and return these views as JSON; intake (webhooks, polling, reconciliation in
``node/sync/intake.py``) calls :meth:`SyncService.local_change`. Every method raises a
:class:`SyncError` subclass with a message for the person, never a bare exception.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["outgoing", "incoming"]
RuleMode = Literal["basic", "visual", "script"]


class SyncError(Exception):
    """Base for errors a person can act on. ``code`` is stable for the API (``not_found``, …)."""

    code = "sync_error"
    status = 400


class NotFound(SyncError):
    code = "not_found"
    status = 404


class InvalidInput(SyncError):
    code = "invalid_input"
    status = 400


class RuleProblem(SyncError):
    """A rule set does not compile or a test run failed; ``line`` when a script line is at fault."""

    code = "rule_error"
    status = 422

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.path = path


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TriggerView(_View):
    id: int
    connection: str
    query: str  # JQL, evaluated locally on each changed issue
    note: str = ""
    active: bool = True
    created_at: dt.datetime


class SyncOutcome(_View):
    """What one manual sync did."""

    key: str
    connection: str
    sent: bool  # False when nothing changed since the last replica sent
    version: int | None = None
    reason: str = ""


class BulkJobView(_View):
    id: int
    connection: str
    query: str
    state: Literal["running", "done", "failed", "cancelled"]
    total: int | None = None  # known once the query has been fully listed
    done: int = 0
    failed: int = 0
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    error: str | None = None


class TwinView(_View):
    """One local entity's link to one connection, as `tandem status KEY` shows it."""

    connection: str
    local_key: str
    local_id: str
    remote_key: str | None = None
    remote_url: str | None = None
    state: Literal["linked", "pending", "paused", "unlinked"]
    last_sent_at: dt.datetime | None = None
    last_sent_version: int | None = None
    last_received_at: dt.datetime | None = None
    last_received_version: int | None = None
    last_result: str | None = None  # applied / failed: reason / ignored: reason
    local_replica: dict[str, Any] | None = None  # the last replica sent
    remote_replica: dict[str, Any] | None = None  # the last replica received and applied


class ErrorView(_View):
    id: int
    connection: str | None = None
    entity: str | None = None  # local key, or the remote entity when no local twin exists yet
    kind: Literal["rule", "tracker", "peer", "config", "conflict", "internal"]
    message: str
    line: int | None = None  # script line for rule errors
    state: Literal["open", "retrying", "resolved"]
    paused: bool  # whether it pauses the entity (rule errors) until retried or resolved
    count: int
    first_seen: dt.datetime
    last_seen: dt.datetime


class ConflictView(_View):
    id: int
    connection: str
    entity: str
    field: str
    local_value: Any = None
    remote_value: Any = None
    winner: Literal["local", "remote"]
    at: dt.datetime


class RuleVersionView(_View):
    connection: str
    direction: Direction
    version: int
    mode: RuleMode
    source: str
    state: Literal["draft", "published", "superseded"]
    created_at: dt.datetime


class TestRunView(_View):
    """A test run: what the rules would produce; nothing is applied."""

    direction: Direction
    replica: dict[str, Any] | None = None  # outgoing: the replica (None when filtered out)
    changes: dict[str, Any] | None = None  # incoming: the change set
    warnings: list[str] = Field(default_factory=list)


class SyncService(Protocol):
    # -- triggers ---------------------------------------------------------------------------
    async def add_trigger(self, connection: str, query: str, note: str = "") -> TriggerView: ...
    async def list_triggers(self, connection: str | None = None) -> list[TriggerView]: ...
    async def set_trigger_active(self, trigger_id: int, active: bool) -> TriggerView: ...
    async def remove_trigger(self, trigger_id: int) -> None: ...

    # -- starting and stopping sync ---------------------------------------------------------
    async def sync(self, key: str, connection: str) -> SyncOutcome: ...
    async def start_bulk(self, connection: str, query: str) -> BulkJobView: ...
    async def bulk_job(self, job_id: int) -> BulkJobView: ...
    async def list_bulk_jobs(self) -> list[BulkJobView]: ...
    async def unlink(self, key: str, connection: str) -> TwinView: ...
    async def status(self, key: str) -> list[TwinView]: ...

    # -- rules ------------------------------------------------------------------------------
    async def rules(self, connection: str, direction: Direction) -> list[RuleVersionView]: ...
    async def save_draft(
        self, connection: str, direction: Direction, mode: RuleMode, source: str
    ) -> RuleVersionView: ...
    async def test_rules(
        self,
        connection: str,
        direction: Direction,
        *,
        key: str | None = None,
        replica: dict[str, Any] | None = None,
        draft: bool = True,
    ) -> TestRunView: ...
    async def publish(self, connection: str, direction: Direction) -> RuleVersionView: ...
    async def rollback(self, connection: str, direction: Direction) -> RuleVersionView: ...

    # -- errors and conflicts ---------------------------------------------------------------
    async def errors(self, *, include_resolved: bool = False) -> list[ErrorView]: ...
    async def retry(self, error_id: int) -> ErrorView: ...
    async def resolve(self, error_id: int) -> ErrorView: ...
    async def conflicts(self, connection: str | None = None) -> list[ConflictView]: ...

    # -- intake -----------------------------------------------------------------------------
    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        """A local issue changed (webhook, poll, reconcile): queue it for every connection."""
        ...
