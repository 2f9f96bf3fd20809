"""Jira's two rich-text formats ↔ the neutral doc, picked by shape: Atlassian Document Format (Cloud,
REST v3) and wiki markup (Server/DC REST v2, and every webhook body, Cloud included).

The converters are :mod:`node.richtext.adf` and :mod:`node.richtext.wiki`; this module chooses
between them and makes reading total: text Jira accepted must never stop a sync, so a converter
failure keeps the text as plain paragraphs. Pure functions; no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from node.richtext.adf import from_adf, to_adf
from node.richtext.wiki import from_wiki, to_wiki
from protocol.richtext import Doc, empty_doc, from_plain_text, validate_doc

log = logging.getLogger(__name__)

TextFormat = Literal["adf", "wiki"]


def to_native(doc: Doc | None, fmt: TextFormat) -> Any:
    """Neutral doc → ADF dict or wiki string. ``None`` stays ``None`` (clears the field)."""
    if doc is None:
        return None
    return to_adf(doc) if fmt == "adf" else to_wiki(doc)


def from_native(value: Any) -> Doc | None:
    """ADF dict or wiki string → neutral doc (the shape tells which). Never raises on odd input."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value:
            return empty_doc()
        return _safe(from_wiki, value, value)
    if isinstance(value, dict) and value.get("type") == "doc":
        return _safe(from_adf, value, _texts(value))
    return from_plain_text(str(value))


def is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and "version" in value


def _safe(convert: Callable[[Any], Doc], value: Any, fallback: str) -> Doc:
    try:
        return validate_doc(convert(value))
    except Exception as exc:  # a converter bug must not stop a sync
        log.warning("rich-text conversion failed (%s); keeping plain text", type(exc).__name__)
        return from_plain_text(fallback)


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
