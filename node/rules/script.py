"""Script mode: Basic rules first, then the admin's script adjusts the result in a sandbox.

Outgoing scripts see ``issue`` (read-only view of the local snapshot), ``replica`` (mutable, filled
by Basic rules) and ``context``; incoming scripts see ``replica``, ``previous``, ``issue`` (local or
None), ``context`` (all read-only) and ``changes`` (mutable, filled by Basic rules). Both may call
``skip(reason)``, ``warn(message)``, ``plain_text(doc)`` and ``doc(text)``; ``print`` goes to the
warnings too. What the script leaves must validate as a Replica / ChangeSet; errors name the path.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from node.rules._policy import PolicyError, check_script
from node.rules.changes import ChangeSet
from node.rules.config import Direction, VisualRules, plan_fields, validation_error
from node.rules.context import IncomingContext, OutgoingContext
from node.rules.engine import build_changes, build_replica, validate_replica
from node.rules.errors import RuleError
from node.rules.sandbox import ScriptPool, default_pool
from node.trackers.base import IssueSnapshot
from protocol.replica import Replica

_BASIC = VisualRules()


def check(source: str) -> None:
    """Validate a script without running it (AST policy + RestrictedPython's compiler)."""
    try:
        check_script(source)
    except PolicyError as exc:
        raise RuleError(exc.message, line=exc.line) from None
    from node.rules._worker import ScriptFailure, compile_script

    try:
        compile_script(source)
    except ScriptFailure as exc:
        raise RuleError(exc.message, line=exc.line) from None


class ScriptRules:
    def __init__(
        self, source: str, direction: Direction, *, time_limit: float, pool: ScriptPool | None
    ) -> None:
        check(source)
        self.source = source
        self.direction = direction
        self.time_limit = time_limit
        self._pool = pool
        self._plans = plan_fields(_BASIC, direction)

    @property
    def pool(self) -> ScriptPool:
        return self._pool or default_pool()

    def _run(self, job: dict[str, Any]) -> dict[str, Any]:
        job["source"] = self.source
        job["direction"] = self.direction
        answer = self.pool.run(job, self.time_limit)
        if not answer.get("ok"):
            line = answer.get("line")
            raise RuleError(
                str(answer.get("error") or "the script failed"), line=line if isinstance(line, int) else None
            )
        return answer

    def outgoing(
        self, snapshot: IssueSnapshot, ctx: OutgoingContext
    ) -> tuple[Replica | None, str | None, list[str]]:
        basic, _reason, warnings = build_replica(snapshot, ctx, _BASIC, self._plans)
        assert basic is not None  # Basic has no filters
        answer = self._run(
            {
                "issue": snapshot.model_dump(mode="json"),
                "replica": basic.model_dump(mode="json"),
                "context": ctx.model_dump(mode="json"),
            }
        )
        warnings += [str(x) for x in answer.get("log") or []]
        if answer.get("skip") is not None:
            return None, f"skipped by the script: {answer['skip']}", warnings
        result = answer.get("result")
        if not isinstance(result, dict):
            raise RuleError("the script must leave 'replica' a dict (or call skip())", path="replica")
        entity = snapshot.ref().model_dump(mode="json")
        if result.get("entity") != entity:
            if "entity" in result:
                warnings.append("the script changed replica['entity']; it always names the local issue")
            result["entity"] = entity
        return validate_replica(result), None, warnings

    def incoming(
        self,
        replica: Replica,
        previous: Replica | None,
        local: IssueSnapshot | None,
        ctx: IncomingContext,
    ) -> ChangeSet:
        basic = build_changes(replica, previous, local, ctx, _BASIC, self._plans)
        answer = self._run(
            {
                "replica": replica.model_dump(mode="json"),
                "previous": previous.model_dump(mode="json") if previous else None,
                "issue": local.model_dump(mode="json") if local else None,
                "changes": basic.to_json(),
                "context": ctx.model_dump(mode="json"),
            }
        )
        log = [str(x) for x in answer.get("log") or []]
        if answer.get("skip") is not None:
            return ChangeSet(action="ignore", reason=f"skipped by the script: {answer['skip']}", warnings=log)
        result = answer.get("result")
        if not isinstance(result, dict):
            raise RuleError("the script must leave 'changes' a dict (or call skip())", path="changes")
        try:
            changes = ChangeSet.model_validate(result)
        except ValidationError as exc:
            raise validation_error(exc, "changes.") from None
        changes.warnings.extend(log)
        return changes
