"""JQL text -> :class:`~node.jql.ast.QueryAst`, on lark (LALR, grammar in ``jql.lark``).

Tokens come from :func:`node.jql.lexer.tokenize`; they are fed to lark's interactive LALR parser one
by one so that, when the parser stops, we know the offending token, the tokens before it and the
set of terminals that would have been accepted. :func:`_syntax_error` turns that into the message
Jira's ANTLR parser gives for the same input (its wording and positions are pinned by the tests).

Pure: no I/O.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput
from lark.lexer import Lexer

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
    Position,
    Predicate,
    PropertyRef,
    QueryAst,
    SortKey,
    Terminal,
    Value,
)
from node.jql.errors import OPERAND_PREFIX, SYNTAX_PREFIX, JqlError, at, syntax_at, validation
from node.jql.lexer import tokenize

MAX_QUERY_LENGTH = 100_000  # characters; Jira has no documented limit, this only bounds work
MAX_NESTING = 200  # parentheses; deeper queries are refused rather than risking recursion limits

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_STRINGS = frozenset({"STRING", "QUOTE_STRING", "SQUOTE_STRING"})
_VALUE_TOKENS = _STRINGS | {"POSNUMBER", "NEGNUMBER"}
_LIST_OPENERS = frozenset(
    {
        "EQUALS", "NOT_EQUALS", "LIKE", "NOT_LIKE", "LT", "GT", "LTEQ", "GTEQ", "IN", "IS",
        "WAS", "CHANGED", "FROM", "TO", "BY", "BEFORE", "AFTER", "ON", "DURING",
    }
)  # fmt: skip
_VALID_OPERATORS = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
)


class _NoLexer(Lexer):
    """Tokens are fed by hand (see :func:`parse`); lark never lexes."""

    def __init__(self, conf: Any) -> None:
        pass

    def lex(self, lexer_state: Any, parser_state: Any) -> Any:
        raise NotImplementedError


class _Str:
    __slots__ = ("is_number", "pos", "quoted", "text", "token")

    def __init__(self, token: Token) -> None:
        self.token = token
        self.text = str(token.value)
        self.quoted = token.type in ("QUOTE_STRING", "SQUOTE_STRING")
        self.is_number = token.type in ("POSNUMBER", "NEGNUMBER")
        self.pos = _pos(token)


def _pos(tok: Token) -> Position:
    return Position(tok.line or 1, tok.column or 1)


def _check_long(s: _Str) -> None:
    if s.is_number and not (_LONG_MIN <= int(s.text) <= _LONG_MAX):
        raise syntax_at(
            f"'{s.text}' is not a valid number. Numbers must be between "
            "-9,223,372,036,854,775,808 and 9,223,372,036,854,775,807.",
            s.pos.line,
            s.pos.column,
        )


class _Build(Transformer[Token, Any]):
    """Inline LALR callbacks building the AST (and raising the errors Jira's parser actions raise)."""

    def start(self, c: list[Any]) -> QueryAst:
        where: Clause | None = None
        order: tuple[SortKey, ...] | None = None
        for child in c:
            if isinstance(child, tuple):
                order = child
            else:
                where = child
        return QueryAst(where, order)

    def or_clause(self, c: list[Any]) -> Clause:
        parts = tuple(x for x in c if not isinstance(x, Token))
        return parts[0] if len(parts) == 1 else Or(parts)

    def and_clause(self, c: list[Any]) -> Clause:
        parts = tuple(x for x in c if not isinstance(x, Token))
        return parts[0] if len(parts) == 1 else And(parts)

    def negation(self, c: list[Any]) -> Clause:
        return Not(c[1])

    def group(self, c: list[Any]) -> Clause:
        result: Clause = c[1]
        return result

    def terminal_clause(self, c: list[Any]) -> Terminal:
        field: FieldRef = c[0]
        op: str = c[1]
        rest = c[2:]
        operand: Operand | None = None
        if rest and not isinstance(rest[0], Predicate):
            operand = rest[0]
            rest = rest[1:]
        preds = tuple(rest)
        if op == "changed" and operand is not None:
            raise validation(
                "The CHANGED operator does not support the use of values without predicates. "
                f"You must prefix the {_plain_display(operand)} value with a suitable predicate.",
                field.pos.line,
                field.pos.column,
            )
        if preds and op not in ("was", "was not", "was in", "was not in", "changed"):
            raise validation(
                f"The {OPERATOR_ENUM[op]} operator does not support the use of the "
                f"{preds[0].display()} predicate.",
                preds[0].pos.line,
                preds[0].pos.column,
            )
        return Terminal(field, op, operand, preds, field.pos)  # type: ignore[arg-type]

    # ---- fields

    def field(self, c: list[Any]) -> FieldRef:
        head = c[0]
        props: list[tuple[str, str]] = c[1:]
        if isinstance(head, FieldRef):
            if props:
                return FieldRef(
                    head.name + "".join(_prop_text(k, p) for k, p in props), head.pos, head.custom_id
                )
            return head
        s: _Str = head
        if not s.text:
            raise syntax_at("A field name cannot be empty.", s.pos.line, s.pos.column)
        if not props:
            return FieldRef(s.text, s.pos, quoted=s.quoted)
        name = s.text + "".join(_prop_text(k, p) for k, p in props)
        prop = None
        if s.text.lower().endswith(".property") and len(props) == 1:
            prop = PropertyRef(s.text[: -len(".property")], props[0][0], props[0][1])
        return FieldRef(name, s.pos, prop=prop, quoted=s.quoted)

    def field_head(self, c: list[Any]) -> _Str:
        s: _Str = c[0]
        return s

    def custom_field_id(self, c: list[Any]) -> FieldRef:
        num = _Str(c[2])
        _check_long(num)
        return FieldRef(f"cf[{int(num.text)}]", _pos(c[0]), custom_id=int(num.text))

    def property(self, c: list[Any]) -> tuple[str, str]:
        key: _Str = c[1]
        path = ""
        if len(c) > 3:
            tok: Token = c[3]
            text = str(tok.value)
            if len(text) < 2 or text[0] != "." or text[1] == ".":
                pos = _pos(tok)
                raise syntax_at(
                    f"Expecting a property reference starting with '.' but got '{text}'.",
                    pos.line,
                    pos.column,
                )
            path = text[1:]
        return key.text, path

    # ---- operators and operands

    def operator(self, c: list[Any]) -> str:
        return " ".join(str(t.value).lower() for t in c)

    def changed(self, c: list[Any]) -> str:
        return "changed"

    def string(self, c: list[Any]) -> _Str:
        return _Str(c[0])

    def number(self, c: list[Any]) -> _Str:
        return _Str(c[0])

    def value(self, c: list[Any]) -> Value:
        s: _Str = c[0]
        _check_long(s)
        return Value(s.text, s.pos, is_number=s.is_number, quoted=s.quoted)

    def empty(self, c: list[Any]) -> Empty:
        tok: Token = c[0]
        return Empty(_pos(tok), str(tok.value))

    def value_list(self, c: list[Any]) -> ListOperand:
        items = tuple(x for x in c if not isinstance(x, Token))
        return ListOperand(items, _pos(c[0]))

    def func(self, c: list[Any]) -> Function:
        name: _Str = c[0]
        if not name.text:
            raise syntax_at("A function name cannot be empty.", name.pos.line, name.pos.column)
        args = tuple(x.text for x in c[1:] if isinstance(x, _Str))
        return Function(name.text, args, name.pos)

    def func_name(self, c: list[Any]) -> _Str:
        s: _Str = c[0]
        return s

    def argument(self, c: list[Any]) -> _Str:
        s: _Str = c[0]
        return s

    def predicate(self, c: list[Any]) -> Predicate:
        tok: Token = c[0]
        return Predicate(str(tok.value).lower(), c[1], _pos(tok))  # type: ignore[arg-type]

    # ---- ORDER BY

    def order_by(self, c: list[Any]) -> tuple[SortKey, ...]:
        return tuple(x for x in c if isinstance(x, SortKey))

    def sort_key(self, c: list[Any]) -> SortKey:
        direction = str(c[1].value).upper() if len(c) > 1 else None
        return SortKey(c[0], direction)  # type: ignore[arg-type]


def _prop_text(key: str, path: str) -> str:
    return f"[{key}]" + (f".{path}" if path else "")


def _plain_display(op: Operand) -> str:
    if isinstance(op, Value):
        return op.text if op.is_number else op.display()
    return op.display()


@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("node.jql").joinpath("jql.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer=_NoLexer, transformer=_Build(), maybe_placeholders=False)


def parse(text: str) -> QueryAst:
    """Parse JQL; raises :class:`JqlError` with Jira's message and position. Results are cached
    (the AST is immutable)."""
    if not isinstance(text, str):
        raise JqlError(f"{SYNTAX_PREFIX}The JQL query must be a string.")
    return _parse_cached(text)


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> QueryAst:
    if len(text) > MAX_QUERY_LENGTH:
        raise JqlError(
            f"{SYNTAX_PREFIX}The JQL query is too long ({len(text)} characters; at most {MAX_QUERY_LENGTH})."
        )
    tokens = tokenize(text)
    depth = 0
    for tok in tokens:
        if tok.type == "LPAREN":
            depth += 1
            if depth > MAX_NESTING:
                pos = _pos(tok)
                raise syntax_at(
                    f"The JQL query is nested too deeply (more than {MAX_NESTING} parentheses).",
                    pos.line,
                    pos.column,
                )
        elif tok.type == "RPAREN":
            depth -= 1
    ip = _lark().parse_interactive("")
    for i, tok in enumerate(tokens):
        try:
            ip.feed_token(tok)
        except UnexpectedInput:
            raise _syntax_error(text, tokens, i, _expected_after(tokens[:i])) from None
    try:
        result = ip.feed_eof(tokens[-1] if tokens else None)  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        raise _syntax_error(text, tokens, len(tokens), _expected_after(tokens)) from None
    if not isinstance(result, QueryAst):  # pragma: no cover - the grammar's start rule builds one
        raise JqlError(f"{SYNTAX_PREFIX}Unable to parse the query.")
    return result


# ---------------------------------------------------------------------------------------------------
# Syntax errors, worded as Jira's parser words them


def _expected_after(prefix: list[Token]) -> set[str]:
    """The terminals the parser would really accept after ``prefix``.

    LALR merges look-ahead sets, so the ``expected`` of lark's exception is often far too wide (it
    may be raised only after some reductions). Replaying the prefix and trying each candidate
    terminal on a copy gives the exact set. Only runs on the error path."""
    ip = _lark().parse_interactive("")
    for tok in prefix:
        ip.feed_token(tok)
    accepted: set[str] = set()
    for name in ip.choices():  # type: ignore[no-untyped-call]
        if not name.isupper() and name != "$END":
            continue
        trial = ip.copy()  # type: ignore[no-untyped-call]
        try:
            if name == "$END":
                trial.feed_eof(prefix[-1] if prefix else None)
            else:
                trial.feed_token(Token(name, ""))
        except UnexpectedInput:
            continue
        except Exception:
            pass
        accepted.add(name)
    return accepted


def _syntax_error(text: str, tokens: list[Token], i: int, expected: set[str]) -> JqlError:
    tok = tokens[i] if i < len(tokens) else None
    prev = tokens[i - 1] if i > 0 else None
    prev2 = tokens[i - 2] if i > 1 else None
    ptype = prev.type if prev is not None else None
    context = _paren_context(tokens[:i])

    if tok is None:
        line, col = _end_position(text)
    else:
        line, col = tok.line or 1, tok.column or 1
    got = str(tok.value).replace("\n", " ").replace("\r", " ") if tok is not None else ""
    where = at(line, col)

    def err(message: str, prefix: str = SYNTAX_PREFIX) -> JqlError:
        return JqlError(prefix + message, line, col)

    def expecting(what: str) -> JqlError:
        if tok is None:
            return err(f"Expecting '{what}' before the end of the query.")
        return err(f"Expecting '{what}' but got '{got}'.{where}")

    def expecting2(a: str, b: str) -> JqlError:
        if tok is None:
            return err(f"Expecting '{a}' or '{b}' before the end of the query.")
        return err(f"Expecting '{a}' or '{b}' but got '{got}'.{where}")

    def bad_operand() -> JqlError:
        if tok is None:
            return err(
                "Expecting either a value, list or function before the end of the query.", OPERAND_PREFIX
            )
        return err(
            f"Expecting either a value, list or function but got '{got}'. "
            f"You must surround '{got}' in quotation marks to use it as a value.{where}",
            OPERAND_PREFIX,
        )

    if ptype == "CUSTOMFIELD" and "LBRACKET" in expected:
        return expecting("[")
    if ptype == "LBRACKET" and prev2 is not None and prev2.type == "CUSTOMFIELD":
        if tok is None:
            return err("Expecting a custom field id (a positive number) before the end of the query.")
        return err(f"Expecting a custom field id (a positive number) but got '{got}'.{where}")
    if ptype == "LBRACKET" and "STRING" in expected and "CUSTOMFIELD" not in expected:
        if tok is None:
            return err("Expecting a property id before the end of the query.")
        return err(
            f"Expecting a property id but got '{got}'. You must surround '{got}' in quotation marks "
            f"to use it as a property id.{where}"
        )
    if expected == {"RBRACKET"}:
        return expecting("]")
    if expected == {"BY"}:
        return expecting("by")
    if expected == {"IN"}:
        return expecting("IN")
    if ptype == "IS" and tok is not None and tok.type == "BANG":
        return expecting("NOT")
    if ptype == "CHANGED" and tok is not None and tok.type in _VALUE_TOKENS | {"LPAREN", "EMPTY"}:
        shown = got if tok.type in ("POSNUMBER", "NEGNUMBER", "LPAREN", "EMPTY") else '"' + got + '"'
        return JqlError(
            "The CHANGED operator does not support the use of values without predicates. "
            f"You must prefix the {shown} value with a suitable predicate.",
            line,
            col,
            kind="validation",
        )
    if "EQUALS" in expected:
        if tok is None:
            return err(f"Expecting operator before the end of the query. {_VALID_OPERATORS}")
        return err(f"Expecting operator but got '{got}'. {_VALID_OPERATORS}{where}")
    if "CUSTOMFIELD" in expected:
        if tok is None:
            return err("Expecting a field name at the end of the query.")
        if tok.type == "LBRACKET":
            return err(f"Expecting a field name but got '['. Did you mean 'cf['?{where}")
        return err(
            f"Expecting a field name but got '{got}'. You must surround '{got}' in quotation marks "
            f"to use it as a field name.{where}"
        )
    if "EMPTY" in expected:
        return bad_operand()
    if "ASC" in expected:
        if tok is None:
            return err("Expecting either 'ASC' or 'DESC' before the end of the query.")
        return err(f"Expecting either 'ASC' or 'DESC' but got '{got}'.{where}")
    if context == "func":
        if "STRING" in expected and "RPAREN" in expected:  # just after '('
            if tok is None or tok.type == "COMMA":
                return expecting(")")
        elif "STRING" in expected:  # just after ','
            if tok is not None and tok.type in ("COMMA", "RPAREN"):
                return err(f"Function argument must be specified.{where}")
        else:
            return expecting(")") if tok is None else expecting2(")", ",")
        if tok is None:
            return err("Expecting a function argument at the end of the query.")
        return err(
            f"Expecting a function argument but got '{got}'. You must surround '{got}' in quotation marks "
            f"to use it as an argument.{where}"
        )
    if context == "list" and {"COMMA", "RPAREN"} <= expected:
        if tok is None or ptype == "RPAREN":
            return expecting(")")
        return expecting2(",", ")")
    if "AND" in expected:
        if tok is None:
            return expecting(")")
        if context == "sub" and ptype == "RPAREN":
            return expecting(")")
        return err(f"Expecting either 'OR' or 'AND' but got '{got}'.{where}")
    if "COMMA" in expected:
        return expecting(",")
    if tok is None:
        return err("Unable to parse the query.")
    return err(f"Unable to parse the query at '{got}'.{where}")


def _paren_context(before: list[Token]) -> str | None:
    """What the innermost unclosed '(' opened: "func" (arguments), "list" (values) or "sub" (clauses)."""
    stack: list[str] = []
    prev: Token | None = None
    prev2: Token | None = None
    for tok in before:
        if tok.type == "LPAREN":
            ptype = prev.type if prev is not None else None
            if ptype in _VALUE_TOKENS:
                stack.append("func")
            elif ptype in _LIST_OPENERS or (ptype == "NOT" and prev2 is not None and prev2.type == "WAS"):
                stack.append("list")
            elif ptype in ("COMMA", "LPAREN") and stack and stack[-1] == "list":
                stack.append("list")
            else:
                stack.append("sub")
        elif tok.type == "RPAREN" and stack:
            stack.pop()
        prev2, prev = prev, tok
    return stack[-1] if stack else None


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1
