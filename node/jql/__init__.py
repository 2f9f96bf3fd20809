"""JQL for Tandem: a parser (on lark) and an evaluator over neutral issue snapshots.

Shared by the Jira emulator's search and the node's sync triggers. Usage::

    q = compile_query('project = ABC AND status CHANGED AFTER -1d ORDER BY updated DESC')
    ctx = EvalContext(now=datetime.now(UTC), current_user=me)
    hits = q.sort([s for s in snapshots if q.matches(s, ctx)], ctx)

Errors are :class:`JqlError` worded as Jira words them. See ``docs/jql.md`` for what is supported
and where Tandem differs from Jira. Nothing here does I/O.
"""

from __future__ import annotations

from node.jql.ast import QueryAst
from node.jql.context import DEFAULT_PRIORITY_ORDER, EvalContext, JqlSchema
from node.jql.errors import JqlError
from node.jql.parser import parse
from node.jql.query import DEFAULT_ORDER, Query, compile_query, parse_for_api
from node.jql.structure import encode

__all__ = [
    "DEFAULT_ORDER",
    "DEFAULT_PRIORITY_ORDER",
    "EvalContext",
    "JqlError",
    "JqlSchema",
    "Query",
    "QueryAst",
    "compile_query",
    "encode",
    "parse",
    "parse_for_api",
]
