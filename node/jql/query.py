"""Compiled queries: :func:`compile_query` once, then :meth:`Query.matches` / :meth:`Query.sort`
as often as needed, and :func:`parse_for_api` for the emulator's ``/rest/api/3/jql/parse``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from node.jql.ast import FieldRef, Position, QueryAst
from node.jql.context import EvalContext, JqlSchema
from node.jql.errors import JqlError, validation
from node.jql.evaluator import Compiler, Matcher, SortValue, key_key, resolve_field
from node.jql.parser import parse
from node.jql.structure import query_json
from node.trackers.base import IssueSnapshot

# Jira's default order when a query has no ORDER BY (the issue navigator's "created DESC"); ties
# broken by key, newest first.
DEFAULT_ORDER: tuple[tuple[str, str], ...] = (("created", "DESC"), ("issuekey", "DESC"))
_UNSORTABLE = frozenset({"text", "comment"})


def _always(s: IssueSnapshot, ctx: EvalContext) -> bool:
    return True


class Query:
    """A compiled JQL query. Immutable and safe to share between tasks."""

    __slots__ = ("_matcher", "_sorters", "ast", "order_by", "text", "warnings")

    def __init__(
        self,
        text: str,
        ast: QueryAst,
        matcher: Matcher,
        order_by: list[tuple[str, str]],
        sorters: list[tuple[SortValue, bool]],
        warnings: list[str],
    ) -> None:
        self.text = text
        self.ast = ast
        self._matcher = matcher
        self.order_by = order_by
        self._sorters = sorters
        self.warnings = warnings

    def __repr__(self) -> str:
        return f"Query({self.text!r})"

    def matches(self, snapshot: IssueSnapshot, ctx: EvalContext) -> bool:
        return self._matcher(snapshot, ctx)

    def filter(self, snapshots: Iterable[IssueSnapshot], ctx: EvalContext) -> list[IssueSnapshot]:
        m = self._matcher
        return [s for s in snapshots if m(s, ctx)]

    def sort(self, snapshots: Sequence[IssueSnapshot], ctx: EvalContext) -> list[IssueSnapshot]:
        """Order as Jira would: the ORDER BY keys (EMPTY last ascending, first descending), then by
        issue key; without ORDER BY, newest created first."""
        rows = [(s, [fn(s, ctx) for fn, _ in self._sorters]) for s in snapshots]
        rows.sort(key=lambda r: key_key(r[0].key) or (r[0].key.lower(), 0))
        for i in range(len(self._sorters) - 1, -1, -1):
            desc = self._sorters[i][1]
            try:
                rows.sort(key=lambda r: (1,) if r[1][i] is None else (0, r[1][i]), reverse=desc)
            except TypeError:  # values of mixed types in one field: fall back to their text
                rows.sort(key=lambda r: (1,) if r[1][i] is None else (0, str(r[1][i])), reverse=desc)
        return [s for s, _ in rows]

    def structure(self) -> dict[str, Any]:
        """The ``ParsedJqlQuery.structure`` object of ``/rest/api/3/jql/parse``."""
        return query_json(self.ast)


def _compile(text: str, schema: JqlSchema | None) -> tuple[Query, list[JqlError]]:
    ast = parse(text)
    compiler = Compiler(schema)
    matcher = compiler.clause(ast.where) if ast.where is not None else _always
    order: list[tuple[str, str]] = []
    sorters: list[tuple[SortValue, bool]] = []
    if ast.order_by is None:
        for name, direction in DEFAULT_ORDER:
            field = resolve_field(FieldRef(name, Position(1, 1)), None)
            sorters.append((compiler.sort_value(field), direction == "DESC"))
    else:
        for key in ast.order_by:
            field = resolve_field(key.field, schema)
            if field.canonical in _UNSORTABLE:
                raise validation(
                    f"Field '{key.field.name}' does not support sorting.",
                    key.field.pos.line,
                    key.field.pos.column,
                )
            direction = key.direction or "ASC"
            order.append((field.canonical, direction))
            sorters.append((compiler.sort_value(field), direction == "DESC"))
    query = Query(text, ast, matcher, order, sorters, [e.message for e in compiler.value_errors])
    return query, compiler.value_errors


@lru_cache(maxsize=256)
def _compile_cached(text: str) -> Query:
    return _compile(text, None)[0]


def compile_query(text: str, schema: JqlSchema | None = None) -> Query:
    """Parse and validate ``text``; raises :class:`JqlError` exactly where Jira's search would answer
    400 (syntax, unknown function, operator/field mismatch, bad date; with ``schema`` also unknown
    fields and values). Without a schema, compiled queries are cached."""
    if not isinstance(text, str):
        raise JqlError("Error in the JQL Query: The JQL query must be a string.")
    if schema is None:
        return _compile_cached(text)
    query, value_errors = _compile(text, schema)
    if value_errors:
        raise value_errors[0]
    return query


Validation = Literal["strict", "warn", "none"]


def parse_for_api(
    text: str, schema: JqlSchema | None = None, validation: Validation = "strict"
) -> dict[str, Any]:
    """One ``ParsedJqlQuery`` of ``POST /rest/api/3/jql/parse``: ``query``, and ``structure`` and/or
    ``errors`` / ``warnings`` following the endpoint's ``validation`` modes."""
    out: dict[str, Any] = {"query": text}
    try:
        ast = parse(text)  # also refuses a query that is not a string
    except JqlError as e:
        out["errors"] = [e.message]
        return out
    if validation == "none":
        out["structure"] = query_json(ast)
        return out
    errors: list[str] = []
    warnings: list[str] = []
    try:
        _, value_errors = _compile(text, schema)
        warnings = [e.message for e in value_errors]
    except JqlError as e:
        errors = [e.message]
    if errors:
        out["errors"] = errors
    if warnings:
        out["warnings"] = warnings
    if validation == "warn" or not (errors or warnings):
        out["structure"] = query_json(ast)
    return out
