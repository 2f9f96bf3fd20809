"""Rule sets: versioned sources, compiling them, test runs, and the draft → publish → rollback
state machine (:class:`RuleHistory`, in memory; the node's store persists the same semantics).

Pure apart from script runs, which happen in :mod:`node.rules.sandbox` worker processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from node.rules.changes import ChangeSet
from node.rules.config import Direction, FieldPlan, VisualRules, load_visual, plan_fields
from node.rules.context import IncomingContext, OutgoingContext
from node.rules.engine import build_changes, build_replica, local_values
from node.rules.errors import RuleError
from node.rules.sandbox import DEFAULT_TIME_LIMIT, ScriptPool
from node.rules.script import ScriptRules
from node.trackers.base import IssueSnapshot
from protocol.replica import Replica

Mode = Literal["basic", "visual", "script"]
State = Literal["draft", "published"]


class RuleSet(BaseModel):
    """One version of one direction's rules for one connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "basic"
    direction: Direction
    source: str = ""  # Visual: YAML/JSON document; Script: Python source; Basic: ignored
    version: int = Field(default=0, ge=0)
    state: State = "draft"
    time_limit: float = Field(default=DEFAULT_TIME_LIMIT, gt=0, le=30)  # script mode, seconds per run
    note: str = ""  # e.g. "rollback to v2"
    created_at: dt.datetime | None = None


class OutgoingResult(BaseModel):
    replica: Replica | None
    skipped: str | None = None  # why nothing is sent
    warnings: list[str] = Field(default_factory=list)


class CompiledRules:
    """Validated rules, ready to run. Both methods are pure for Basic/Visual; Script mode blocks for
    up to the time limit (use the ``*_async`` variants from the event loop)."""

    def __init__(self, ruleset: RuleSet, *, pool: ScriptPool | None = None) -> None:
        self.ruleset = ruleset
        self.direction: Direction = ruleset.direction
        self._script: ScriptRules | None = None
        if ruleset.mode == "basic":
            self.visual = VisualRules()
        elif ruleset.mode == "visual":
            self.visual = load_visual(ruleset.source)
        else:
            self.visual = VisualRules()
            self._script = ScriptRules(
                ruleset.source, ruleset.direction, time_limit=ruleset.time_limit, pool=pool
            )
        self.plans: list[FieldPlan] = plan_fields(self.visual, ruleset.direction)

    def _expect(self, direction: Direction) -> None:
        if self.direction != direction:
            raise RuleError(f"these are {self.direction} rules; they cannot be used for {direction}")

    def outgoing_result(self, snapshot: IssueSnapshot, ctx: OutgoingContext | None = None) -> OutgoingResult:
        self._expect("outgoing")
        ctx = ctx or OutgoingContext()
        if self._script is not None:
            replica, reason, warnings = self._script.outgoing(snapshot, ctx)
        else:
            replica, reason, warnings = build_replica(snapshot, ctx, self.visual, self.plans)
        return OutgoingResult(replica=replica, skipped=reason, warnings=warnings)

    def outgoing(self, snapshot: IssueSnapshot, ctx: OutgoingContext | None = None) -> Replica | None:
        """The replica to send, or None when the rules filter this issue out."""
        return self.outgoing_result(snapshot, ctx).replica

    def incoming(
        self,
        replica: Replica,
        previous: Replica | None,
        local: IssueSnapshot | None,
        ctx: IncomingContext | None = None,
    ) -> ChangeSet:
        """The minimal local changes for this replica (nothing is applied)."""
        self._expect("incoming")
        ctx = ctx or IncomingContext()
        if self._script is not None:
            return self._script.incoming(replica, previous, local, ctx)
        return build_changes(replica, previous, local, ctx, self.visual, self.plans)

    async def outgoing_async(
        self, snapshot: IssueSnapshot, ctx: OutgoingContext | None = None
    ) -> OutgoingResult:
        if self._script is None:
            return self.outgoing_result(snapshot, ctx)
        return await asyncio.to_thread(self.outgoing_result, snapshot, ctx)

    async def incoming_async(
        self,
        replica: Replica,
        previous: Replica | None,
        local: IssueSnapshot | None,
        ctx: IncomingContext | None = None,
    ) -> ChangeSet:
        if self._script is None:
            return self.incoming(replica, previous, local, ctx)
        return await asyncio.to_thread(self.incoming, replica, previous, local, ctx)

    def local_values(self, snapshot: IssueSnapshot) -> dict[str, Any]:
        """Values of the fields these incoming rules write, as they are in ``snapshot``: store them
        after applying as the twin's ``IncomingContext.last_applied``."""
        return local_values(snapshot, self.plans)


def compile_rules(ruleset: RuleSet, *, pool: ScriptPool | None = None) -> CompiledRules:
    """Validate everything; raises RuleError(message, line=..., path=...)."""
    return CompiledRules(ruleset, pool=pool)


class TestRunResult(BaseModel):
    """What a draft would produce; nothing is applied. ``result`` is the replica or change set as
    JSON data; ``error`` (with ``line``/``path``) when the rules failed."""

    __test__ = False  # not a pytest class

    direction: Direction
    result: dict[str, Any] | None = None
    skipped: str | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    line: int | None = None
    path: str | None = None


def test_run(
    rules: RuleSet | CompiledRules,
    *,
    snapshot: IssueSnapshot | None = None,
    replica: Replica | None = None,
    previous: Replica | None = None,
    local: IssueSnapshot | None = None,
    outgoing_ctx: OutgoingContext | None = None,
    incoming_ctx: IncomingContext | None = None,
    pool: ScriptPool | None = None,
) -> TestRunResult:
    """Run rules on a real local issue (outgoing: ``snapshot``) or a stored/pasted replica (incoming:
    ``replica``, ``previous``, ``local``) and report what they produce. Never raises RuleError."""
    direction: Direction = rules.direction
    try:
        compiled = rules if isinstance(rules, CompiledRules) else compile_rules(rules, pool=pool)
        if compiled.direction == "outgoing":
            if snapshot is None:
                raise RuleError("an outgoing test run needs a local issue")
            out = compiled.outgoing_result(snapshot, outgoing_ctx)
            return TestRunResult(
                direction="outgoing",
                result=out.replica.model_dump(mode="json") if out.replica else None,
                skipped=out.skipped,
                warnings=out.warnings,
            )
        if replica is None:
            raise RuleError("an incoming test run needs a replica")
        cs = compiled.incoming(replica, previous, local, incoming_ctx)
        return TestRunResult(
            direction="incoming",
            result=cs.to_json(),
            skipped=cs.reason if cs.action == "ignore" else None,
            warnings=list(cs.warnings),
        )
    except RuleError as exc:
        return TestRunResult(direction=direction, error=str(exc), line=exc.line, path=exc.path)


class RuleHistory:
    """Versions of one direction's rules for one connection.

    * ``edit_draft(mode, source)`` creates or replaces the single draft (version = next number).
    * ``publish()`` validates the draft (compile_rules) and makes it the current published version.
    * ``rollback()`` undoes the last publish or rollback: the version that was in force before the
      current one becomes current again, AS A NEW VERSION (history is append-only). Repeated
      rollbacks walk further back; with nothing earlier it raises RuleError.
    * ``current`` is what the engine runs; before any publish it is Basic (version 0).
    """

    def __init__(self, direction: Direction, *, clock: Any = None) -> None:
        self.direction: Direction = direction
        self._versions: list[RuleSet] = []
        self._stack: list[int] = []  # versions in force, oldest first; rollback pops
        self._draft: RuleSet | None = None
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @property
    def draft(self) -> RuleSet | None:
        return self._draft

    @property
    def current(self) -> RuleSet:
        if not self._stack:
            return RuleSet(mode="basic", direction=self.direction, version=0, state="published")
        return self.get(self._stack[-1])

    def versions(self) -> list[RuleSet]:
        """Every published version, oldest first."""
        return list(self._versions)

    def get(self, version: int) -> RuleSet:
        for rs in self._versions:
            if rs.version == version:
                return rs
        raise RuleError(f"there is no version {version}")

    def _next(self) -> int:
        return (self._versions[-1].version if self._versions else 0) + 1

    def edit_draft(self, mode: Mode, source: str = "", *, time_limit: float = DEFAULT_TIME_LIMIT) -> RuleSet:
        self._draft = RuleSet(
            mode=mode,
            direction=self.direction,
            source=source,
            version=self._next(),
            state="draft",
            time_limit=time_limit,
            created_at=self._clock(),
        )
        return self._draft

    def discard_draft(self) -> None:
        self._draft = None

    def publish(self, *, pool: ScriptPool | None = None) -> RuleSet:
        if self._draft is None:
            raise RuleError("there is no draft to publish")
        compile_rules(self._draft, pool=pool)  # refuses invalid rules; the draft stays for fixing
        published = self._draft.model_copy(update={"state": "published", "version": self._next()})
        self._versions.append(published)
        self._stack.append(published.version)
        self._draft = None
        return published

    def rollback(self) -> RuleSet:
        if len(self._stack) < 2:
            raise RuleError("there is no earlier published version to roll back to")
        self._stack.pop()
        target = self.get(self._stack.pop())
        restored = target.model_copy(
            update={
                "version": self._next(),
                "note": f"rollback to v{target.version}",
                "created_at": self._clock(),
            }
        )
        self._versions.append(restored)
        self._stack.append(restored.version)
        if self._draft is not None:
            self._draft = self._draft.model_copy(update={"version": self._next()})
        return restored


test_run.__test__ = False  # type: ignore[attr-defined]  # a helper, not a pytest test, when imported
