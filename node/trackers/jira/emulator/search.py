"""JQL for the emulator: search, webhook filters and ``/jql/parse``, all through :mod:`node.jql`.

The JQL engine evaluates neutral :class:`~node.trackers.base.IssueSnapshot` values; snapshots are
built on demand (and cached per issue ``updated`` stamp, since a search over thousands of issues
would otherwise rebuild them every time). A query that names its issues (``key in (…)``, ``id = …``,
alone or ANDed with other terms) looks them up instead of scanning the site: the node's batched reads
are such queries. The plainest of them (``id in (…)`` / ``key in (…)`` / ``key = …`` ORed, nothing
else: exactly what the node sends) is recognised by a pattern and answered without compiling it or
building snapshots; its answer is the one the engine gives (a hypothesis test compares them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import OrderedDict
from enum import Enum
from typing import Any, Literal

import node.jql as jql
from node.jql.ast import And, Clause, ListOperand, Or, Terminal, Value
from node.jql.errors import JqlError
from node.jql.evaluator import resolve_field
from node.trackers.base import IssueSnapshot

from .ops import JiraApiError
from .state import EmulatorState, Issue, User


def schema_for(state: EmulatorState) -> Any:
    """What the site knows, so unknown fields and values are refused as Jira refuses them."""
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
    try:
        if state is None:
            return jql.compile_query(text)
        return jql.compile_query(text, schema_for(state))
    except jql.JqlError as err:
        raise JiraApiError(400, [str(err)]) from err


def make_context(state: EmulatorState, user: User | None) -> jql.EvalContext:
    """An EvalContext for ``user`` (``currentUser()``)."""
    groups: dict[str, list[str]] = {name: [] for name in state.groups}
    for member in state.users.values():
        for g in member.groups:
            groups.setdefault(g, []).extend([member.account_id, member.name, member.email])
    return jql.EvalContext(
        now=dt.datetime.now(dt.UTC),
        current_user=state.user_ref(user.key) if user else None,
        groups=groups,
        # Jira lists priorities highest first; the engine wants lowest first.
        priority_order=[p.name for p in reversed(list(state.priorities.values()))],
    )


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


def _named_issues(clause: Clause | None, state: EmulatorState) -> set[str] | None:
    """Ids of the issues ``clause`` can match at most, when it names them by key or id; None when it
    does not (then every issue is a candidate). A superset is fine: the full query still decides."""
    if isinstance(clause, Terminal):
        return _named_by_terminal(clause, state)
    if isinstance(clause, Or):
        union: set[str] = set()
        for part in clause.clauses:
            named = _named_issues(part, state)
            if named is None:
                return None
            union |= named
        return union
    if isinstance(clause, And):
        best: set[str] | None = None
        for part in clause.clauses:
            named = _named_issues(part, state)
            if named is not None and (best is None or len(named) < len(best)):
                best = named
        return best
    return None  # NOT, or no WHERE at all


def _named_by_terminal(t: Terminal, state: EmulatorState) -> set[str] | None:
    if t.op not in ("=", "in") or t.predicates or t.field.prop is not None:
        return None
    try:
        spec = resolve_field(t.field, None).spec
    except JqlError:  # compile accepted the query already; be safe and scan
        return None
    if spec.name != "issuekey" or spec.empty_word is not None:
        return None
    leaves = t.operand.items if isinstance(t.operand, ListOperand) else (t.operand,)
    ids: set[str] = set()
    for leaf in leaves:
        # Functions, EMPTY, nested lists and non-ASCII text (whose case folding the index below does
        # not mirror) go the slow way.
        if not isinstance(leaf, Value) or not leaf.text.isascii():
            return None
        # The engine matches a value against an issue's key or id, case-insensitively.
        low = leaf.text.lower()
        if low in state.issues:
            ids.add(low)
        iid = state.keys.get(low.upper())
        if iid is not None:
            ids.add(iid)
    return ids


# A value the JQL lexer reads as itself: a number, an issue-key-like word (letters first, then a
# hyphen and digits: never a keyword, function or EMPTY), or either of those (or other plain
# characters) in double quotes without escapes. Anything else goes through the compiler.
_VALUE = r'(?:[0-9]+|[A-Za-z][A-Za-z0-9_]*-[0-9]+|"[A-Za-z0-9_.-]+")'
_TERM = rf"(?:id|key|issuekey)\s*(?:=\s*{_VALUE}|\s+in\s*\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\))"
_PLAIN = re.compile(rf"\s*{_TERM}(?:\s+or\s+{_TERM})*\s*", re.IGNORECASE | re.ASCII)
_VALUES = re.compile(_VALUE, re.ASCII)


def plain_lookup(text: str) -> list[str] | None:
    """The values of a query made only of ``id``/``key``/``issuekey`` ``=``/``in`` terms joined by OR
    (no ORDER BY), lower-cased as the engine compares them; None for any other query."""
    if len(text) > 100_000 or not _PLAIN.fullmatch(text):
        return None
    # Field names and the words IN / OR never match _VALUE (no digits, no hyphen, no quotes), so
    # every match is one of the listed values.
    return [m.group().strip('"').lower() for m in _VALUES.finditer(text)]


def _looked_up(state: EmulatorState, values: list[str]) -> list[Issue]:
    """What the engine answers for a plain lookup: the issues whose id or key (case-insensitively)
    is one of ``values``, newest first (created, then id), as :func:`run_search` orders a query
    without ORDER BY."""
    found: dict[str, Issue] = {}
    for low in values:
        issue = state.issues.get(low)
        if issue is not None:
            found[issue.id] = issue
        iid = state.keys.get(low.upper())
        if iid is not None and iid in state.issues:
            issue = state.issues[iid]
            if issue.key.lower() == low:  # a key the issue still has (keys maps moved ones too)
                found[issue.id] = issue
    return sorted(found.values(), key=lambda i: (i.created, int(i.id)), reverse=True)


class Unasked(Enum):
    """:func:`run_search`'s ``plain`` when the caller did not ask :func:`plain_lookup` itself."""

    UNASKED = 0


def run_search(
    state: EmulatorState,
    cache: SnapshotCache,
    text: str,
    user: User | None,
    *,
    lookup: bool = True,
    plain: list[str] | Unasked | None = Unasked.UNASKED,
) -> list[Issue]:
    """Every issue matching ``text``, in the query's ORDER BY (without one: newest first, as Jira's
    search API returns them). ``plain`` is what :func:`plain_lookup` answered for ``text`` when the
    caller already asked (the search handler, which picks its view by it). ``lookup=False`` scans
    every issue even when the query names them (what the fast paths are checked against)."""
    if lookup and text:
        values = plain_lookup(text) if plain is Unasked.UNASKED else plain
        if values is not None:
            return _looked_up(state, values)
    query = compile_jql(text or "", state)
    ctx = make_context(state, user)
    by_id: dict[str, Issue] = {}
    snaps: list[IssueSnapshot] = []
    named = _named_issues(query.ast.where, state) if lookup else None
    if named is None:
        candidates: Any = state.issues.values()
    else:
        candidates = [state.issues[i] for i in sorted(named, key=_id_order) if i in state.issues]
    for issue in candidates:
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


def _id_order(issue_id: str) -> tuple[int, str]:
    return (int(issue_id), issue_id) if issue_id.isdigit() else (-1, issue_id)


def parse_structure(
    text: str, state: EmulatorState, validation: Literal["strict", "warn", "none"] = "strict"
) -> dict[str, Any]:
    """One entry of ``/jql/parse``: ``{query, structure}`` and/or ``{errors, warnings}``."""
    result: dict[str, Any] = jql.parse_for_api(text, schema_for(state), validation)
    return result
