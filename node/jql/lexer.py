"""JQL tokenizer: Jira's lexical rules and lexical error messages.

It runs before the lark LALR parser and hands it ready-made tokens, so that every lexical problem is
reported the way Jira reports it (unfinished string, illegal escape, reserved character, reserved
word, illegal character), with Jira's 1-based line/character. Keywords are whole words matched
case-insensitively; anything else that is not a stop character forms an unquoted string. Quoted
strings (``"..."`` or ``'...'``) are returned unescaped; the token keeps whether it was quoted.

Pure: no I/O.
"""

from __future__ import annotations

import re

from lark import Token

from node.jql.errors import JqlError, syntax_at

KEYWORDS: dict[str, str] = {
    "and": "AND",
    "or": "OR",
    "not": "NOT",
    "in": "IN",
    "is": "IS",
    "empty": "EMPTY",
    "null": "EMPTY",
    "was": "WAS",
    "changed": "CHANGED",
    "before": "BEFORE",
    "after": "AFTER",
    "from": "FROM",
    "to": "TO",
    "on": "ON",
    "during": "DURING",
    "order": "ORDER",
    "by": "BY",
    "asc": "ASC",
    "desc": "DESC",
    "cf": "CUSTOMFIELD",
}

# Words Jira reserves for future use: an unquoted value spelled like one is rejected
# (JqlStringSupportImpl.RESERVED_WORDS minus the words that are JQL keywords).
RESERVED_WORDS = frozenset(
    """abort access add alias all alter any as audit avg begin between boolean break byte catch char
    character check checkpoint collate collation column commit connect continue count create current
    date decimal declare decrement default defaults define delete delimiter difference distinct divide
    do double drop else encoding end equals escape exclusive exec execute exists explain false fetch
    file field first float for function go goto grant greater group having identified if immediate
    increment index initial inner inout input insert int integer intersect intersection into isempty
    isnull join last left less like limit lock long max min minus mode modify modulo more multiply
    next noaudit notin nowait number object of option outer output power previous prior privileges
    public raise raw remainder rename resource return returns revoke right row rowid rownum rows
    select session set share size sqrt start strict string subtract sum synonym table then trans
    transaction trigger true uid union unique update user validate values view when whenever where
    while with""".split()
)

RESERVED_CHARS = frozenset("{}*/%+^$#@?;")
_SINGLE = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", "[": "LBRACKET", "]": "RBRACKET", "~": "LIKE"}
_STOP = frozenset("\"'=!<>()~,[]|&") | RESERVED_CHARS
_WHITESPACE = frozenset(" \t\n\r")
_POSNUMBER = re.compile(r"\d+\Z")
_NEGNUMBER = re.compile(r"-\d+\Z")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "'": "'", "\\": "\\", " ": " "}
VALID_ESCAPES = "The valid escape sequences are \\', \\\", \\t, \\n, \\r, \\\\, '\\ ' and \\uXXXX."


def is_control(ch: str) -> bool:
    """Characters Jira refuses anywhere except as an escape (JqlStringSupportImpl.isJqlControl)."""
    c = ord(ch)
    return (
        c <= 0x09
        or 0x0B <= c <= 0x0C
        or 0x0E <= c <= 0x1F
        or 0x7F <= c <= 0x9F
        or 0xFDD0 <= c <= 0xFDEF
        or 0xFFFE <= c <= 0xFFFF
        or 0xD800 <= c <= 0xDFFF
    )


def escape_for(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


def printable(ch: str) -> str:
    if ch == "\t":
        return "TAB"
    if is_control(ch) or ch.isspace():
        return f"U+{ord(ch):04X}"
    return ch


def _flat(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


class _Cursor:
    __slots__ = ("col", "line", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1

    def advance(self) -> str:
        ch = self.text[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
            self.col = 1
        else:
            self.col += 1
        return ch


def _illegal_char(ch: str, line: int, col: int) -> JqlError:
    return syntax_at(
        f"The character '{printable(ch)}' on line {line} at position {col} must be escaped. "
        f"Use the escape '{escape_for(ch)}' instead.",
        line,
        col,
    )


def _read_escape(cur: _Cursor) -> str:
    """At a backslash: consume one escape sequence and return the character it stands for."""
    line, col = cur.line, cur.col
    cur.advance()  # the backslash
    text = cur.text
    if cur.pos >= len(text) or text[cur.pos] in "\n\r":
        raise syntax_at(f"The escape sequence has not been completed. {VALID_ESCAPES}", line, col)
    ch = text[cur.pos]
    if ch in _ESCAPES:
        cur.advance()
        return _ESCAPES[ch]
    if ch == "u":
        digits = text[cur.pos + 1 : cur.pos + 5]
        if len(digits) == 4 and all(d in _HEX for d in digits):
            for _ in range(5):
                cur.advance()
            return chr(int(digits, 16))
        seen = "u"
        for d in text[cur.pos + 1 : cur.pos + 5]:
            seen += d
            if d not in _HEX:
                break
        raise syntax_at(
            f"'{_flat(chr(92) + seen)}' is an illegal JQL escape sequence. {VALID_ESCAPES}", line, col
        )
    raise syntax_at(f"'{_flat(chr(92) + ch)}' is an illegal JQL escape sequence. {VALID_ESCAPES}", line, col)


def tokenize(text: str) -> list[Token]:
    """Split a JQL string into lark tokens; raises :class:`JqlError` worded as Jira's lexer."""
    cur = _Cursor(text)
    tokens: list[Token] = []
    n = len(text)
    while cur.pos < n:
        ch = text[cur.pos]
        if ch in _WHITESPACE:
            cur.advance()
            continue
        start, line, col = cur.pos, cur.line, cur.col
        if ch in _SINGLE:
            cur.advance()
            tokens.append(Token(_SINGLE[ch], ch, start, line, col, line, col + 1, start + 1))
            continue
        if ch in "!<>=&|":
            nxt = text[cur.pos + 1] if cur.pos + 1 < n else ""
            two = ch + nxt
            kind = {
                "!=": "NOT_EQUALS",
                "!~": "NOT_LIKE",
                "<=": "LTEQ",
                ">=": "GTEQ",
                "&&": "AND",
                "||": "OR",
            }.get(two)
            if kind is None:
                kind = {"!": "BANG", "<": "LT", ">": "GT", "=": "EQUALS", "&": "AND", "|": "OR"}[ch]
                two = ch
            for _ in two:
                cur.advance()
            tokens.append(Token(kind, two, start, line, col, line, col + len(two), start + len(two)))
            continue
        if ch in "\"'":
            tokens.append(_quoted(cur, ch))
            continue
        if ch in RESERVED_CHARS:
            raise syntax_at(
                f"The character '{ch}' is a reserved JQL character. You must enclose it in a "
                f"string or use the escape '{escape_for(ch)}' instead.",
                line,
                col,
            )
        if is_control(ch):
            raise _illegal_char(ch, line, col)
        tokens.append(_unquoted(cur))
    return tokens


def _quoted(cur: _Cursor, quote: str) -> Token:
    text = cur.text
    start, line, col = cur.pos, cur.line, cur.col
    cur.advance()
    out: list[str] = []
    while True:
        if cur.pos >= len(text):
            raw = _flat(text[start + 1 :])
            if raw.strip():
                msg = f"The quoted string '{raw}' has not been completed."
            else:
                msg = "The quoted string has not been completed."
            raise syntax_at(msg, line, col)
        ch = text[cur.pos]
        if ch == quote:
            cur.advance()
            break
        if ch == "\\":
            out.append(_read_escape(cur))
            continue
        if is_control(ch):
            raise _illegal_char(ch, cur.line, cur.col)
        out.append(cur.advance())
    kind = "QUOTE_STRING" if quote == '"' else "SQUOTE_STRING"
    return Token(kind, "".join(out), start, line, col, cur.line, cur.col, cur.pos)


def _unquoted(cur: _Cursor) -> Token:
    text = cur.text
    start, line, col = cur.pos, cur.line, cur.col
    out: list[str] = []
    escaped = False
    while cur.pos < len(text):
        ch = text[cur.pos]
        if ch == "\\":
            out.append(_read_escape(cur))
            escaped = True
            continue
        if ch in _WHITESPACE or ch in _STOP:
            break
        if is_control(ch):
            raise _illegal_char(ch, cur.line, cur.col)
        out.append(cur.advance())
    word = "".join(out)
    raw = text[start : cur.pos]
    lower = word.lower()
    end = (cur.line, cur.col, cur.pos)
    if not escaped and lower in KEYWORDS:
        return Token(KEYWORDS[lower], raw, start, line, col, *end)
    if not escaped and _POSNUMBER.match(word):
        return Token("POSNUMBER", word, start, line, col, *end)
    if not escaped and _NEGNUMBER.match(word):
        return Token("NEGNUMBER", word, start, line, col, *end)
    if lower in RESERVED_WORDS:
        raise syntax_at(
            f"'{_flat(word)}' is a reserved JQL word. You must surround it in quotation marks "
            "to use it in a query.",
            line,
            col,
        )
    return Token("STRING", word, start, line, col, *end)
