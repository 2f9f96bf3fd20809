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
    needed = ("compile_query", "JqlError", "EvalContext", "JqlSchema", "parse_for_api")
    missing = [n for n in needed if not hasattr(module, n)]
    if missing:
        raise JqlUnavailable(f"JQL engine not available: node.jql lacks {', '.join(missing)}")
    return module


def schema_for(state: EmulatorState) -> Any:
    """What the site knows, so unknown fields and values are refused as Jira refuses them."""
    jql = _jql()
    projects = [v for p in state.projects.values() for v in (p.key, p.name, p.id)]
    values = {
        "project": projects,
        "status": [s.name for s in state.statuses.values()] + list(state.statuses),
        "priority": [p.name for p in state.priorities.values()] + list(state.priorities),
        "issuetype": [t.name for t in state.issue_types.values()] + list(state.issue_types),
        "resolution": [r.name for r in state.resolutions.values()] + list(state.resolutions),
    }
    return jql.JqlSchema(custom_fields={f.name: f.id for f in state.custom_fields.values()}, values=values)


def compile_jql(text: str, state: EmulatorState | None = None) -> Any:
    """Compile (validating against ``state`` when given) or raise JiraApiError(400) with Jira's message."""
    jql = _jql()
    try:
        if state is None:
            return jql.compile_query(text)
        return jql.compile_query(text, schema_for(state))
    except jql.JqlError as err:
        raise JiraApiError(400, [str(err)]) from err


def make_context(state: EmulatorState, user: User | None) -> Any:
    """An EvalContext for ``user`` (``currentUser()``), passing only what the engine accepts."""
    jql = _jql()
    cls = jql.EvalContext
    groups: dict[str, list[str]] = {name: [] for name in state.groups}
    for member in state.users.values():
        for g in member.groups:
            groups.setdefault(g, []).extend([member.account_id, member.name, member.email])
    wanted: dict[str, Any] = {
        "current_user": state.user_ref(user.key) if user else None,
        "now": dt.datetime.now(dt.UTC),
        "groups": groups,
        # Jira lists priorities highest first; the engine wants lowest first.
        "priority_order": [p.name for p in reversed(list(state.priorities.values()))],
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

    def drop(self, issue_id: str) -> None:
        self._cache.pop(issue_id, None)

    def clear(self) -> None:
        self._cache.clear()


def run_search(state: EmulatorState, cache: SnapshotCache, text: str, user: User | None) -> list[Issue]:
    """Every issue matching ``text``, in the query's ORDER BY (without one: newest first, as Jira's
    search API returns them)."""
    query = compile_jql(text or "", state)
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


def parse_structure(text: str, state: EmulatorState, validation: str = "strict") -> dict[str, Any]:
    """One entry of ``/jql/parse``: ``{query, structure}`` and/or ``{errors, warnings}``."""
    jql = _jql()
    result: dict[str, Any] = jql.parse_for_api(text, schema_for(state), validation)
    return result
