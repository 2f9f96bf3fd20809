"""Rich-text at the emulator's edge: bodies are stored as neutral docs and rendered as wiki markup
(REST v2, webhooks), Atlassian Document Format (REST v3) or HTML (``renderedFields``) by
:mod:`node.richtext`. What this module adds is Jira's input rules: a v2 body must be a string, a v3
body an ADF document, and anything else is a :class:`TextError` the API answers with 400.
"""

from __future__ import annotations

from typing import Any

from node.richtext.adf import from_adf, to_adf
from node.richtext.html import to_html as _to_html
from node.richtext.wiki import from_wiki
from node.richtext.wiki import to_wiki as _to_wiki
from protocol.richtext import Doc


class TextError(ValueError):
    """A body that cannot be read (not a string in v2, not an ADF document in v3)."""


def to_wiki(doc: Doc | None) -> str | None:
    return None if doc is None else _to_wiki(doc)


def to_html(doc: Doc | None) -> str:
    return "" if doc is None else _to_html(doc)


def read_body(value: Any, *, api: int) -> Doc:
    """A description/comment body as a client sent it: wiki string on v2, ADF on v3."""
    if api >= 3:
        if not isinstance(value, dict) or value.get("type") != "doc":
            raise TextError(
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            )
        try:
            return from_adf(value)
        except Exception as err:  # a converter rejecting input is bad input, not a crash
            raise TextError(f"Invalid Atlassian Document: {err}") from err
    if not isinstance(value, str):
        raise TextError("Operation value must be a string")
    return from_wiki(value)


_WIKI_CACHE: dict[int, tuple[Doc, str]] = {}
_WIKI_CACHE_SIZE = 4096


def render_body(doc: Doc | None, *, api: int) -> Any:
    if doc is None:
        return None
    if api >= 3:
        return to_adf(doc)
    # Stored bodies are replaced, never changed in place, so a body renders the same every time it
    # is served (every comment of an issue in each read and webhook): render it once. The entry
    # keeps the doc itself, so a reused id() of a collected doc is never mistaken for it.
    hit = _WIKI_CACHE.get(id(doc))
    if hit is not None and hit[0] is doc:
        return hit[1]
    text = _to_wiki(doc)
    if len(_WIKI_CACHE) >= _WIKI_CACHE_SIZE:
        _WIKI_CACHE.pop(next(iter(_WIKI_CACHE)))
    _WIKI_CACHE[id(doc)] = (doc, text)
    return text
