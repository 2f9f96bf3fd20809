"""The JQL syntax tree: small frozen dataclasses, built by :mod:`node.jql.parser`.

Positions (``line``, ``column``) are 1-based, as in Jira's messages. Names and values are kept as
written (after unescaping); resolving aliases and meaning happens in :mod:`node.jql.fields` and
:mod:`node.jql.evaluator`. ``display()`` renders a node the way Jira's messages quote it.

Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Operator = Literal[
    "=", "!=", "~", "!~", "<", ">", "<=", ">=", "in", "not in", "is", "is not",
    "was", "was not", "was in", "was not in", "changed",
]  # fmt: skip
PredicateOp = Literal["after", "before", "on", "during", "by", "from", "to"]
Direction = Literal["ASC", "DESC"]

# Java enum names Jira prints in some messages ("The EQUALS operator does not support ...").
OPERATOR_ENUM: dict[str, str] = {
    "=": "EQUALS",
    "!=": "NOT_EQUALS",
    "~": "LIKE",
    "!~": "NOT_LIKE",
    "<": "LESS_THAN",
    ">": "GREATER_THAN",
    "<=": "LESS_THAN_EQUALS",
    ">=": "GREATER_THAN_EQUALS",
    "in": "IN",
    "not in": "NOT_IN",
    "is": "IS",
    "is not": "IS_NOT",
    "was": "WAS",
    "was not": "WAS_NOT",
    "was in": "WAS_IN",
    "was not in": "WAS_NOT_IN",
    "changed": "CHANGED",
}


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


# ---------------------------------------------------------------------------------------------------
# Fields


@dataclass(frozen=True, slots=True)
class PropertyRef:
    """``issue.property[key].path``: ``entity`` is the part before ``.property``."""

    entity: str
    key: str
    path: str  # "" when the whole property value is meant


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str  # as written, unescaped ("Story Points", "type", "issue.property[x].y", "cf[10010]")
    pos: Position
    custom_id: int | None = None  # cf[10010] -> 10010
    prop: PropertyRef | None = None
    quoted: bool = False


# ---------------------------------------------------------------------------------------------------
# Operands


@dataclass(frozen=True, slots=True)
class Value:
    text: str
    pos: Position
    is_number: bool = False
    quoted: bool = False

    def display(self) -> str:
        if self.is_number:
            return self.text
        return '"' + self.text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Empty:
    pos: Position
    word: str = "EMPTY"

    def display(self) -> str:
        return "EMPTY"


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    args: tuple[str, ...]
    pos: Position

    def display(self) -> str:
        return f"{self.name}({', '.join(self.args)})"


@dataclass(frozen=True, slots=True)
class ListOperand:
    items: tuple[Operand, ...]
    pos: Position

    def display(self) -> str:
        return "(" + ", ".join(i.display() for i in self.items) + ")"


Operand = Value | Empty | Function | ListOperand


# ---------------------------------------------------------------------------------------------------
# Clauses


@dataclass(frozen=True, slots=True)
class Predicate:
    op: PredicateOp
    operand: Operand
    pos: Position

    def display(self) -> str:
        return f"{self.op} {self.operand.display()}"


@dataclass(frozen=True, slots=True)
class Terminal:
    """``field op operand`` for the value operators, ``WAS*`` (with predicates) and ``CHANGED``
    (``operand`` is None, predicates only)."""

    field: FieldRef
    op: Operator
    operand: Operand | None
    predicates: tuple[Predicate, ...]
    pos: Position


@dataclass(frozen=True, slots=True)
class And:
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Or:
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Not:
    clause: Clause


Clause = Terminal | And | Or | Not


@dataclass(frozen=True, slots=True)
class SortKey:
    field: FieldRef
    direction: Direction | None  # None: not written (Jira then uses the field's default, ascending)


@dataclass(frozen=True, slots=True)
class QueryAst:
    where: Clause | None
    order_by: tuple[SortKey, ...] | None  # None: no ORDER BY; () never happens


def walk(clause: Clause | None) -> list[Terminal]:
    """Every terminal clause, left to right."""
    out: list[Terminal] = []
    stack: list[Clause] = [clause] if clause is not None else []
    while stack:
        c = stack.pop()
        if isinstance(c, Terminal):
            out.append(c)
        elif isinstance(c, Not):
            stack.append(c.clause)
        else:
            stack.extend(reversed(c.clauses))
    return out


def operand_leaves(op: Operand | None) -> list[Value | Empty | Function]:
    if op is None:
        return []
    if isinstance(op, ListOperand):
        out: list[Value | Empty | Function] = []
        for item in op.items:
            out.extend(operand_leaves(item))
        return out
    return [op]
