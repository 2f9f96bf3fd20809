"""The canonical form of a neutral doc, and small helpers every converter shares.

Two docs that render the same should compare equal, so that "did the description change?" is a
dict comparison and ``from_X(to_X(doc)) == doc`` can hold. :func:`normalize` produces that form:

* text: ``\\r\\n``/``\\r`` become ``\\n``; a newline outside code becomes a ``hard_break``; control
  characters other than tab are dropped; empty text nodes are dropped; adjacent text nodes with the
  same marks are merged.
* marks: deduplicated and sorted in :data:`MARK_ORDER` (outermost first); ``link`` attrs keep only
  ``href``; ``sub`` and ``sup`` together keep ``sub``; an unsafe link (``javascript:`` and the like)
  is dropped, keeping its text.
* whitespace: leading/trailing whitespace and hard breaks at the edges of a paragraph, heading or
  line are dropped (no markup language can carry them); whitespace at the edges of a formatted run
  moves outside the run (``**a **`` is not emphasis in Markdown nor in wiki), except in code spans.
* blocks: empty paragraphs and headings, empty lists, tables and rows are dropped; tables are made
  rectangular; attributes get their defaults (heading level clamped to 1..6, ordered list start to
  1..999999999, cell ``header`` False, code ``language`` None when blank, every mention key present).
* depth: a container that would nest deeper than the format allows (:data:`CONTAINER_DEPTH`) is
  flattened into its parent, so the result always passes :func:`protocol.richtext.validate_doc`.

Pure functions only; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from protocol.richtext import DOC_VERSION, MAX_DEPTH, MENTION_KEYS, PANEL_KINDS, Doc

Node = dict[str, Any]

MARK_ORDER: tuple[str, ...] = ("link", "strong", "em", "underline", "strike", "sub", "sup", "code")
_MARK_RANK = {name: i for i, name in enumerate(MARK_ORDER)}

# A container (list, quote, panel, table) opened at depth d needs room for table/row/cell/paragraph/
# text below it: d + 5 <= MAX_DEPTH.
CONTAINER_DEPTH = MAX_DEPTH - 5
MAX_LIST_START = 999_999_999

_CONTAINERS = frozenset({"bullet_list", "ordered_list", "blockquote", "panel", "table"})
_INLINE_BLOCKS = frozenset({"paragraph", "heading"})
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNSAFE_SCHEME = re.compile(r"^\s*(javascript|vbscript|data|file)\s*:", re.IGNORECASE)
_SCHEME_WS = re.compile(r"[\x00-\x20]")
_NOT_PLAIN = re.compile(r"[\x00-\x1f\x7f]")  # controls, and the newlines that become breaks


class RichTextError(ValueError):
    """Input that cannot be read as rich text at all (e.g. ADF that is not a JSON object)."""


# ---------------------------------------------------------------------------------------------------
# Builders (used by the parsers; they produce nodes already in canonical shape)


def text(value: str, marks: Iterable[Node] = ()) -> Node:
    node: Node = {"type": "text", "text": value}
    ms = sort_marks(marks) if marks else ()
    if ms:
        node["marks"] = ms
    return node


def mark(kind: str, href: str | None = None) -> Node:
    if kind == "link":
        return {"type": "link", "attrs": {"href": href or ""}}
    return {"type": kind}


def mention(
    account_id: str | None = None,
    username: str | None = None,
    email: str | None = None,
    display_name: str | None = None,
) -> Node:
    values = {"account_id": account_id, "username": username, "email": email, "display_name": display_name}
    return {"type": "mention", "attrs": {k: (values[k] or None) for k in MENTION_KEYS}}


def paragraph(content: list[Node]) -> Node:
    return {"type": "paragraph", "content": content}


def safe_href(href: str) -> str | None:
    """The href if following it cannot run code in a browser, else None."""
    cleaned = _SCHEME_WS.sub("", href)
    if _UNSAFE_SCHEME.match(cleaned):
        return None
    return href


def sort_marks(marks: Iterable[Node]) -> list[Node]:
    seen: dict[str, Node] = {}
    for m in marks:
        kind = m.get("type")
        if kind not in _MARK_RANK or kind in seen:
            continue
        if kind == "link":
            href = (m.get("attrs") or {}).get("href")
            if not isinstance(href, str) or safe_href(href) is None:
                continue
            seen[kind] = {"type": "link", "attrs": {"href": href}}
        else:
            seen[str(kind)] = {"type": kind}
    if "sub" in seen and "sup" in seen:
        del seen["sup"]
    return [seen[k] for k in sorted(seen, key=_MARK_RANK.__getitem__)]


def mark_key(node: Node) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a text node's marks (for merging and run detection)."""
    return tuple(
        (m["type"], (m.get("attrs") or {}).get("href", "") if m["type"] == "link" else "")
        for m in node.get("marks") or ()
    )


def mark_names(node: Node) -> set[str]:
    return {m["type"] for m in node.get("marks") or ()}


# ---------------------------------------------------------------------------------------------------
# normalize


def normalize(doc: Doc) -> Doc:
    """The canonical form of ``doc`` (a new tree; the input is not modified)."""
    content = doc.get("content") if isinstance(doc, dict) else None
    return {
        "type": "doc",
        "version": DOC_VERSION,
        "content": normalize_blocks(content if isinstance(content, list) else [], 0),
    }


def canonical(doc: Doc) -> Doc:
    """The canonical form of ``doc``: ``doc`` itself when it is canonical already (checked cheaply,
    :func:`is_canonical`), else :func:`normalize`'s new tree. The result may BE the input, so it is
    for reading only: never mutate it (copy first)."""
    return doc if is_canonical(doc) else normalize(doc)


def canonical_doc(blocks: list[Any]) -> Doc:
    """The canonical doc of the blocks a reader has just built (a fresh tree, shared with no one):
    those blocks as they are when they are canonical already, else normalised."""
    return canonical({"type": "doc", "version": DOC_VERSION, "content": blocks})


def is_canonical(doc: Any) -> bool:
    """True only if ``normalize(doc) == doc``, checked without building a tree: for the common
    shapes (paragraphs and headings of text and hard breaks, rules); any other shape answers False
    and the caller normalises (``tests/richtext/test_fast_paths.py`` holds the two together)."""
    if type(doc) is not dict or len(doc) != 3 or doc.get("type") != "doc":
        return False
    version, content = doc.get("version"), doc.get("content")
    if type(version) is not int or version != DOC_VERSION or type(content) is not list:
        return False
    for block in content:
        if type(block) is not dict:
            return False
        kind = block.get("type")
        if kind == "paragraph":
            if len(block) != 2 or not _canonical_inlines(block.get("content")):
                return False
        elif kind == "heading":
            attrs = block.get("attrs")
            if len(block) != 3 or type(attrs) is not dict or len(attrs) != 1:
                return False
            level = attrs.get("level")
            if type(level) is not int or not 1 <= level <= 6 or not _canonical_inlines(block.get("content")):
                return False
        elif kind != "rule" or len(block) != 1:
            return False
    return True


def _canonical_marks(marks: Any) -> tuple[tuple[str, str], ...] | None:
    """The mark key of a canonical, non-empty mark list (sorted, unique, link attrs only a safe
    href, not both sub and sup); None when ``sort_marks`` would change it."""
    if type(marks) is not list or not marks:
        return None
    key: list[tuple[str, str]] = []
    last = -1
    for m in marks:
        if type(m) is not dict:
            return None
        kind = m.get("type")
        if type(kind) is not str:
            return None
        rank = _MARK_RANK.get(kind)
        if rank is None or rank <= last:
            return None
        last = rank
        if kind == "link":
            attrs = m.get("attrs")
            if len(m) != 2 or type(attrs) is not dict or len(attrs) != 1:
                return None
            href = attrs.get("href")
            if type(href) is not str or safe_href(href) is None:
                return None
            key.append((kind, href))
        elif len(m) != 1:
            return None
        else:
            key.append((kind, ""))
    if last == _MARK_RANK["sup"] and len(key) > 1 and key[-2][0] == "sub":
        return None
    return tuple(key)


def _canonical_inlines(nodes: Any) -> bool:
    """Is this paragraph/heading content what ``normalize_inlines`` returns for it? (Text and hard
    breaks only: no controls or newlines, no empty text, no whitespace at a line's edges or at a
    formatted run's edges, no two neighbours that would merge.)"""
    if type(nodes) is not list or not nodes:
        return False
    last = len(nodes) - 1
    previous: tuple[tuple[str, str], ...] | None = None  # mark key of the text before, None after a break
    for i, node in enumerate(nodes):
        if type(node) is not dict:
            return False
        kind = node.get("type")
        if kind == "hard_break":
            if len(node) != 1 or i == 0 or i == last:
                return False
            previous = None
            continue
        value = node.get("text")
        if kind != "text" or type(value) is not str or not value or _NOT_PLAIN.search(value):
            return False
        if "marks" in node:
            if len(node) != 3:
                return False
            key = _canonical_marks(node["marks"])
            if key is None:
                return False
        elif len(node) != 2:
            return False
        else:
            key = ()
        if key == previous:
            return False
        previous = key
        names = {k for k, _ in key}
        if "code" in names:
            continue
        edge_run = bool(names) and not names <= {"link"}  # whitespace moves out of a formatted run
        if value[0].isspace() and (edge_run or i == 0 or _is_break(nodes[i - 1])):
            return False
        if value[-1].isspace() and (edge_run or i == last or _is_break(nodes[i + 1])):
            return False
    return True


def _is_break(node: Any) -> bool:
    return type(node) is dict and node.get("type") == "hard_break"


def normalize_blocks(blocks: list[Any], depth: int) -> list[Node]:
    """Canonical blocks for a container whose own depth is ``depth`` (the doc is 0)."""
    out: list[Node] = []
    for block in blocks:
        if isinstance(block, dict):
            out.extend(_block(block, depth))
    return out


def _block(node: Node, depth: int) -> Iterator[Node]:
    kind = node.get("type")
    attrs = _attrs_of(node)
    content = _content_of(node)
    if kind in _CONTAINERS and depth >= CONTAINER_DEPTH:
        yield from _flatten(node, depth)
        return
    if kind == "paragraph":
        inl = normalize_inlines(content)
        if inl:
            yield {"type": "paragraph", "content": inl}
    elif kind == "heading":
        level = attrs.get("level")
        level = min(6, max(1, level)) if isinstance(level, int) and not isinstance(level, bool) else 1
        inl = normalize_inlines(content)
        if inl:
            yield {"type": "heading", "attrs": {"level": level}, "content": inl}
    elif kind in ("bullet_list", "ordered_list"):
        items = [_list_item(item, depth + 2) for item in content if isinstance(item, dict)]
        if not items:
            return
        if kind == "bullet_list":
            yield {"type": "bullet_list", "content": items}
        else:
            start = attrs.get("start")
            start = start if isinstance(start, int) and not isinstance(start, bool) else 1
            start = min(MAX_LIST_START, max(1, start))
            yield {"type": "ordered_list", "attrs": {"start": start}, "content": items}
    elif kind == "list_item":  # stray item outside a list: keep its blocks
        yield from normalize_blocks(content, depth)
    elif kind == "code_block":
        body = "".join(
            str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") == "text"
        )
        body = _CONTROL.sub("", body.replace("\r\n", "\n").replace("\r", "\n"))
        lang = attrs.get("language")
        lang = lang.strip() if isinstance(lang, str) and lang.strip() else None
        yield {
            "type": "code_block",
            "attrs": {"language": lang},
            "content": [{"type": "text", "text": body}] if body else [],
        }
    elif kind == "blockquote":
        yield {"type": "blockquote", "content": normalize_blocks(content, depth + 1)}
    elif kind == "panel":
        panel_kind = attrs.get("kind") if attrs.get("kind") in PANEL_KINDS else "info"
        yield {
            "type": "panel",
            "attrs": {"kind": panel_kind},
            "content": normalize_blocks(content, depth + 1),
        }
    elif kind == "rule":
        yield {"type": "rule"}
    elif kind == "table":
        rows: list[list[Node]] = []
        for row in content:
            if not isinstance(row, dict) or row.get("type") != "table_row":
                continue
            cells = [
                _cell(cell, depth + 3)
                for cell in _content_of(row)
                if isinstance(cell, dict) and cell.get("type") == "table_cell"
            ]
            if cells:
                rows.append(cells)
        if not rows:
            return
        width = max(len(r) for r in rows)
        for r in rows:
            r.extend(_cell({}, depth + 3) for _ in range(width - len(r)))
        yield {"type": "table", "content": [{"type": "table_row", "content": r} for r in rows]}
    elif kind in ("text", "mention", "hard_break"):  # stray inline at block level
        inl = normalize_inlines([node])
        if inl:
            yield {"type": "paragraph", "content": inl}
    elif kind in ("table_row", "table_cell"):
        yield from _flatten(node, depth)


def _attrs_of(node: Node) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _content_of(node: Node) -> list[Any]:
    return _list_of(node.get("content"))


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _list_item(node: Node, depth: int) -> Node:
    content = _content_of(node)
    if node.get("type") != "list_item":
        content = [node]
    return {"type": "list_item", "content": normalize_blocks(content, depth)}


def _cell(node: Node, depth: int) -> Node:
    attrs = _attrs_of(node)
    content = _content_of(node)
    return {
        "type": "table_cell",
        "attrs": {"header": attrs.get("header") is True},
        "content": normalize_blocks(content, depth),
    }


def _flatten(node: Node, depth: int) -> Iterator[Node]:
    """The leaf blocks (paragraphs, headings, code, rules) under ``node``, without its containers.

    Iterative, so a hostile tree nested thousands deep cannot exhaust the Python stack.
    """
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, dict):
            continue
        kind = current.get("type")
        if kind in ("paragraph", "heading", "code_block", "rule", "text", "mention", "hard_break"):
            yield from _block(current, depth)
            continue
        children = current.get("content")
        if isinstance(children, list):
            stack.extend(reversed(children))


def normalize_inlines(nodes: list[Any]) -> list[Node]:
    """Canonical inline content of one paragraph/heading (see the module docstring)."""
    plain = _plain_run(nodes)
    if plain is not None:
        return plain
    return _normalize_inlines(nodes)


def canonical_inlines(nodes: list[Any]) -> list[Node]:
    """:func:`normalize_inlines` for a parser's fresh output: ``nodes`` itself when it is canonical
    already (checked cheaply), else the normalised copy. For reading or owning only: the result may
    BE the input."""
    return nodes if _canonical_inlines(nodes) else normalize_inlines(nodes)


def _plain_run(nodes: list[Any]) -> list[Node] | None:
    """The common case, fast: text nodes without marks, controls or line breaks, whose joined text
    has no edge whitespace, normalise to one text node. None when the general rules are needed."""
    parts: list[str] = []
    for node in nodes:
        if not isinstance(node, dict) or node.get("type") != "text" or node.get("marks"):
            return None
        value = node.get("text")
        if not isinstance(value, str):
            return None
        parts.append(value)
    joined = "".join(parts)
    if not joined or joined[0].isspace() or joined[-1].isspace() or _NOT_PLAIN.search(joined):
        return None
    return [{"type": "text", "text": joined}]


def _normalize_inlines(nodes: list[Any]) -> list[Node]:
    flat: list[Node] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "text":
            value = node.get("text")
            if not isinstance(value, str) or not value:
                continue
            value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
            marks = _list_of(node.get("marks"))
            ms = sort_marks(m for m in marks if isinstance(m, dict))
            for i, line in enumerate(value.split("\n")):
                if i:
                    flat.append({"type": "hard_break"})
                if line:
                    flat.append(_text(line, ms))
        elif kind == "mention":
            attrs = _attrs_of(node)
            clean = {
                k: attrs.get(k) if isinstance(attrs.get(k), str) and attrs.get(k) else None
                for k in MENTION_KEYS
            }
            if any(clean.values()):
                flat.append({"type": "mention", "attrs": clean})
        elif kind == "hard_break":
            flat.append({"type": "hard_break"})
    split: list[Node] = []
    for node in _merge(flat):
        if node["type"] == "text" and node.get("marks"):
            split.extend(_split_edge_space(node["text"], node["marks"], mark_names(node)))
        else:
            split.append(node)
    return _trim_lines(_merge(split))


def _split_edge_space(value: str, ms: list[Node], names: set[str]) -> list[Node]:
    if not ms or "code" in names or names <= {"link"}:
        return [_text(value, ms)]
    core = value.strip()
    if not core:
        kept = [m for m in ms if m["type"] == "link"]
        return [_text(value, kept)]
    lead = value[: len(value) - len(value.lstrip())]
    trail = value[len(value.rstrip()) :]
    kept = [m for m in ms if m["type"] == "link"]
    out: list[Node] = []
    if lead:
        out.append(_text(lead, kept))
    out.append(_text(core, ms))
    if trail:
        out.append(_text(trail, kept))
    return out


def _text(value: str, ms: list[Node]) -> Node:
    node: Node = {"type": "text", "text": value}
    if ms:
        node["marks"] = ms
    return node


def _merge(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    parts: list[str] = []
    proto: Node | None = None
    key: tuple[tuple[str, str], ...] = ()

    def flush() -> None:
        if proto is not None and parts:
            out.append({**proto, "text": "".join(parts)})

    for node in nodes:
        if node["type"] == "text":
            node_key = mark_key(node)
            if proto is not None and node_key == key:
                parts.append(node["text"])
                continue
            flush()
            proto, key, parts = node, node_key, [node["text"]]
        else:
            flush()
            proto, parts = None, []
            out.append(node)
    flush()
    return out


def _trim_lines(nodes: list[Node]) -> list[Node]:
    """Drop whitespace and breaks at paragraph edges and whitespace around hard breaks."""
    # Split into lines at hard breaks, strip each line's edge whitespace (outside code), rejoin.
    lines: list[list[Node]] = [[]]
    for node in nodes:
        if node["type"] == "hard_break":
            lines.append([])
        else:
            lines[-1].append(node)
    stripped = [_strip_line(line) for line in lines]
    while stripped and not stripped[0]:
        stripped.pop(0)
    while stripped and not stripped[-1]:
        stripped.pop()
    out: list[Node] = []
    for i, line in enumerate(stripped):
        if i:
            out.append({"type": "hard_break"})
        out.extend(line)
    return _merge(out)


def _strip_line(line: list[Node]) -> list[Node]:
    line = list(line)
    while line and _is_text(line[0]) and "code" not in mark_names(line[0]):
        value = line[0]["text"].lstrip()
        if value:
            line[0] = {**line[0], "text": value}
            break
        line.pop(0)
    while line and _is_text(line[-1]) and "code" not in mark_names(line[-1]):
        value = line[-1]["text"].rstrip()
        if value:
            line[-1] = {**line[-1], "text": value}
            break
        line.pop()
    return line


def _is_text(node: Node) -> bool:
    return bool(node["type"] == "text")


# ---------------------------------------------------------------------------------------------------
# Shared helpers for writers


def mention_label(node: Node) -> str:
    attrs = node.get("attrs") or {}
    return str(
        attrs.get("display_name")
        or attrs.get("username")
        or attrs.get("email")
        or attrs.get("account_id")
        or "user"
    )


def block_inlines(block: Node, depth: int = 0) -> list[Node]:
    """Any block as inline content (for places that hold only inline content, like a table cell).

    Paragraphs are joined by hard breaks; list items get a "- " prefix; code becomes code-marked text.
    """
    out: list[Node] = []

    def add_line(inl: list[Node]) -> None:
        if not inl:
            return
        if out:
            out.append({"type": "hard_break"})
        out.extend(inl)

    stack: list[tuple[Node, str]] = [(block, "")]
    while stack:
        node, prefix = stack.pop()
        kind = node.get("type")
        if kind in _INLINE_BLOCKS:
            content = list(node.get("content") or [])
            if prefix:
                content = [{"type": "text", "text": prefix}, *content]
            add_line(content)
        elif kind == "code_block":
            body = "".join(c.get("text", "") for c in node.get("content") or [])
            lines = [ln for ln in body.split("\n") if ln]
            for j, ln in enumerate(lines):
                pre = [{"type": "text", "text": prefix}] if prefix and j == 0 else []
                add_line([*pre, {"type": "text", "text": ln, "marks": [{"type": "code"}]}])
        elif kind == "rule":
            add_line([{"type": "text", "text": prefix + "----"}])
        elif kind in ("bullet_list", "ordered_list"):
            start = (node.get("attrs") or {}).get("start", 1) if kind == "ordered_list" else 1
            items = node.get("content") or []
            for i in range(len(items) - 1, -1, -1):
                marker = "- " if kind == "bullet_list" else f"{start + i}. "
                children = items[i].get("content") or []
                entries = [(c, marker if j == 0 else "") for j, c in enumerate(children)]
                if not children:
                    entries = [({"type": "paragraph", "content": []}, marker)]
                stack.extend(reversed(entries))
        else:
            children = node.get("content") or []
            stack.extend(reversed([(c, prefix if j == 0 else "") for j, c in enumerate(children)]))
    return normalize_inlines(out)
