"""Atlassian Document Format (Jira Cloud REST v3) <-> neutral doc.

ADF is JSON, so this maps node by node. Nodes with no neutral counterpart degrade to readable text or
links (``docs/rich-text.md`` lists each); nodes we do not know at all keep their text. ``to_adf`` only
emits structures the ADF schema allows (e.g. no table inside a blockquote); what does not fit is
flattened to paragraphs rather than sent for Jira to reject.

Pure functions; no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol.richtext import MAX_DEPTH, Doc, validate_doc

from .normalize import (
    Node,
    RichTextError,
    block_inlines,
    canonical,
    canonical_doc,
    mention,
    mention_label,
    normalize,
    paragraph,
    safe_href,
    text,
)

_PANEL_TYPES = {"info": "info", "note": "note", "warning": "warning", "success": "success", "error": "error"}
_ADF_MARKS = {"strong": "strong", "em": "em", "code": "code", "strike": "strike", "underline": "underline"}

# ---------------------------------------------------------------------------------------------------
# ADF -> neutral


def from_adf(adf: Any) -> Doc:
    """Read an ADF document (a dict, as Jira returns it). Raises RichTextError if it is not one."""
    if adf is None:
        return normalize({})
    if not isinstance(adf, dict):
        raise RichTextError(f"ADF: expected a JSON object, got {type(adf).__name__}")
    if adf.get("type") != "doc":
        raise RichTextError(f"ADF: expected a node of type 'doc', got {str(adf.get('type'))[:40]!r}")
    content = adf.get("content")
    blocks = _blocks(content if isinstance(content, list) else [], 1)
    return canonical_doc(blocks)


def _children(node: dict[str, Any]) -> list[Any]:
    content = node.get("content")
    return content if isinstance(content, list) else []


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _blocks(nodes: list[Any], depth: int) -> list[Node]:
    out: list[Node] = []
    pending_inline: list[Node] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if node.get("type") in _INLINE_KINDS:
            pending_inline.extend(_inline(node))
            continue
        if pending_inline:
            out.append(paragraph(pending_inline))
            pending_inline = []
        out.extend(_block(node, depth))
    if pending_inline:
        out.append(paragraph(pending_inline))
    return out


def _block(node: dict[str, Any], depth: int) -> list[Node]:
    kind = node.get("type")
    attrs = _attrs(node)
    if depth > MAX_DEPTH:
        return [paragraph([text(_plain(node))])]
    kids = _children(node)
    if kind == "paragraph":
        return [paragraph(_inlines(kids))]
    if kind == "heading":
        return [{"type": "heading", "attrs": {"level": attrs.get("level", 1)}, "content": _inlines(kids)}]
    if kind in ("bulletList", "orderedList"):
        items = [_list_item(k, depth + 1) for k in kids if isinstance(k, dict)]
        if kind == "bulletList":
            return [{"type": "bullet_list", "content": items}]
        return [{"type": "ordered_list", "attrs": {"start": attrs.get("order", 1)}, "content": items}]
    if kind in ("taskList", "decisionList"):
        items = []
        for k in kids:
            if not isinstance(k, dict):
                continue
            if k.get("type") in ("taskList", "decisionList"):  # nested task lists live beside items
                if items:
                    items[-1]["content"].extend(_block(k, depth + 2))
                continue
            box = {"DONE": "[x] ", "TODO": "[ ] ", "DECIDED": "\u2714 "}.get(str(_attrs(k).get("state")), "")
            inl = _inlines(_children(k))
            items.append({"type": "list_item", "content": [paragraph([text(box), *inl] if box else inl)]})
        return [{"type": "bullet_list", "content": items}]
    if kind == "listItem":
        return _blocks(kids, depth)
    if kind == "codeBlock":
        body = "".join(str(k.get("text", "")) for k in kids if isinstance(k, dict))
        lang = attrs.get("language")
        return [
            {
                "type": "code_block",
                "attrs": {"language": lang if isinstance(lang, str) else None},
                "content": [text(body)] if body else [],
            }
        ]
    if kind == "blockquote":
        return [{"type": "blockquote", "content": _blocks(kids, depth + 1)}]
    if kind == "panel":
        panel_kind = _PANEL_TYPES.get(str(attrs.get("panelType")), "info")
        return [{"type": "panel", "attrs": {"kind": panel_kind}, "content": _blocks(kids, depth + 1)}]
    if kind == "rule":
        return [{"type": "rule"}]
    if kind == "table":
        rows = []
        for row in kids:
            if not isinstance(row, dict) or row.get("type") != "tableRow":
                continue
            cells = []
            for cell in _children(row):
                if not isinstance(cell, dict) or cell.get("type") not in ("tableCell", "tableHeader"):
                    continue
                cells.append(
                    {
                        "type": "table_cell",
                        "attrs": {"header": cell.get("type") == "tableHeader"},
                        "content": _blocks(_children(cell), depth + 4),
                    }
                )
            rows.append({"type": "table_row", "content": cells})
        return [{"type": "table", "content": rows}]
    if kind in ("blockCard", "embedCard"):
        url = attrs.get("url")
        if isinstance(url, str) and url:
            return [paragraph([_link_text(url, url)])]
        return []
    if kind in ("mediaSingle", "mediaGroup"):
        return [paragraph([item for k in kids if isinstance(k, dict) for item in _inline(k)])]
    if kind in ("expand", "nestedExpand"):
        title = attrs.get("title")
        head = [paragraph([text(title, [{"type": "strong"}])])] if isinstance(title, str) and title else []
        return [{"type": "blockquote", "content": head + _blocks(kids, depth + 1)}]
    if kind == "extension" or kind == "placeholder":
        return []
    # layoutSection/layoutColumn/bodiedExtension and anything unknown: keep what it contains.
    if kids:
        return _blocks(kids, depth)
    value = node.get("text")
    return [paragraph([text(value)])] if isinstance(value, str) and value else []


def _list_item(node: dict[str, Any], depth: int) -> Node:
    if node.get("type") != "listItem":
        return {"type": "list_item", "content": _blocks([node], depth)}
    return {"type": "list_item", "content": _blocks(_children(node), depth)}


_INLINE_KINDS = frozenset(
    {
        "text",
        "hardBreak",
        "mention",
        "emoji",
        "date",
        "status",
        "inlineCard",
        "media",
        "mediaInline",
        "inlineExtension",
    }
)


def _inlines(nodes: list[Any]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, dict):
            out.extend(_inline(node))
    return out


def _inline(node: dict[str, Any]) -> list[Node]:
    kind = node.get("type")
    attrs = _attrs(node)
    if kind == "text":
        value = node.get("text")
        if not isinstance(value, str):
            return []
        return [text(value, _marks(node.get("marks")))]
    if kind == "hardBreak":
        return [{"type": "hard_break"}]
    if kind == "mention":
        label = attrs.get("text")
        name = label[1:] if isinstance(label, str) and label.startswith("@") else label
        ident = attrs.get("id")
        return [
            mention(
                account_id=ident if isinstance(ident, str) else None,
                display_name=name if isinstance(name, str) else None,
            )
        ]
    if kind == "emoji":
        value = attrs.get("text") or attrs.get("shortName")
        return [text(value)] if isinstance(value, str) and value else []
    if kind == "status":
        value = attrs.get("text")
        return [text(f"[{value}]")] if isinstance(value, str) and value else []
    if kind == "date":
        return [text(_date(attrs.get("timestamp")))]
    if kind == "inlineCard":
        url = attrs.get("url")
        return [_link_text(url, url)] if isinstance(url, str) and url else []
    if kind in ("media", "mediaInline"):
        if attrs.get("type") == "external" and isinstance(attrs.get("url"), str):
            src = str(attrs["url"])
            alt = attrs.get("alt")
            return [_link_text(alt if isinstance(alt, str) and alt else src, src)]
        name = attrs.get("alt") or attrs.get("id") or "file"
        return [text(f"[attachment: {name}]")]
    value = node.get("text")
    if isinstance(value, str) and value:
        return [text(value)]
    return _inlines(_children(node))


def _link_text(label: str, href: str) -> Node:
    if safe_href(href) is None:
        return text(label)
    return text(label, [{"type": "link", "attrs": {"href": href}}])


def _date(timestamp: Any) -> str:
    try:
        ms = int(timestamp)
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).date().isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return str(timestamp)


def _marks(marks: Any) -> list[Node]:
    out: list[Node] = []
    if not isinstance(marks, list):
        return out
    for m in marks:
        if not isinstance(m, dict):
            continue
        kind = m.get("type")
        attrs = _attrs(m)
        if kind in _ADF_MARKS:
            out.append({"type": _ADF_MARKS[str(kind)]})
        elif kind == "subsup" and attrs.get("type") in ("sub", "sup"):
            out.append({"type": attrs["type"]})
        elif kind == "link" and isinstance(attrs.get("href"), str):
            out.append({"type": "link", "attrs": {"href": attrs["href"]}})
    return out


def _plain(node: Any) -> str:
    """All text under ``node``, iteratively (used past the depth cap)."""
    parts: list[str] = []
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            value = current.get("text")
            if isinstance(value, str):
                parts.append(value)
            kids = current.get("content")
            if isinstance(kids, list):
                stack.extend(reversed(kids))
                if current.get("type") in ("paragraph", "heading", "listItem", "tableCell", "tableHeader"):
                    parts.append(" ")
    return " ".join("".join(parts).split())


# ---------------------------------------------------------------------------------------------------
# neutral -> ADF

# What the ADF schema lets each container hold (anything else is flattened to paragraphs).
_LIST_ITEM_OK = frozenset({"paragraph", "code_block", "bullet_list", "ordered_list"})
_QUOTE_OK = frozenset({"paragraph", "code_block", "bullet_list", "ordered_list"})
_PANEL_OK = frozenset({"paragraph", "heading", "code_block", "bullet_list", "ordered_list", "rule"})
_CELL_OK = frozenset(
    {"paragraph", "heading", "code_block", "bullet_list", "ordered_list", "rule", "blockquote", "panel"}
)


def to_adf(doc: Doc) -> dict[str, Any]:
    """An ADF ``doc`` (version 1) for Jira Cloud REST v3."""
    return to_adf_canonical(doc)[0]


def to_adf_canonical(doc: Doc) -> tuple[dict[str, Any], Doc]:
    """(ADF, the canonical form of ``doc`` it renders): callers that memoise reads get the normalised
    doc without normalising twice. A doc already canonical is not normalised again, and is itself
    the canonical form returned."""
    validate_doc(doc)
    canon = canonical(doc)
    return {"type": "doc", "version": 1, "content": [_to_block(b) for b in canon["content"]]}, canon


def _fit(blocks: list[Node], allowed: frozenset[str]) -> list[Node]:
    out: list[Node] = []
    for block in blocks:
        if block["type"] in allowed:
            out.append(block)
        else:
            inl = block_inlines(block)
            if inl:
                out.append(paragraph(inl))
    return out


def _to_blocks(blocks: list[Node], allowed: frozenset[str], need_first_paragraph: bool = False) -> list[Any]:
    fitted = _fit(blocks, allowed)
    if not fitted or (need_first_paragraph and fitted[0]["type"] not in ("paragraph", "code_block")):
        fitted = [paragraph([]), *fitted]
    return [_to_block(b) for b in fitted]


def _to_block(block: Node) -> dict[str, Any]:
    kind = block["type"]
    kids = block.get("content") or []
    attrs = block.get("attrs") or {}
    if kind == "paragraph":
        return {"type": "paragraph", "content": _to_inlines(kids)}
    if kind == "heading":
        return {"type": "heading", "attrs": {"level": attrs["level"]}, "content": _to_inlines(kids)}
    if kind == "bullet_list":
        return {"type": "bulletList", "content": [_to_item(i) for i in kids]}
    if kind == "ordered_list":
        return {
            "type": "orderedList",
            "attrs": {"order": attrs["start"]},
            "content": [_to_item(i) for i in kids],
        }
    if kind == "code_block":
        node: dict[str, Any] = {
            "type": "codeBlock",
            "content": [{"type": "text", "text": k["text"]} for k in kids],
        }
        if attrs.get("language"):
            node["attrs"] = {"language": attrs["language"]}
        return node
    if kind == "blockquote":
        return {"type": "blockquote", "content": _to_blocks(kids, _QUOTE_OK)}
    if kind == "panel":
        return {
            "type": "panel",
            "attrs": {"panelType": attrs["kind"]},
            "content": _to_blocks(kids, _PANEL_OK),
        }
    if kind == "rule":
        return {"type": "rule"}
    if kind == "table":
        rows = kids
        return {
            "type": "table",
            "attrs": {"isNumberColumnEnabled": False, "layout": "default"},
            "content": [
                {
                    "type": "tableRow",
                    "content": [
                        {
                            "type": "tableHeader" if (c.get("attrs") or {}).get("header") else "tableCell",
                            "attrs": {},
                            "content": _to_blocks(c.get("content") or [], _CELL_OK),
                        }
                        for c in row["content"]
                    ],
                }
                for row in rows
            ],
        }
    # normalize() leaves no other block kinds
    return {"type": "paragraph", "content": _to_inlines(block_inlines(block))}


def _to_item(item: Node) -> dict[str, Any]:
    return {"type": "listItem", "content": _to_blocks(item.get("content") or [], _LIST_ITEM_OK, True)}


def _to_inlines(nodes: list[Node]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for node in nodes:
        kind = node["type"]
        if kind == "hard_break":
            out.append({"type": "hardBreak"})
        elif kind == "mention":
            attrs = node["attrs"]
            label = attrs.get("display_name") or attrs.get("username") or attrs.get("email")
            if attrs.get("account_id"):
                mention_attrs = {"id": attrs["account_id"]}
                if label:
                    mention_attrs["text"] = "@" + label
                out.append({"type": "mention", "attrs": mention_attrs})
            else:
                out.append({"type": "text", "text": "@" + mention_label(node)})
        else:
            adf: dict[str, Any] = {"type": "text", "text": node["text"]}
            marks = _to_marks(node.get("marks") or [])
            if marks:
                adf["marks"] = marks
            out.append(adf)
    return out


def _to_marks(marks: list[Node]) -> list[dict[str, Any]]:
    names = {m["type"] for m in marks}
    out: list[dict[str, Any]] = []
    for m in marks:
        kind = m["type"]
        if "code" in names and kind not in ("code", "link"):
            continue  # ADF allows only link beside code
        if kind == "link":
            out.append({"type": "link", "attrs": {"href": m["attrs"]["href"]}})
        elif kind in ("sub", "sup"):
            out.append({"type": "subsup", "attrs": {"type": kind}})
        else:
            out.append({"type": kind})
    return out


__all__ = ["from_adf", "to_adf", "to_adf_canonical"]
