"""Rich-text conversion at the emulator's edge: bodies are stored as neutral docs and rendered as
wiki markup (REST v2, webhooks), Atlassian Document Format (REST v3) or HTML (``renderedFields``).

The converters live in :mod:`node.richtext`. Until that package is importable the emulator falls back
to plain text (paragraphs and hard breaks only), so it still works end to end with reduced fidelity;
:data:`FULL_FIDELITY` says which one is in use.
"""

from __future__ import annotations

import html
import importlib
from collections.abc import Callable
from typing import Any, cast

from protocol.richtext import Doc, from_plain_text, plain_text


def _load(module: str, name: str) -> Callable[..., Any] | None:
    try:
        return cast(Callable[..., Any], getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return None


_to_adf = _load("node.richtext.adf", "to_adf")
_from_adf = _load("node.richtext.adf", "from_adf")
_to_wiki = _load("node.richtext.wiki", "to_wiki")
_from_wiki = _load("node.richtext.wiki", "from_wiki")
_to_html = _load("node.richtext.html", "to_html")

FULL_FIDELITY = all(f is not None for f in (_to_adf, _from_adf, _to_wiki, _from_wiki, _to_html))


class TextError(ValueError):
    """A body that cannot be read (not a string in v2, not an ADF document in v3)."""


def from_wiki(text: str) -> Doc:
    if _from_wiki is not None:
        return cast(Doc, _from_wiki(text))
    return from_plain_text(text)


def to_wiki(doc: Doc | None) -> str | None:
    if doc is None:
        return None
    if _to_wiki is not None:
        return cast(str, _to_wiki(doc))
    return plain_text(doc)


def from_adf(value: Any) -> Doc:
    if not isinstance(value, dict) or value.get("type") != "doc":
        raise TextError("Operation value must be an Atlassian Document (see the Atlassian Document Format)")
    if _from_adf is not None:
        try:
            return cast(Doc, _from_adf(value))
        except Exception as err:  # a converter rejecting input is bad input, not a crash
            raise TextError(f"Invalid Atlassian Document: {err}") from err
    return from_plain_text(_adf_text(value).strip())


def to_adf(doc: Doc | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    if _to_adf is not None:
        return cast(dict[str, Any], _to_adf(doc))
    content = [
        {"type": "paragraph", "content": [{"type": "text", "text": para}]}
        for para in plain_text(doc).split("\n\n")
        if para
    ]
    return {"type": "doc", "version": 1, "content": content}


def to_html(doc: Doc | None) -> str:
    if doc is None:
        return ""
    if _to_html is not None:
        return cast(str, _to_html(doc))
    return "".join(f"<p>{html.escape(p)}</p>" for p in plain_text(doc).split("\n\n") if p)


def _adf_text(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    if node.get("type") == "hardBreak":
        return "\n"
    inner = "".join(_adf_text(c) for c in node.get("content") or [] if isinstance(c, dict))
    if node.get("type") in {"paragraph", "heading", "codeBlock"}:
        return inner + "\n\n"
    return inner


def read_body(value: Any, *, api: int) -> Doc:
    """A description/comment body as a client sent it: wiki string on v2, ADF on v3."""
    if api >= 3:
        return from_adf(value)
    if not isinstance(value, str):
        raise TextError("Operation value must be a string")
    return from_wiki(value)


def render_body(doc: Doc | None, *, api: int) -> Any:
    return to_adf(doc) if api >= 3 else to_wiki(doc)
