"""Jira's two rich-text formats ↔ the neutral doc: Atlassian Document Format (Cloud, REST v3) and wiki
markup (Server/DC REST v2, and every webhook body, Cloud included).

The converters live in :mod:`node.richtext.adf` and :mod:`node.richtext.wiki`. If that package is not
importable (a partial install), this module degrades to plain text — paragraphs and line breaks
survive, formatting does not — and :data:`FULL_FIDELITY` is ``False`` so the node can say so.
Pure functions; no I/O.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, Literal, cast

from protocol.richtext import Doc, empty_doc, from_plain_text, plain_text, validate_doc

log = logging.getLogger(__name__)

TextFormat = Literal["adf", "wiki"]


def _load(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return cast(Callable[..., Any], getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return None


_to_adf = _load("node.richtext.adf", "to_adf")
_from_adf = _load("node.richtext.adf", "from_adf")
_to_wiki = _load("node.richtext.wiki", "to_wiki")
_from_wiki = _load("node.richtext.wiki", "from_wiki")

FULL_FIDELITY = None not in (_to_adf, _from_adf, _to_wiki, _from_wiki)
if not FULL_FIDELITY:  # pragma: no cover - depends on the install
    log.warning("node.richtext converters not importable: Jira text is converted as plain text")


def to_native(doc: Doc | None, fmt: TextFormat) -> Any:
    """Neutral doc → ADF dict or wiki string. ``None`` stays ``None`` (clears the field)."""
    if doc is None:
        return None
    if fmt == "adf":
        return _to_adf(doc) if _to_adf else _plain_to_adf(plain_text(doc))
    return _to_wiki(doc) if _to_wiki else plain_text(doc)


def from_native(value: Any) -> Doc | None:
    """ADF dict or wiki string → neutral doc (the shape tells which). Never raises on odd input:
    text Jira accepted must not stop a sync; unreadable parts become plain text."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value:
            return empty_doc()
        return _safe(_from_wiki, value, lambda: from_plain_text(value))
    if isinstance(value, dict) and value.get("type") == "doc":
        return _safe(_from_adf, value, lambda: from_plain_text(_adf_plain(value)))
    return from_plain_text(str(value))


def is_adf(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") == "doc" and "version" in value


def _safe(convert: Callable[..., Any] | None, value: Any, fallback: Callable[[], Doc]) -> Doc:
    if convert is None:
        return fallback()
    try:
        doc = convert(value)
        return validate_doc(doc)
    except Exception as exc:  # a converter bug must not lose the text
        log.warning("rich-text conversion failed (%s); keeping plain text", type(exc).__name__)
        return fallback()


def _plain_to_adf(text: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for para in text.split("\n\n"):
        if not para.strip():
            continue
        inlines: list[dict[str, Any]] = []
        for i, line in enumerate(para.split("\n")):
            if i:
                inlines.append({"type": "hardBreak"})
            if line:
                inlines.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": inlines})
    return {"type": "doc", "version": 1, "content": content}


def _adf_plain(node: Any) -> str:
    out: list[str] = []

    def walk(n: Any) -> None:
        if not isinstance(n, dict):
            return
        kind = n.get("type")
        if kind == "text":
            out.append(str(n.get("text", "")))
        elif kind == "hardBreak":
            out.append("\n")
        elif kind == "mention":
            out.append(str((n.get("attrs") or {}).get("text") or "@user"))
        for child in n.get("content") or []:
            walk(child)
        if kind in {"paragraph", "heading", "codeBlock", "listItem"}:
            out.append("\n\n")

    walk(node)
    return "".join(out).strip()
