"""Jira's two rich-text formats ↔ the neutral doc, picked by shape: Atlassian Document Format (Cloud,
REST v3) and wiki markup (Server/DC REST v2, and every webhook body, Cloud included).

The converters are :mod:`node.richtext.adf` and :mod:`node.richtext.wiki`; this module chooses
between them and makes reading total: text Jira accepted must never stop a sync, so a converter
failure keeps the text as plain paragraphs. Pure functions apart from :data:`DOC_CACHE`; no I/O.

Reading is memoised: a node reads back what it has just written (the echo baseline after applying a
replica) and rereads issues it already knows, so :func:`from_native` keeps a bounded LRU keyed by
(format, exact text) → neutral doc. :func:`to_native` primes it with the doc a text was rendered from,
but only for docs whose round trip is proven exact (:func:`primable`); any other text is cached on
its first parse. The cache holds the doc as JSON bytes and every hit decodes a fresh tree, so a
caller that mutates the doc it got can never change what another caller gets.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from node.richtext.adf import from_adf, to_adf_canonical
from node.richtext.normalize import canonical
from node.richtext.wiki import from_wiki, to_wiki_canonical
from protocol.richtext import Doc, empty_doc, from_plain_text, validate_doc

log = logging.getLogger(__name__)

TextFormat = Literal["adf", "wiki"]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    primed: int = 0
    entries: int = 0
    size: int = 0


class DocCache:
    """A bounded LRU of (format, text) → neutral doc, bounded by entry count and by total bytes (text
    plus the doc's JSON). Values are JSON bytes; :meth:`get` returns a new tree each time. Thread-safe
    (adapters may convert on executor threads)."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 8 << 20, max_item: int = 64 << 10) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item = max_item
        self._items: OrderedDict[tuple[str, str | bytes], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    def get(self, key: tuple[str, str | bytes]) -> Doc | None:
        with self._lock:
            blob = self._items.get(key)
            if blob is None:
                self.stats.misses += 1
                return None
            self._items.move_to_end(key)
            self.stats.hits += 1
        doc: Doc = orjson.loads(blob)
        return doc

    def put(self, key: tuple[str, str | bytes], doc: Doc, *, primed: bool = False) -> None:
        try:
            blob = orjson.dumps(doc)
        except (TypeError, orjson.JSONEncodeError):
            return
        cost = len(key[1]) + len(blob)
        if cost > self.max_item:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(key[1]) + len(old)
            self._items[key] = blob
            self._bytes += cost
            if primed:
                self.stats.primed += 1
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                (_, text), dropped = self._items.popitem(last=False)
                self._bytes -= len(text) + len(dropped)
            self.stats.entries = len(self._items)
            self.stats.size = self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._items)


DOC_CACHE = DocCache()


def to_native(doc: Doc | None, fmt: TextFormat) -> Any:
    """Neutral doc → ADF dict or wiki string. ``None`` stays ``None`` (clears the field).
    Primes :data:`DOC_CACHE` when reading the result back is proven to give ``doc`` again."""
    if doc is None:
        return None
    # The renderers normalise first; reading their output back gives that canonical form (for the
    # shapes :func:`primable` accepts), so the canonical form is what the memo keeps.
    if fmt == "adf":
        adf, canon = to_adf_canonical(doc)
        if _primable_shape(canon, "adf"):
            key = _adf_key(adf)
            if key is not None:
                DOC_CACHE.put(("adf", key), canon, primed=True)
        return adf
    text, canon = to_wiki_canonical(doc)
    if text and _primable_shape(canon, "wiki"):
        DOC_CACHE.put(("wiki", text), canon, primed=True)
    return text


def from_native(value: Any) -> Doc | None:
    """ADF dict or wiki string → neutral doc (the shape tells which). Never raises on odd input.
    Each call returns a doc of its own (never one another caller holds)."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value:
            return empty_doc()
        wiki_key = ("wiki", value)
        doc = DOC_CACHE.get(wiki_key)
        if doc is None:
            doc, ok = _safe(from_wiki, value, value)
            if ok:
                DOC_CACHE.put(wiki_key, doc)
        return doc
    if isinstance(value, dict) and value.get("type") == "doc":
        key = _adf_key(value)
        if key is not None:
            cached = DOC_CACHE.get(("adf", key))
            if cached is not None:
                return cached
        doc, ok = _safe(from_adf, value, None)
        if ok and key is not None:
            DOC_CACHE.put(("adf", key), doc)
        return doc
    return from_plain_text(str(value))


def is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and "version" in value


# Blocks and inlines whose wiki and ADF renderings read back exactly once the doc is canonical
# (tests/richtext/test_roundtrip.py and tests/jira_adapter/test_doc_cache.py check this property).
# Code blocks, lists, quotes, panels, tables and mentions are left out: each format drops or reshapes some of
# their variants (nesting rules, item shapes, mention attributes), so their texts are cached on parse.
_PRIMABLE_BLOCKS = frozenset({"paragraph", "heading", "rule"})
_PRIMABLE_INLINES = frozenset({"text", "hard_break"})


def primable(doc: Doc, fmt: TextFormat) -> bool:
    """True when reading ``to_native(doc, fmt)`` back is proven to give ``doc``: a canonical doc (equal to
    its normalised form) made only of paragraphs, headings and rules, holding text and hard breaks
    (in ADF, code text carries no mark but link: ADF drops the others)."""
    if not _primable_shape(doc, fmt):
        return False
    try:
        return canonical(doc) == doc
    except Exception:  # an odd tree is simply not primed
        return False


def _primable_shape(doc: Doc, fmt: TextFormat) -> bool:
    content = doc.get("content")
    if not isinstance(content, list):
        return False
    for block in content:
        if not isinstance(block, dict):
            return False
        if block.get("type") not in _PRIMABLE_BLOCKS:
            return False
        for node in block.get("content") or ():
            if not isinstance(node, dict) or node.get("type") not in _PRIMABLE_INLINES:
                return False
            if fmt == "adf" and node.get("marks"):
                names = {m.get("type") for m in node["marks"] if isinstance(m, dict)}
                if "code" in names and names - {"code", "link"}:
                    return False
    return True


def _adf_key(adf: Any) -> bytes | None:
    try:
        return orjson.dumps(adf)
    except (TypeError, orjson.JSONEncodeError):
        return None


def _safe(convert: Callable[[Any], Doc], value: Any, fallback: str | None) -> tuple[Doc, bool]:
    """(doc, converted): a converter failure gives the plain text and ``False``."""
    try:
        return validate_doc(convert(value)), True
    except Exception as exc:  # a converter bug must not stop a sync
        log.warning("rich-text conversion failed (%s); keeping plain text", type(exc).__name__)
        return from_plain_text(fallback if fallback is not None else _texts(value)), False


def _texts(node: Any) -> str:
    """The ``text`` leaves of an ADF tree, one paragraph each (iterative: the tree may be deep)."""
    out: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if isinstance(current.get("text"), str):
                out.append(current["text"])
            kids = current.get("content")
            if isinstance(kids, list):
                stack.extend(reversed(kids))
    return "\n\n".join(out)
