"""An in-memory :class:`node.sync.service.SyncService` for testing the admin API and CLI plumbing.

It keeps the seam's contract (views, :class:`SyncError` subclasses) with no tracker and no peer;
rules go through the real rules package, so compile errors carry the real line numbers. The real
engine is exercised in ``test_engine_surface.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from node.rules.errors import RuleError
from node.rules.ruleset import RuleHistory, compile_rules
from node.sync.service import (
    BulkJobView,
    ConflictView,
    Direction,
    ErrorView,
    InvalidInput,
    NotFound,
    RuleMode,
    RuleProblem,
    RuleVersionView,
    SyncOutcome,
    TestRunView,
    TriggerView,
    TwinView,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FakeEngine:
    def __init__(self, connections: tuple[str, ...] = ("eng",), issues: tuple[str, ...] = ()) -> None:
        self.connections = set(connections)
        self.issues = list(issues)
        self.triggers: dict[int, TriggerView] = {}
        self.twins: dict[tuple[str, str], TwinView] = {}
        self.jobs: dict[int, BulkJobView] = {}
        self.errors_: dict[int, ErrorView] = {}
        self.conflicts_: list[ConflictView] = []
        self.histories: dict[tuple[str, Direction], RuleHistory] = {}
        self.bulk_gate = asyncio.Event()  # a bulk job syncs nothing until the test opens the gate
        self.bulk_gate.set()
        self.polled = asyncio.Event()  # set when a client asks how a bulk job is doing
        self.calls: list[tuple[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def _conn(self, name: str) -> None:
        if name not in self.connections:
            raise NotFound(f"no connection named {name!r}")

    def _issue(self, key: str) -> None:
        if key == "BOOM-1":
            raise RuntimeError("a bug in the engine, with secrets in /home/x/.tandem")
        if key not in self.issues:
            raise NotFound(f"no issue {key!r} in the tracker")

    # -- triggers ---------------------------------------------------------------------------------
    async def add_trigger(self, connection: str, query: str, note: str = "") -> TriggerView:
        self._conn(connection)
        if "=" not in query:
            raise InvalidInput(f"JQL: expected an operator in {query!r}")
        view = TriggerView(
            id=len(self.triggers) + 1, connection=connection, query=query, note=note, created_at=_now()
        )
        self.triggers[view.id] = view
        return view

    async def list_triggers(self, connection: str | None = None) -> list[TriggerView]:
        return [t for t in self.triggers.values() if connection is None or t.connection == connection]

    async def set_trigger_active(self, trigger_id: int, active: bool) -> TriggerView:
        if trigger_id not in self.triggers:
            raise NotFound(f"no trigger {trigger_id}")
        self.triggers[trigger_id] = self.triggers[trigger_id].model_copy(update={"active": active})
        return self.triggers[trigger_id]

    async def remove_trigger(self, trigger_id: int) -> None:
        if self.triggers.pop(trigger_id, None) is None:
            raise NotFound(f"no trigger {trigger_id}")

    # -- sync -------------------------------------------------------------------------------------
    async def sync(self, key: str, connection: str) -> SyncOutcome:
        self._conn(connection)
        self._issue(key)
        self.calls.append(("sync", (key, connection)))
        twin = self.twins.get((key, connection))
        if twin is not None and twin.state == "linked":
            return SyncOutcome(key=key, connection=connection, sent=False, reason="nothing changed")
        n = len(self.twins) + 1
        self.twins[(key, connection)] = TwinView(
            connection=connection,
            local_key=key,
            local_id=str(10000 + n),
            remote_key=f"ENG-{n}",
            remote_url=f"http://eng.example/browse/ENG-{n}",
            state="linked",
            last_sent_at=_now(),
            last_sent_version=1,
            last_result="applied",
            local_replica={"key": key, "summary": "sent"},
            remote_replica=None,
        )
        return SyncOutcome(key=key, connection=connection, sent=True, version=1)

    async def start_bulk(self, connection: str, query: str) -> BulkJobView:
        self._conn(connection)
        job = BulkJobView(
            id=len(self.jobs) + 1, connection=connection, query=query, state="running", started_at=_now()
        )
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run_bulk(job.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run_bulk(self, job_id: int) -> None:
        job = self.jobs[job_id]
        keys = [k for k in self.issues if k != "BOOM-1"]
        self.jobs[job_id] = job = job.model_copy(update={"total": len(keys)})
        for key in keys:
            await self.bulk_gate.wait()
            failed = key.endswith("-13")
            if not failed:
                await self.sync(key, job.connection)
            update = {"failed": job.failed + 1} if failed else {"done": job.done + 1}
            self.jobs[job_id] = job = job.model_copy(update=update)
            await asyncio.sleep(0)
        self.jobs[job_id] = job.model_copy(update={"state": "done", "finished_at": _now()})

    async def bulk_job(self, job_id: int) -> BulkJobView:
        self.polled.set()
        if job_id not in self.jobs:
            raise NotFound(f"no bulk job {job_id}")
        return self.jobs[job_id]

    async def list_bulk_jobs(self) -> list[BulkJobView]:
        return sorted(self.jobs.values(), key=lambda j: -j.id)

    async def unlink(self, key: str, connection: str) -> TwinView:
        self._conn(connection)
        twin = self.twins.get((key, connection))
        if twin is None or twin.state == "unlinked":
            raise NotFound(f"{key} is not linked over {connection}")
        self.twins[(key, connection)] = twin = twin.model_copy(update={"state": "unlinked"})
        return twin

    async def status(self, key: str) -> list[TwinView]:
        return [t for (k, _), t in self.twins.items() if k == key]

    # -- rules ------------------------------------------------------------------------------------
    def _history(self, connection: str, direction: Direction) -> RuleHistory:
        self._conn(connection)
        return self.histories.setdefault((connection, direction), RuleHistory(direction))

    @staticmethod
    def _view(connection: str, rs: Any, state: str) -> RuleVersionView:
        return RuleVersionView(
            connection=connection,
            direction=rs.direction,
            version=rs.version,
            mode=rs.mode,
            source=rs.source,
            state=state,  # type: ignore[arg-type]
            created_at=rs.created_at or _now(),
        )

    async def rules(self, connection: str, direction: Direction) -> list[RuleVersionView]:
        h = self._history(connection, direction)
        current = h.current.version
        out = [
            self._view(connection, rs, "published" if rs.version == current else "superseded")
            for rs in h.versions()
        ]
        if h.draft is not None:
            out.append(self._view(connection, h.draft, "draft"))
        return out

    async def save_draft(
        self, connection: str, direction: Direction, mode: RuleMode, source: str
    ) -> RuleVersionView:
        h = self._history(connection, direction)
        draft = h.edit_draft(mode, source)
        try:
            compile_rules(draft)
        except RuleError as exc:
            h.discard_draft()
            raise RuleProblem(str(exc), line=exc.line, path=exc.path) from None
        return self._view(connection, draft, "draft")

    async def test_rules(
        self,
        connection: str,
        direction: Direction,
        *,
        key: str | None = None,
        replica: dict[str, Any] | None = None,
        draft: bool = True,
    ) -> TestRunView:
        h = self._history(connection, direction)
        rs = h.draft if draft else h.current
        if rs is None:
            raise InvalidInput("there is no draft to test")
        self.calls.append(
            ("test_rules", {"key": key, "replica": replica, "draft": draft, "version": rs.version})
        )
        if direction == "outgoing":
            assert key is not None
            self._issue(key)
            return TestRunView(
                direction=direction, replica={"key": key, "mode": rs.mode}, warnings=["a warning"]
            )
        action = "update" if key else "create"
        return TestRunView(direction=direction, changes={"action": action, "from": replica or {"key": key}})

    async def publish(self, connection: str, direction: Direction) -> RuleVersionView:
        try:
            rs = self._history(connection, direction).publish()
        except RuleError as exc:
            raise RuleProblem(str(exc), line=exc.line, path=exc.path) from None
        return self._view(connection, rs, "published")

    async def rollback(self, connection: str, direction: Direction) -> RuleVersionView:
        try:
            rs = self._history(connection, direction).rollback()
        except RuleError as exc:
            raise RuleProblem(str(exc)) from None
        return self._view(connection, rs, "published")

    # -- errors -----------------------------------------------------------------------------------
    def add_error(self, **fields: Any) -> ErrorView:
        now = _now()
        base: dict[str, Any] = {
            "id": len(self.errors_) + 1,
            "kind": "rule",
            "message": "line 3: NameError: name 'x' is not defined",
            "line": 3,
            "state": "open",
            "paused": True,
            "count": 2,
            "first_seen": now,
            "last_seen": now,
            "connection": "eng",
            "entity": "SUP-1",
        }
        view = ErrorView(**{**base, **fields})
        self.errors_[view.id] = view
        return view

    async def errors(self, *, include_resolved: bool = False) -> list[ErrorView]:
        return [e for e in self.errors_.values() if include_resolved or e.state != "resolved"]

    def _unpause(self, error_id: int, state: str) -> ErrorView:
        if error_id not in self.errors_:
            raise NotFound(f"no error {error_id}")
        self.errors_[error_id] = self.errors_[error_id].model_copy(update={"state": state, "paused": False})
        return self.errors_[error_id]

    async def retry(self, error_id: int) -> ErrorView:
        return self._unpause(error_id, "retrying")

    async def resolve(self, error_id: int) -> ErrorView:
        return self._unpause(error_id, "resolved")

    async def conflicts(self, connection: str | None = None) -> list[ConflictView]:
        return [c for c in self.conflicts_ if connection is None or c.connection == connection]

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        self.calls.append(("local_change", issue_id_or_key))
