"""Compiles a JQL syntax tree into plain Python closures: compile once, evaluate many.

Validation happens at compile time (unknown function, operator not supported by the field, list vs
single value, bad date literal, and, with a :class:`~node.jql.context.JqlSchema`, unknown fields and
values), so evaluation never raises for a compiled query. Everything that depends on the context
(the current user, ``now()``, relative dates, groups) is resolved lazily once per
:class:`~node.jql.context.EvalContext` and memoised in it.

Semantics follow Jira's documentation (see docs/jql.md): ``!=``, ``NOT IN`` and ``!~`` never match
an issue whose field is EMPTY; ``WAS`` considers every value the field ever had, including the
current one; ``CHANGED`` only real changes; ``NOT`` is plain logical negation.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dateutil.parser import isoparse

from node.jql.ast import (
    OPERATOR_ENUM,
    And,
    Clause,
    Empty,
    FieldRef,
    Function,
    ListOperand,
    Not,
    Operand,
    Or,
    Predicate,
    Terminal,
    Value,
    operand_leaves,
)
from node.jql.context import EvalContext, JqlSchema
from node.jql.dates import VALID_FORMATS, DateSpec, boundary, parse_date_literal, parse_increment
from node.jql.errors import JqlError, validation
from node.jql.fields import (
    BY_NAME,
    CUSTOM_OPERATORS,
    STATUS_CATEGORY_ALIASES,
    STATUS_CATEGORY_ORDER,
    Alias,
    FieldSpec,
    custom_getter,
    property_getter,
    user_alias,
)
from node.jql.functions import FunctionSpec, check_function
from node.jql.textsearch import TextQuery
from node.trackers.base import IssueSnapshot

Matcher = Callable[[IssueSnapshot, EvalContext], bool]
SortValue = Callable[[IssueSnapshot, EvalContext], Any]

_CF_ID = re.compile(r"customfield_(\d+)\Z", re.IGNORECASE)
_KEY = re.compile(r"(.*)-(\d+)\Z")
_LIST_OPS = frozenset({"in", "not in", "was in", "was not in"})
_EMPTY_OK = frozenset(
    {"=", "!=", "~", "!~", "is", "is not", "in", "not in", "was", "was not", "was in", "was not in"}
)


@dataclass(frozen=True)
class ResolvedField:
    spec: FieldSpec
    written: str  # as the user wrote it: Jira's messages quote this

    @property
    def canonical(self) -> str:
        return self.spec.name


# ---------------------------------------------------------------------------------------------------
# Field resolution


def resolve_field(f: FieldRef, schema: JqlSchema | None) -> ResolvedField:
    def missing() -> JqlError:
        return validation(
            f"Field '{f.name}' does not exist or you do not have permission to view it.",
            f.pos.line,
            f.pos.column,
        )

    if f.prop is not None:
        if f.prop.entity.lower() != "issue":
            raise missing()
        spec = FieldSpec(f.name, "any", CUSTOM_OPERATORS, property_getter(f.prop.key, f.prop.path))
        return ResolvedField(spec, f.name)
    if "[" in f.name and f.custom_id is None:
        raise missing()
    if f.custom_id is not None:
        fid = f"customfield_{f.custom_id}"
        if schema is not None and fid not in set(schema.custom_fields.values()):
            raise missing()
        return ResolvedField(
            FieldSpec(f"cf[{f.custom_id}]", "any", CUSTOM_OPERATORS, custom_getter(fid, None)), f.name
        )
    system = BY_NAME.get(f.name.lower())
    if system is not None:
        return ResolvedField(system, f.name)
    m = _CF_ID.match(f.name)
    if m:
        fid = f"customfield_{m.group(1)}"
        if schema is not None and fid not in set(schema.custom_fields.values()):
            raise missing()
        return ResolvedField(
            FieldSpec(f"cf[{m.group(1)}]", "any", CUSTOM_OPERATORS, custom_getter(fid, None)), f.name
        )
    if schema is not None:
        wanted = f.name.lower()
        for display, fid in schema.custom_fields.items():
            if display.lower() == wanted:
                m2 = _CF_ID.match(fid)
                canonical = f"cf[{m2.group(1)}]" if m2 else fid
                return ResolvedField(
                    FieldSpec(canonical, "any", CUSTOM_OPERATORS, custom_getter(fid, None)), f.name
                )
        raise missing()
    return ResolvedField(FieldSpec(f.name, "any", CUSTOM_OPERATORS, custom_getter(None, f.name)), f.name)


# ---------------------------------------------------------------------------------------------------
# Operands that depend on the context


class _Memo:
    """Base for context-dependent values: computed once per EvalContext."""

    __slots__ = ()

    def get(self, ctx: EvalContext) -> Any:
        memo = ctx.memo
        try:
            return memo[self]
        except KeyError:
            value = memo[self] = self.compute(ctx)
            return value

    def compute(self, ctx: EvalContext) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class _Candidates(_Memo):
    """The string values a list/value/function operand stands for (lower case), plus whether EMPTY
    is among them."""

    __slots__ = ("empty", "functions", "static")

    def __init__(
        self, static: frozenset[str], empty: bool, functions: tuple[tuple[FunctionSpec, Function], ...]
    ):
        self.static = static
        self.empty = empty
        self.functions = functions

    def compute(self, ctx: EvalContext) -> frozenset[str]:
        out = set(self.static)
        for spec, fn in self.functions:
            if spec.name == "currentUser":
                out.update(user_alias(ctx.current_user) or ())
            elif spec.name == "membersOf":
                wanted = fn.args[0].lower()
                for group, members in ctx.groups.items():
                    if group.lower() == wanted:
                        out.update(m.lower() for m in members)
        return frozenset(out)

    def values(self, ctx: EvalContext) -> frozenset[str]:
        if not self.functions:
            return self.static
        result: frozenset[str] = self.get(ctx)
        return result


class _DateValue(_Memo):
    """One date operand (literal or function), resolved to an aware datetime."""

    __slots__ = ("fn", "spec")

    def __init__(self, spec: DateSpec | None = None, fn: tuple[FunctionSpec, Function] | None = None):
        self.spec = spec
        self.fn = fn

    def compute(self, ctx: EvalContext) -> dt.datetime:
        if self.spec is not None:
            return self.spec.resolve(ctx.now, ctx.timezone)
        assert self.fn is not None
        spec, call = self.fn
        if spec.name == "now":
            return ctx.now
        if spec.name == "currentLogin":
            return ctx.current_login or ctx.now
        if spec.name == "lastLogin":
            return ctx.last_login or ctx.now
        inc = parse_increment(call.args[0]) if call.args else None
        return boundary(spec.name, ctx.now, ctx.timezone, ctx.week_start, inc)

    @property
    def has_time(self) -> bool:
        return self.spec is None or self.spec.has_time


def _check_functions(op: Operand | None) -> None:
    for leaf in operand_leaves(op):
        if isinstance(leaf, Function):
            check_function(leaf)


def _candidates(op: Operand, spec: FieldSpec | None = None) -> _Candidates:
    static: set[str] = set()
    empty = False
    fns: list[tuple[FunctionSpec, Function]] = []
    for leaf in operand_leaves(op):
        if isinstance(leaf, Empty):
            empty = True
        elif isinstance(leaf, Value):
            low = leaf.text.lower()
            if spec is not None and spec.empty_word is not None and low == spec.empty_word:
                empty = True
            else:
                static.add(low)
        else:
            fns.append((check_function(leaf), leaf))
    return _Candidates(frozenset(static), empty, tuple(fns))


def _date_values(op: Operand, what: str, *, predicate: bool = False) -> tuple[list[_DateValue], bool]:
    """Date operands of a clause or predicate; returns (values, has EMPTY)."""
    out: list[_DateValue] = []
    empty = False
    for leaf in operand_leaves(op):
        if isinstance(leaf, Empty):
            if predicate:
                raise validation(
                    f"Date value 'EMPTY' for predicate '{what}' is invalid. {VALID_FORMATS}",
                    leaf.pos.line,
                    leaf.pos.column,
                )
            empty = True
        elif isinstance(leaf, Value):
            spec = parse_date_literal(leaf.text, is_number=leaf.is_number)
            if spec is None:
                kind = "predicate" if predicate else "field"
                raise validation(
                    f"Date value '{leaf.text}' for {kind} '{what}' is invalid. {VALID_FORMATS}",
                    leaf.pos.line,
                    leaf.pos.column,
                )
            out.append(_DateValue(spec=spec))
        else:
            fspec = check_function(leaf)
            if fspec.result != "date":
                kind = "predicate" if predicate else "field"
                raise validation(
                    f"A date for the {kind} '{what}' provided by the function '{leaf.name}' is not valid.",
                    leaf.pos.line,
                    leaf.pos.column,
                )
            out.append(_DateValue(fn=(fspec, leaf)))
    return out, empty


# ---------------------------------------------------------------------------------------------------
# Orderings


def version_key(v: str) -> tuple[tuple[int, Any], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[a-z]+", v.lower()))


def key_key(v: str) -> tuple[str, int] | None:
    m = _KEY.match(v)
    return (m.group(1).lower(), int(m.group(2))) if m else None


class _PriorityRanks(_Memo):
    __slots__ = ()

    def compute(self, ctx: EvalContext) -> dict[str, int]:
        return {name.lower(): i for i, name in enumerate(ctx.priority_order)}


_PRIORITY_RANKS = _PriorityRanks()


def _enum_rank(spec: FieldSpec, alias: Alias, ctx: EvalContext) -> Any:
    """A comparable rank for one enum value under the field's ordering (None: not rankable)."""
    if spec.ordering == "priority":
        ranks: dict[str, int] = _PRIORITY_RANKS.get(ctx)
        return ranks.get(alias[0])
    if spec.ordering == "version":
        return version_key(alias[0])
    if spec.ordering == "key":
        return key_key(alias[0])
    return alias[0]


def _rank_operand(spec: FieldSpec, text: str, ctx: EvalContext) -> Any:
    return _enum_rank(spec, (text.lower(),), ctx)


# ---------------------------------------------------------------------------------------------------
# The compiler


class Compiler:
    def __init__(self, schema: JqlSchema | None = None) -> None:
        self.schema = schema
        self.value_errors: list[JqlError] = []  # "value does not exist" (warnings for /jql/parse)

    # ---- clauses

    def clause(self, c: Clause) -> Matcher:
        if isinstance(c, And):
            parts = [self.clause(x) for x in c.clauses]
            return lambda s, ctx: all(p(s, ctx) for p in parts)
        if isinstance(c, Or):
            parts = [self.clause(x) for x in c.clauses]
            return lambda s, ctx: any(p(s, ctx) for p in parts)
        if isinstance(c, Not):
            inner = self.clause(c.clause)
            return lambda s, ctx: not inner(s, ctx)
        return self.terminal(c)

    def terminal(self, t: Terminal) -> Matcher:
        field = resolve_field(t.field, self.schema)
        spec = field.spec
        _check_functions(t.operand)
        for p in t.predicates:
            _check_functions(p.operand)
        if t.operand is not None:
            self._check_operand_shape(t, field)
        if t.op not in spec.operators:
            raise validation(
                f"The operator '{t.op}' is not supported by the '{field.written}' field.",
                t.pos.line,
                t.pos.column,
            )
        self._check_known_values(t, field)
        if t.op in ("was", "was not", "was in", "was not in", "changed"):
            return self._history(t, field)
        assert t.operand is not None
        if spec.kind == "enum":
            return self._enum(t, field)
        if spec.kind == "text":
            return self._text(t, field)
        if spec.kind in ("date", "day"):
            return self._date(t, field)
        if spec.kind == "number":
            return self._number(t, field)
        if spec.kind == "attachments":
            getter = spec.getter
            if t.op == "is":
                return lambda s, ctx: getter(s) == 0
            return lambda s, ctx: getter(s) > 0
        return self._any(t, field)

    def _check_operand_shape(self, t: Terminal, field: ResolvedField) -> None:
        op, operand, name = t.op, t.operand, field.written
        assert operand is not None
        line, col = t.pos.line, t.pos.column
        is_list = isinstance(operand, ListOperand) or (
            isinstance(operand, Function) and check_function(operand).is_list
        )
        if op in _LIST_OPS:
            if isinstance(operand, Empty):
                raise validation(
                    f"Operator '{op}' does not support the empty value representation '{operand.display()}' "
                    f"for field '{name}'.",
                    line,
                    col,
                )
            if not is_list:
                raise validation(
                    f"Operator '{op}' does not support the non-list value '{operand.display()}' "
                    f"for field '{name}'.",
                    line,
                    col,
                )
            return
        if op in ("is", "is not"):
            if not isinstance(operand, Empty):
                raise validation(
                    f"Operator '{op}' does not support searching for non-empty values for field '{name}'.",
                    line,
                    col,
                )
            return
        if is_list:
            raise validation(
                f"Operator '{op}' does not support the list value '{operand.display()}' for field '{name}'.",
                line,
                col,
            )
        if isinstance(operand, Empty) and op not in _EMPTY_OK:
            raise validation(
                f"Operator '{op}' does not support the empty value representation '{operand.display()}' "
                f"for field '{name}'.",
                line,
                col,
            )

    def _check_known_values(self, t: Terminal, field: ResolvedField) -> None:
        if self.schema is None:
            return
        known = self.schema.values.get(field.canonical)
        if known is None:
            return
        known_lower = {k.lower() for k in known}
        if field.spec.empty_word:
            known_lower.add(field.spec.empty_word)
        if field.canonical == "statusCategory":
            known_lower.update(a for aliases in STATUS_CATEGORY_ALIASES.values() for a in aliases)
        for operand in [t.operand, *(p.operand for p in t.predicates if p.op in ("from", "to"))]:
            for leaf in operand_leaves(operand):
                if isinstance(leaf, Value) and leaf.text.lower() not in known_lower:
                    self.value_errors.append(
                        JqlError(
                            f"The value '{leaf.text}' does not exist for the field '{field.written}'.",
                            leaf.pos.line,
                            leaf.pos.column,
                            kind="value",
                        )
                    )

    # ---- per kind

    def _enum(self, t: Terminal, field: ResolvedField) -> Matcher:
        spec, getter, op = field.spec, field.spec.getter, t.op
        assert t.operand is not None
        if op == "is":
            return lambda s, ctx: not getter(s)
        if op == "is not":
            return lambda s, ctx: bool(getter(s))
        cands = _candidates(t.operand, spec)
        if op in ("=", "in"):

            def eq(s: IssueSnapshot, ctx: EvalContext) -> bool:
                vals = getter(s)
                if not vals:
                    return cands.empty
                wanted = cands.values(ctx)
                return any(a in wanted for v in vals for a in v)

            return eq
        if op in ("!=", "not in"):

            def ne(s: IssueSnapshot, ctx: EvalContext) -> bool:
                vals = getter(s)
                if not vals:
                    return False
                wanted = cands.values(ctx)
                return not any(a in wanted for v in vals for a in v)

            return ne
        # relational: < > <= >= against the field's ordering
        operand = t.operand
        if not isinstance(operand, Value):
            return lambda s, ctx: False
        text = operand.text
        cmp = _COMPARE[op]

        def rel(s: IssueSnapshot, ctx: EvalContext) -> bool:
            target = _rank_operand(spec, text, ctx)
            if target is None:
                return False
            for v in getter(s):
                r = _enum_rank(spec, v, ctx)
                if r is None or type(r) is not type(target):
                    continue
                if spec.ordering == "key" and r[0] != target[0]:
                    continue
                try:
                    if cmp(r, target):
                        return True
                except TypeError:
                    continue
            return False

        return rel

    def _text(self, t: Terminal, field: ResolvedField) -> Matcher:
        getter, op, operand = field.spec.getter, t.op, t.operand
        if op == "is" or (isinstance(operand, Empty) and op == "~"):
            return lambda s, ctx: not getter(s)
        if op == "is not" or (isinstance(operand, Empty) and op == "!~"):
            return lambda s, ctx: bool(getter(s))
        if not isinstance(operand, Value):
            return lambda s, ctx: False
        query = TextQuery(operand.text)
        if op == "~":
            return lambda s, ctx: query.matches(getter(s))

        def not_like(s: IssueSnapshot, ctx: EvalContext) -> bool:
            texts = getter(s)
            return bool(texts) and not query.matches(texts)

        return not_like

    def _date(self, t: Terminal, field: ResolvedField) -> Matcher:
        spec, getter, op = field.spec, field.spec.getter, t.op
        assert t.operand is not None
        if op == "is":
            return lambda s, ctx: getter(s) is None
        if op == "is not":
            return lambda s, ctx: getter(s) is not None
        values, has_empty = _date_values(t.operand, field.written)
        day = spec.kind == "day"

        def issue_instant(v: Any, ctx: EvalContext) -> dt.datetime:
            if day:
                return dt.datetime(v.year, v.month, v.day, tzinfo=ctx.timezone)
            inst: dt.datetime = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
            return inst

        def equal(v: Any, dv: _DateValue, ctx: EvalContext) -> bool:
            target: dt.datetime = dv.get(ctx)
            if day:
                return bool(target.astimezone(ctx.timezone).date() == v)
            inst = issue_instant(v, ctx)
            if dv.has_time:
                return inst.replace(second=0, microsecond=0) == target.replace(second=0, microsecond=0)
            return inst == target

        if op in ("=", "in"):

            def eq(s: IssueSnapshot, ctx: EvalContext) -> bool:
                v = getter(s)
                if v is None:
                    return has_empty
                return any(equal(v, dv, ctx) for dv in values)

            return eq
        if op in ("!=", "not in"):

            def ne(s: IssueSnapshot, ctx: EvalContext) -> bool:
                v = getter(s)
                if v is None:
                    return False
                return not any(equal(v, dv, ctx) for dv in values)

            return ne
        cmp = _COMPARE[op]
        if not values:
            return lambda s, ctx: False
        only = values[0]

        def rel(s: IssueSnapshot, ctx: EvalContext) -> bool:
            v = getter(s)
            if v is None:
                return False
            return bool(cmp(issue_instant(v, ctx), only.get(ctx)))

        return rel

    def _number(self, t: Terminal, field: ResolvedField) -> Matcher:
        getter, op = field.spec.getter, t.op
        assert t.operand is not None
        nums: list[float] = []
        has_empty = False
        for leaf in operand_leaves(t.operand):
            if isinstance(leaf, Empty):
                has_empty = True
            elif isinstance(leaf, Value):
                try:
                    nums.append(float(leaf.text))
                except ValueError:
                    raise validation(
                        f"The value '{leaf.text}' is not a valid number for the field '{field.written}'.",
                        leaf.pos.line,
                        leaf.pos.column,
                    ) from None
        if op in ("=", "in"):
            return lambda s, ctx: (getter(s) in nums) if getter(s) is not None else has_empty
        if op in ("!=", "not in"):
            return lambda s, ctx: getter(s) is not None and getter(s) not in nums
        cmp = _COMPARE[op]
        if not nums:
            return lambda s, ctx: False
        target = nums[0]
        return lambda s, ctx: getter(s) is not None and bool(cmp(getter(s), target))

    def _any(self, t: Terminal, field: ResolvedField) -> Matcher:
        getter, op, operand = field.spec.getter, t.op, t.operand
        assert operand is not None
        if op == "is" or (isinstance(operand, Empty) and op in ("=", "~")):
            return lambda s, ctx: not getter(s)
        if op == "is not" or (isinstance(operand, Empty) and op in ("!=", "!~")):
            return lambda s, ctx: bool(getter(s))
        if op in ("~", "!~"):
            if not isinstance(operand, Value):
                return lambda s, ctx: False
            query = TextQuery(operand.text)

            def texts(s: IssueSnapshot) -> list[str]:
                return [" ".join(v) if isinstance(v, tuple) else str(v) for v in getter(s)]

            if op == "~":
                return lambda s, ctx: query.matches(texts(s))
            return lambda s, ctx: bool(getter(s)) and not query.matches(texts(s))
        targets: list[_AnyTarget] = []
        has_empty = False
        cands = _candidates(operand)
        for leaf in operand_leaves(operand):
            if isinstance(leaf, Empty):
                has_empty = True
            elif isinstance(leaf, Value):
                targets.append(_AnyTarget(leaf))
        if op in ("=", "in", "!=", "not in"):
            positive = op in ("=", "in")

            def match_any(s: IssueSnapshot, ctx: EvalContext) -> bool:
                vals = getter(s)
                if not vals:
                    return has_empty if positive else False
                users = cands.values(ctx) if cands.functions else frozenset()
                hit = any(tg.equals(v, ctx) for v in vals for tg in targets) or (
                    bool(users) and any(isinstance(v, tuple) and any(a in users for a in v) for v in vals)
                )
                return hit if positive else not hit

            return match_any
        cmp = _COMPARE[op]
        if not targets:
            return lambda s, ctx: False
        target = targets[0]
        return lambda s, ctx: any(target.compare(v, cmp, ctx) for v in getter(s))

    # ---- history

    def _history(self, t: Terminal, field: ResolvedField) -> Matcher:
        spec, op = field.spec, t.op
        preds = [self._predicate(p, t) for p in t.predicates]
        if op == "changed":
            names = spec.history

            def changed(s: IssueSnapshot, ctx: EvalContext) -> bool:
                for c in s.changelog:
                    if c.field.lower() not in names:
                        continue
                    if (c.from_value or None) == (c.to_value or None) and (c.from_id or None) == (
                        c.to_id or None
                    ):
                        continue
                    if all(p.on_change(c, ctx) for p in preds):
                        return True
                return False

            return changed
        assert t.operand is not None
        cands = _candidates(t.operand, spec)
        negate = op in ("was not", "was not in")

        def was(s: IssueSnapshot, ctx: EvalContext) -> bool:
            wanted = cands.values(ctx)
            found = False
            for iv in history_intervals(s, spec):
                holds = (cands.empty and not iv.values) or any(a in wanted for v in iv.values for a in v)
                if holds and all(p.on_interval(iv, ctx) for p in preds):
                    found = True
                    break
            return not found if negate else found

        return was

    def _predicate(self, p: Predicate, t: Terminal) -> _Pred:
        if t.op != "changed" and p.op in ("from", "to"):
            raise validation(
                f"The {OPERATOR_ENUM[t.op]} operator does not support the use of the "
                f"{p.display()} predicate.",
                p.pos.line,
                p.pos.column,
            )
        if p.op == "by":
            return _Pred(p.op, users=_candidates(p.operand))
        if p.op in ("from", "to"):
            return _Pred(p.op, users=_candidates(p.operand))
        if p.op == "during":
            if not (isinstance(p.operand, ListOperand) and len(p.operand.items) == 2):
                raise validation(
                    "The DURING predicate must be supplied with exactly 2 date values.",
                    p.pos.line,
                    p.pos.column,
                )
        elif isinstance(p.operand, ListOperand):
            raise validation(
                f"The {p.op.upper()} predicate must be supplied with only 1 date value.",
                p.pos.line,
                p.pos.column,
            )
        dates, _ = _date_values(p.operand, p.op, predicate=True)
        return _Pred(p.op, dates=dates)

    # ---- ORDER BY

    def sort_value(self, field: ResolvedField) -> SortValue:
        spec, getter = field.spec, field.spec.getter
        if spec.kind == "enum":
            if spec.ordering == "status":

                def status_key(s: IssueSnapshot, ctx: EvalContext) -> Any:
                    st = s.status
                    return None if st is None else (STATUS_CATEGORY_ORDER[st.category], st.name.lower())

                return status_key
            if spec.ordering == "category":
                return lambda s, ctx: None if s.status is None else STATUS_CATEGORY_ORDER[s.status.category]
            if spec.ordering == "user":

                def user_key(s: IssueSnapshot, ctx: EvalContext) -> Any:
                    vals: list[Alias] = getter(s)
                    return min(v[-1] for v in vals) if vals else None

                return user_key

            def enum_key(s: IssueSnapshot, ctx: EvalContext) -> Any:
                ranks = [r for r in (_enum_rank(spec, v, ctx) for v in getter(s)) if r is not None]
                try:
                    return min(ranks) if ranks else None
                except TypeError:
                    return ranks[0]

            return enum_key
        if spec.kind == "text":
            return lambda s, ctx: (getter(s) or [None])[0] and getter(s)[0].lower()
        if spec.kind == "day":
            return lambda s, ctx: getter(s)
        if spec.kind == "date":
            return lambda s, ctx: _timestamp(getter(s))
        if spec.kind in ("number", "attachments"):
            return lambda s, ctx: getter(s)

        def any_key(s: IssueSnapshot, ctx: EvalContext) -> Any:
            vals = getter(s)
            return _any_sort(vals[0]) if vals else None

        return any_key


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _timestamp(v: dt.datetime | None) -> float | None:
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return v.timestamp()


def _any_sort(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (0, float(v))
    if isinstance(v, float):
        return (0, v)
    if isinstance(v, dt.datetime):
        return (1, _timestamp(v))
    if isinstance(v, dt.date):
        return (1, dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC).timestamp())
    if isinstance(v, tuple):
        return (2, v[0])
    return (2, str(v).lower())


class _AnyTarget:
    """A literal compared with custom-field / property values of unknown type."""

    __slots__ = ("date", "lower", "number", "text")

    def __init__(self, leaf: Value) -> None:
        self.text = leaf.text
        self.lower = leaf.text.lower()
        try:
            self.number: float | None = float(leaf.text)
        except ValueError:
            self.number = None
        self.date: _DateValue | None = None
        spec = parse_date_literal(leaf.text) if not leaf.is_number else None
        if spec is not None:
            self.date = _DateValue(spec=spec)

    def equals(self, v: Any, ctx: EvalContext) -> bool:
        if isinstance(v, tuple):
            return self.lower in v
        if isinstance(v, bool):
            return self.lower == str(v).lower()
        if isinstance(v, float):
            return self.number is not None and v == self.number
        if isinstance(v, dt.datetime | dt.date):
            return self.date is not None and _date_cmp(v, self.date.get(ctx), ctx) == 0
        s = str(v)
        if s.lower() == self.lower:
            return True
        if self.number is not None:
            try:
                return float(s) == self.number
            except ValueError:
                return False
        return False

    def compare(self, v: Any, cmp: Callable[[Any, Any], bool], ctx: EvalContext) -> bool:
        if isinstance(v, bool) or isinstance(v, tuple):
            return False
        if isinstance(v, float):
            return self.number is not None and cmp(v, self.number)
        if isinstance(v, str):
            if self.number is not None:
                try:
                    return cmp(float(v), self.number)
                except ValueError:
                    pass
            if self.date is not None:
                parsed = _parse_iso(v)
                if parsed is not None:
                    return cmp(_date_cmp(parsed, self.date.get(ctx), ctx), 0)
            return cmp(v.lower(), self.lower)
        if isinstance(v, dt.datetime | dt.date):
            return self.date is not None and cmp(_date_cmp(v, self.date.get(ctx), ctx), 0)
        return False


def _parse_iso(v: str) -> dt.datetime | dt.date | None:
    if len(v) < 8 or not v[:4].isdigit():
        return None
    try:
        parsed = isoparse(v)
    except (ValueError, OverflowError):
        return None
    if len(v) <= 10:
        return parsed.date()
    return parsed


def _date_cmp(v: dt.datetime | dt.date, target: dt.datetime, ctx: EvalContext) -> int:
    """-1/0/1 comparing a stored date (or datetime) with a resolved date operand."""
    if isinstance(v, dt.datetime):
        inst = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
        a, b = inst.replace(second=0, microsecond=0), target.replace(second=0, microsecond=0)
        return (a > b) - (a < b)
    day = target.astimezone(ctx.timezone).date()
    return (v > day) - (v < day)


# ---------------------------------------------------------------------------------------------------
# History


@dataclass(frozen=True, slots=True)
class Interval:
    """A span of time during which the field held ``values`` (``end`` None: still holds)."""

    values: tuple[Alias, ...]
    start: dt.datetime | None
    end: dt.datetime | None
    author: Alias | None


def _change_alias(value: str | None, ident: str | None) -> Alias | None:
    out = tuple(x.lower() for x in (value, ident) if x)
    return out or None


def history_intervals(s: IssueSnapshot, spec: FieldSpec) -> list[Interval]:
    """The values a field held over time, newest first, reconstructed backwards from its current
    value through the changelog."""
    changes = sorted((c for c in s.changelog if c.field.lower() in spec.history), key=lambda c: _aware(c.at))
    current: list[Alias] = list(spec.getter(s))
    multi = spec.name == "fixVersion"
    out: list[Interval] = []
    end: dt.datetime | None = None
    for c in reversed(changes):
        at = _aware(c.at)
        out.append(Interval(tuple(current), at, end, user_alias(c.author)))
        to_alias = _change_alias(c.to_value, c.to_id)
        from_alias = _change_alias(c.from_value, c.from_id)
        if multi:
            if to_alias is not None:
                for i, v in enumerate(current):
                    if set(v) & set(to_alias):
                        del current[i]
                        break
            if from_alias is not None:
                current.append(from_alias)
        else:
            current = [from_alias] if from_alias is not None else []
        end = at
    creator = user_alias(s.creator) or user_alias(s.reporter)
    out.append(Interval(tuple(current), _aware(s.created) if s.created else None, end, creator))
    return out


def _aware(v: dt.datetime) -> dt.datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)


class _Pred:
    """A compiled history predicate."""

    __slots__ = ("dates", "op", "users")

    def __init__(self, op: str, *, dates: list[_DateValue] | None = None, users: _Candidates | None = None):
        self.op = op
        self.dates = dates or []
        self.users = users

    def _day(self, ctx: EvalContext) -> tuple[dt.datetime, dt.datetime]:
        d: dt.datetime = self.dates[0].get(ctx)
        local = d.astimezone(ctx.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
        start = local.replace(tzinfo=None).replace(tzinfo=ctx.timezone)
        return start, start + dt.timedelta(days=1)

    def _user_match(self, who: Alias | None, ctx: EvalContext) -> bool:
        assert self.users is not None
        wanted = self.users.values(ctx)
        return who is not None and any(a in wanted for a in who)

    def on_interval(self, iv: Interval, ctx: EvalContext) -> bool:
        op = self.op
        if op == "by":
            return self._user_match(iv.author, ctx)
        if op == "after":
            return iv.end is None or iv.end > self.dates[0].get(ctx)
        if op == "before":
            return iv.start is None or iv.start < self.dates[0].get(ctx)
        if op == "on":
            a, b = self._day(ctx)
            return (iv.start is None or iv.start < b) and (iv.end is None or iv.end > a)
        # during
        a, b = self.dates[0].get(ctx), self.dates[1].get(ctx)
        return (iv.start is None or iv.start <= b) and (iv.end is None or iv.end >= a)

    def on_change(self, c: Any, ctx: EvalContext) -> bool:
        op = self.op
        if op == "by":
            return self._user_match(user_alias(c.author), ctx)
        if op in ("from", "to"):
            assert self.users is not None
            alias = (
                _change_alias(c.from_value, c.from_id) if op == "from" else _change_alias(c.to_value, c.to_id)
            )
            if alias is None:
                return self.users.empty
            wanted = self.users.values(ctx)
            return any(a in wanted for a in alias)
        at = _aware(c.at)
        if op == "after":
            return bool(at > self.dates[0].get(ctx))
        if op == "before":
            return bool(at < self.dates[0].get(ctx))
        if op == "on":
            a, b = self._day(ctx)
            return a <= at < b
        return bool(self.dates[0].get(ctx) <= at <= self.dates[1].get(ctx))
