"""The ``structure`` Jira's ``POST /rest/api/3/jql/parse`` returns (schema ``JqlQuery``): ``where``
as nested CompoundClause / FieldValueClause / FieldWasClause / FieldChangedClause objects and
``orderBy``. ``encoded*`` members are JQL text that can be pasted back into a query.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from node.jql.ast import (
    And,
    Clause,
    Empty,
    FieldRef,
    Function,
    ListOperand,
    Not,
    Operand,
    Or,
    QueryAst,
    Terminal,
    Value,
)
from node.jql.lexer import _STOP, KEYWORDS, RESERVED_WORDS, is_control

_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def encode(text: str) -> str:
    """``text`` as a JQL value: bare when that reads back the same, else double-quoted and escaped."""
    if (
        text
        and not any(ch.isspace() or ch in _STOP or ch == "\\" or is_control(ch) for ch in text)
        and text.lower() not in KEYWORDS
        and text.lower() not in RESERVED_WORDS
    ):
        return text
    out = []
    for ch in text:
        if ch in _ESC:
            out.append(_ESC[ch])
        elif is_control(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def field_json(f: FieldRef) -> dict[str, Any]:
    if f.prop is not None:
        p = f.prop
        suffix = f".{p.path}" if p.path else ""
        return {
            "name": f"{p.entity}.property[{p.key}]{suffix}",
            "encodedName": f"{encode(p.entity + '.property')}[{encode(p.key)}]{suffix}",
            "property": [{"entity": p.entity, "key": p.key, "path": p.path}],
        }
    if f.custom_id is not None:
        return {"name": f.name, "encodedName": f.name}
    return {"name": f.name, "encodedName": encode(f.name)}


def _encoded(op: Operand) -> str:
    if isinstance(op, Value):
        return op.text if op.is_number else encode(op.text)
    if isinstance(op, Empty):
        return "EMPTY"
    if isinstance(op, Function):
        return f"{op.name}({', '.join(encode(a) for a in op.args)})"
    return "(" + ", ".join(_encoded(i) for i in op.items) + ")"


def operand_json(op: Operand) -> dict[str, Any]:
    if isinstance(op, Value):
        return {"value": op.text, "encodedValue": _encoded(op)}
    if isinstance(op, Empty):
        return {"keyword": "empty"}
    if isinstance(op, Function):
        return {"function": op.name, "arguments": list(op.args), "encodedOperand": _encoded(op)}
    assert isinstance(op, ListOperand)
    return {"values": [operand_json(i) for i in op.items], "encodedOperand": _encoded(op)}


def clause_json(c: Clause) -> dict[str, Any]:
    if isinstance(c, And | Or):
        return {
            "clauses": [clause_json(x) for x in c.clauses],
            "operator": "and" if isinstance(c, And) else "or",
        }
    if isinstance(c, Not):
        return {"clauses": [clause_json(c.clause)], "operator": "not"}
    assert isinstance(c, Terminal)
    out: dict[str, Any] = {"field": field_json(c.field), "operator": c.op}
    if c.operand is not None:
        out["operand"] = operand_json(c.operand)
    if c.op.startswith("was") or c.op == "changed":
        out["predicates"] = [{"operator": p.op, "operand": operand_json(p.operand)} for p in c.predicates]
    return out


def query_json(ast: QueryAst) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ast.where is not None:
        out["where"] = clause_json(ast.where)
    if ast.order_by is not None:
        fields = []
        for key in ast.order_by:
            item: dict[str, Any] = {"field": field_json(key.field)}
            if key.direction is not None:
                item["direction"] = key.direction.lower()
            fields.append(item)
        out["orderBy"] = {"fields": fields}
    return out
