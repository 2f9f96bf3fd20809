"""JQL for the emulator: search, webhook filters and ``/jql/parse``, all through :mod:`node.jql`.

The JQL engine evaluates neutral :class:`~node.trackers.base.IssueSnapshot` values; snapshots are
built on demand (and cached per issue ``updated`` stamp, since a search over thousands of issues
would otherwise rebuild them every time).
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
from collections import OrderedDict
from typing import Any

from node.trackers.base import IssueSnapshot

from .ops import JiraApiError
from .state import EmulatorState, Issue, User


class JqlUnavailable(RuntimeError):
    pass


def _jql() -> Any:
    try:
        module = importlib.import_module("node.jql")
    except ImportError as err:  # the engine is another package; say so rather than crash
        raise JqlUnavailable(f"JQL engine not available: {err}") from err
    missing = [n for n in ("compile_query", "JqlError", "EvalContext") if not hasattr(module, n)]
    if missing:
        raise JqlUnavailable(f"JQL engine not available: node.jql lacks {', '.join(missing)}")
    return module


def compile_jql(text: str) -> Any:
    """Compile or raise JiraApiError(400) with Jira's message."""
    jql = _jql()
    try:
        return jql.compile_query(text)
    except jql.JqlError as err:
        raise JiraApiError(400, [str(err)]) from err


def make_context(state: EmulatorState, user: User | None) -> Any:
    """An EvalContext for ``user`` (``currentUser()``), passing only what the engine accepts."""
    jql = _jql()
    cls = jql.EvalContext
    wanted: dict[str, Any] = {
        "current_user": state.user_ref(user.key) if user else None,
        "now": dt.datetime.now(dt.UTC),
    }
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return cls()
    return cls(**{k: v for k, v in wanted.items() if k in params})


class SnapshotCache:
    """Neutral snapshots of issues, rebuilt only when an issue changed."""

    def __init__(self, state: EmulatorState, limit: int = 20000) -> None:
        self.state = state
        self.limit = limit
        self._cache: OrderedDict[str, tuple[tuple[Any, ...], IssueSnapshot]] = OrderedDict()

    def get(self, issue: Issue) -> IssueSnapshot:
        stamp = (issue.updated, len(issue.comments), len(issue.histories), len(issue.properties), issue.key)
        hit = self._cache.get(issue.id)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        snap = self.state.to_snapshot(issue)
        self._cache[issue.id] = (stamp, snap)
        if len(self._cache) > self.limit:
            self._cache.popitem(last=False)
        return snap

    def clear(self) -> None:
        self._cache.clear()


def run_search(state: EmulatorState, cache: SnapshotCache, text: str, user: User | None) -> list[Issue]:
    """Every issue matching ``text``, in the query's ORDER BY (default: key descending... as Jira,
    which orders by created DESC when no ORDER BY is given)."""
    query = compile_jql(text or "")
    ctx = make_context(state, user)
    by_id: dict[str, Issue] = {}
    snaps: list[IssueSnapshot] = []
    for issue in state.issues.values():
        snap = cache.get(issue)
        if query.matches(snap, ctx):
            snaps.append(snap)
            by_id[issue.id] = issue
    if not text.strip() or "order by" not in text.lower():
        snaps.sort(
            key=lambda s: (s.created or dt.datetime.min.replace(tzinfo=dt.UTC), int(s.id)), reverse=True
        )
        ordered = snaps
    else:
        ordered = list(query.sort(snaps, ctx))
    return [by_id[s.id] for s in ordered]


def parse_structure(text: str) -> dict[str, Any]:
    """One entry of ``/jql/parse``: ``{query, structure}`` or ``{query, errors}``."""
    jql = _jql()
    try:
        query = jql.compile_query(text)
    except jql.JqlError as err:
        return {"query": text, "errors": [str(err)]}
    return {"query": text, "structure": query.structure()}
