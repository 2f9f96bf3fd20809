"""The neutral rich-text format carried in replicas ("Tandem doc", version 1).

Every tracker speaks its own markup (Atlassian Document Format, Jira wiki markup, GitHub Markdown,
HTML). Replicas carry one neutral tree instead, so each node converts only between its own tracker's
format and this one. The tree is plain JSON (dicts, lists, strings) so it travels unchanged and rule
scripts can read it; :func:`validate_doc` checks a tree received from outside.

Shape (names are deliberately not ADF's, to keep the format tracker-neutral)::

    {"type": "doc", "version": 1, "content": [<block>...]}

Blocks:
    paragraph      content: inline*
    heading        attrs: {level: 1..6}; content: inline*
    bullet_list    content: list_item+
    ordered_list   attrs: {start: int >= 1}; content: list_item+
    list_item      content: block+        (nested lists live here)
    code_block     attrs: {language: str | None}; content: text* (no marks)
    blockquote     content: block+
    panel          attrs: {kind: info|note|warning|success|error}; content: block+
    rule           (no content)
    table          content: table_row+
    table_row      content: table_cell+
    table_cell     attrs: {header: bool}; content: block+

Inlines:
    text           text: str (non-empty); marks: [mark...] (optional)
    mention        attrs: {account_id, username, email, display_name} (any may be None)
    hard_break     (no content)

Marks: strong, em, code, strike, underline, sub, sup, link (attrs: {href: str}).

This module is pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import InvalidMessage

DOC_VERSION = 1

Doc = dict[str, Any]

BLOCK_TYPES = frozenset(
    {
        "paragraph",
        "heading",
        "bullet_list",
        "ordered_list",
        "list_item",
        "code_block",
        "blockquote",
        "panel",
        "rule",
        "table",
        "table_row",
        "table_cell",
    }
)
INLINE_TYPES = frozenset({"text", "mention", "hard_break"})
MARK_TYPES = frozenset({"strong", "em", "code", "strike", "underline", "sub", "sup", "link"})
PANEL_KINDS = frozenset({"info", "note", "warning", "success", "error"})
MENTION_KEYS = ("account_id", "username", "email", "display_name")

# Which children each container accepts ("block" = any block except list_item/table_row/table_cell).
_TOP_BLOCKS = BLOCK_TYPES - {"list_item", "table_row", "table_cell"}
_CHILDREN: dict[str, frozenset[str]] = {
    "doc": _TOP_BLOCKS,
    "paragraph": INLINE_TYPES,
    "heading": INLINE_TYPES,
    "bullet_list": frozenset({"list_item"}),
    "ordered_list": frozenset({"list_item"}),
    "list_item": _TOP_BLOCKS,
    "code_block": frozenset({"text"}),
    "blockquote": _TOP_BLOCKS,
    "panel": _TOP_BLOCKS,
    "rule": frozenset(),
    "table": frozenset({"table_row"}),
    "table_row": frozenset({"table_cell"}),
    "table_cell": _TOP_BLOCKS,
    "text": frozenset(),
    "mention": frozenset(),
    "hard_break": frozenset(),
}
MAX_DEPTH = 64


def empty_doc() -> Doc:
    return {"type": "doc", "version": DOC_VERSION, "content": []}


def from_plain_text(text: str) -> Doc:
    """One paragraph per blank-line-separated block; single newlines become hard breaks."""
    doc = empty_doc()
    for para in text.replace("\r\n", "\n").split("\n\n"):
        if not para.strip():
            continue
        inlines: list[dict[str, Any]] = []
        for i, line in enumerate(para.split("\n")):
            if i:
                inlines.append({"type": "hard_break"})
            if line:
                inlines.append({"type": "text", "text": line})
        doc["content"].append({"type": "paragraph", "content": inlines})
    return doc


def plain_text(doc: Doc | None) -> str:
    """A readable plain-text rendering (for logs, previews, JQL text search, scripts)."""
    if not doc:
        return ""
    out: list[str] = []
    _plain(doc, out)
    return "".join(out).strip()


def _plain(node: dict[str, Any], out: list[str]) -> None:
    kind = node.get("type")
    if kind == "text":
        out.append(str(node.get("text", "")))
        return
    if kind == "mention":
        attrs = node.get("attrs") or {}
        name = attrs.get("display_name") or attrs.get("username") or attrs.get("email") or "user"
        out.append("@" + str(name))
        return
    if kind == "hard_break":
        out.append("\n")
        return
    if kind == "rule":
        out.append("\n----\n")
        return
    children = node.get("content") or []
    if kind == "table_row":
        cells: list[str] = []
        for cell in children:
            buf: list[str] = []
            _plain(cell, buf)
            cells.append("".join(buf).strip())
        out.append(" | ".join(cells) + "\n")
        return
    if kind == "list_item":
        out.append("- ")
    for child in children:
        _plain(child, out)
    if kind in {"paragraph", "heading", "code_block", "list_item"}:
        out.append("\n")
    if kind in {"paragraph", "heading", "code_block"}:
        out.append("\n")


def validate_doc(value: Any) -> Doc:
    """Check a tree received from outside; returns it unchanged or raises InvalidMessage."""
    if not isinstance(value, dict) or value.get("type") != "doc":
        raise InvalidMessage("rich text: expected an object with type 'doc'")
    version = value.get("version", DOC_VERSION)
    if not isinstance(version, int) or version < 1:
        raise InvalidMessage("rich text: version must be a positive integer")
    if not _valid(value, "doc", 0):
        _check(value, "doc", 0, "$")  # the same rules again, now naming where the tree breaks them
    return value


def _one_of(value: Any, names: frozenset[str]) -> bool:
    return isinstance(value, str) and value in names  # (a list or dict from outside is unhashable)


def _attrs(node: dict[str, Any]) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _valid_marks(marks: Any) -> bool:
    if not isinstance(marks, list):
        return False
    for m in marks:
        if not isinstance(m, dict) or not _one_of(m.get("type"), MARK_TYPES):
            return False
        if m["type"] == "link" and not isinstance(_attrs(m).get("href"), str):
            return False
    return True


def _valid(node: dict[str, Any], kind: str, depth: int) -> bool:
    """:func:`_check` without building a path per node (every tree a node converts or receives goes
    through here): True when the tree is valid. Keep the two in step."""
    if depth > MAX_DEPTH:
        return False
    if kind == "text":
        if not isinstance(node.get("text"), str):
            return False
        if "marks" in node and not _valid_marks(node["marks"]):
            return False
    elif kind == "heading":
        level = _attrs(node).get("level")
        if not isinstance(level, int) or not 1 <= level <= 6:
            return False
    elif kind == "panel":
        if not _one_of(_attrs(node).get("kind"), PANEL_KINDS):
            return False
    elif kind == "mention":
        attrs = node.get("attrs")
        if not isinstance(attrs, dict):
            return False
        for key in MENTION_KEYS:
            if attrs.get(key) is not None and not isinstance(attrs[key], str):
                return False
    content = node.get("content")
    if content is None:
        return "content" not in node
    if not isinstance(content, list):
        return False
    allowed = _CHILDREN[kind]
    depth += 1
    for child in content:
        if not isinstance(child, dict):
            return False
        child_kind = child.get("type")
        if not isinstance(child_kind, str) or child_kind not in allowed:  # (unhashable from outside)
            return False
        if (
            child_kind == "text"
            and len(child) == 2
            and isinstance(child.get("text"), str)
            and depth <= MAX_DEPTH
        ):
            continue  # a plain text leaf: {"type": "text", "text": str}
        if not _valid(child, child_kind, depth):
            return False
    return True


def _check(node: Any, kind: str, depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise InvalidMessage(f"rich text: nested deeper than {MAX_DEPTH} at {path}")
    if kind == "text":
        text = node.get("text")
        if not isinstance(text, str):
            raise InvalidMessage(f"rich text: text node without a string 'text' at {path}")
        marks = node.get("marks", [])
        if not isinstance(marks, list):
            raise InvalidMessage(f"rich text: 'marks' must be a list at {path}")
        for m in marks:
            if not isinstance(m, dict) or not _one_of(m.get("type"), MARK_TYPES):
                raise InvalidMessage(f"rich text: unknown mark at {path}")
            if m["type"] == "link":
                href = _attrs(m).get("href")
                if not isinstance(href, str):
                    raise InvalidMessage(f"rich text: link mark without href at {path}")
    elif kind == "heading":
        level = _attrs(node).get("level")
        if not isinstance(level, int) or not 1 <= level <= 6:
            raise InvalidMessage(f"rich text: heading level must be 1..6 at {path}")
    elif kind == "panel":
        if not _one_of(_attrs(node).get("kind"), PANEL_KINDS):
            raise InvalidMessage(f"rich text: panel kind must be one of {sorted(PANEL_KINDS)} at {path}")
    elif kind == "mention":
        attrs = node.get("attrs")
        if not isinstance(attrs, dict):
            raise InvalidMessage(f"rich text: mention without attrs at {path}")
        for key in MENTION_KEYS:
            if attrs.get(key) is not None and not isinstance(attrs[key], str):
                raise InvalidMessage(f"rich text: mention {key} must be a string at {path}")
    content = node.get("content", [])
    if not isinstance(content, list):
        raise InvalidMessage(f"rich text: 'content' must be a list at {path}")
    allowed = _CHILDREN[kind]
    for i, child in enumerate(content):
        child_path = f"{path}.content[{i}]"
        if not isinstance(child, dict):
            raise InvalidMessage(f"rich text: node must be an object at {child_path}")
        child_kind = child.get("type")
        if not isinstance(child_kind, str) or child_kind not in allowed:  # (unhashable from outside)
            raise InvalidMessage(f"rich text: '{child_kind}' not allowed inside '{kind}' at {child_path}")
        _check(child, child_kind, depth + 1, child_path)
