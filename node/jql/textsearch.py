"""The ``~`` (CONTAINS) operator: a small, predictable stand-in for Jira's Lucene text search.

What a query string can hold (case-insensitive, words are runs of letters/digits):

* words: ``full screen`` matches text holding both words, in any order;
* phrases: ``"\\"full screen\\""`` (quotes inside the value) matches the words next to each other;
* wildcards: ``win*`` (prefix), ``wi?dows`` (one character), ``*`` anywhere inside a word;
* ``-word`` / ``NOT word``: must not occur; ``+word``: must occur (same as a bare word).

Words are lightly stemmed (plural/-ed/-ing endings) on both sides, as Jira's English analyser does,
so ``customize`` finds "customized". Fuzzy (``~``), proximity, boosting and OR inside the string
are not supported: their markers are ignored and the words treated as plain words.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+")
_QUERY_PART = re.compile(r'([+-]?)"([^"]*)"|([+-]?)([^\s"]+)')
_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)


def stem(word: str) -> str:
    """A light English stemmer: enough for plural/past/-ing forms to meet (crashes ~ crash,
    customized ~ customize), not a full Porter stemmer."""
    w = word.lower()
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("es") and (w[-3] in "sxz" or w[-4:-2] in ("sh", "ch")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text)]


class TextQuery:
    """A compiled ``~`` operand. ``matches(texts)`` is true when every required term occurs in one
    of the texts and no excluded term does."""

    __slots__ = ("excluded", "required", "usable")

    def __init__(self, query: str) -> None:
        self.required: list[tuple[str, object]] = []
        self.excluded: list[tuple[str, object]] = []
        negate_next = False
        for m in _QUERY_PART.finditer(query):
            if m.group(2) is not None:
                sign, body, is_phrase = m.group(1), m.group(2), True
            else:
                sign, body, is_phrase = m.group(3), m.group(4), False
            if not is_phrase and body in ("AND", "OR", "&&", "||"):
                continue
            if not is_phrase and body == "NOT":
                negate_next = True
                continue
            term = self._term(body, is_phrase)
            if term is None:
                continue
            if sign == "-" or negate_next:
                self.excluded.append(term)
            else:
                self.required.append(term)
            negate_next = False
        self.usable = bool(self.required or self.excluded)

    @staticmethod
    def _term(body: str, is_phrase: bool) -> tuple[str, object] | None:
        body = re.sub(r"[~^][\d.]*$", "", body)
        if is_phrase:
            ws = words(body)
            if not ws:
                return None
            return ("phrase", tuple(ws)) if len(ws) > 1 else ("word", ws[0])
        if "*" in body or "?" in body:
            pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in body.lower())
            if not pattern.strip(".*"):
                return None
            return ("wild", re.compile(pattern + r"\Z"))
        ws = words(body)
        if not ws:
            return None
        if len(ws) > 1:  # "foo-bar" behaves as the phrase "foo bar", as Lucene's tokenizer does
            return ("phrase", tuple(ws))
        if ws[0] in _STOP_WORDS:
            return None
        return ("word", ws[0])

    def matches(self, texts: Iterable[str]) -> bool:
        token_lists = [_WORD.findall(t) for t in texts if t]
        if not token_lists or not self.usable:
            return False
        stemmed = [[stem(w) for w in tl] for tl in token_lists]
        for term in self.required:
            if not _occurs(term, token_lists, stemmed):
                return False
        return not any(_occurs(term, token_lists, stemmed) for term in self.excluded)


def _occurs(term: tuple[str, object], raw: list[list[str]], stemmed: list[list[str]]) -> bool:
    kind, value = term
    if kind == "word":
        return any(value in ws for ws in stemmed)
    if kind == "wild":
        rx = value
        assert isinstance(rx, re.Pattern)
        return any(rx.match(w.lower()) for ws in raw for w in ws)
    assert isinstance(value, tuple)
    n = len(value)
    for ws in stemmed:
        for i in range(len(ws) - n + 1):
            if tuple(ws[i : i + n]) == value:
                return True
    return False
