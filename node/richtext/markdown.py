"""GitHub-flavoured Markdown <-> neutral doc (for the GitHub adapter).

Parsing uses ``markdown-it-py`` (CommonMark + GFM tables and strikethrough) and walks its flat token
stream with an explicit stack, so nesting depth never touches the Python stack. GitHub specifics:

* a newline inside a paragraph is a line break (GitHub renders issue text that way);
* ``@login`` is a mention (an inline rule, so ``\\@login`` stays text);
* ``> [!NOTE]`` / ``[!TIP]`` / ``[!IMPORTANT]`` / ``[!WARNING]`` / ``[!CAUTION]`` alerts are panels;
* raw HTML is never passed through: it becomes literal text, except the bare formatting tags GitHub
  users type where Markdown has no syntax (``<ins>``/``<u>``, ``<sub>``, ``<sup>``, ``<b>``, ``<i>``,
  ``<em>``, ``<strong>``, ``<s>``/``<del>``, ``<code>``, ``<kbd>``, ``<br>``), which become marks when
  they pair up.

``to_markdown`` escapes every character that markdown-it would read as markup in its position, so
``from_markdown(to_markdown(doc)) == normalize(doc)`` for what Markdown can express. Pure; no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from types import SimpleNamespace
from typing import Any

from markdown_it import MarkdownIt
from markdown_it import helpers as md_helpers
from markdown_it.common.utils import isMdAsciiPunct, isPunctChar, isWhiteSpace
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from protocol.richtext import Doc, validate_doc

from .normalize import (
    CONTAINER_DEPTH,
    Node,
    block_inlines,
    canonical,
    canonical_doc,
    mention,
    normalize,
    normalize_inlines,
    paragraph,
    safe_href,
    text,
)

_MAX_NESTING = 140  # > 2 * CONTAINER_DEPTH (a list level is 2), < what the Python stack takes
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?![A-Za-z0-9_-])")
_ALERT = re.compile(r"\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\][ \t]*(?:\n|$)", re.IGNORECASE)
_ALERT_KIND = {
    "NOTE": "info",
    "TIP": "success",
    "IMPORTANT": "note",
    "WARNING": "warning",
    "CAUTION": "error",
}
_KIND_ALERT = {v: k for k, v in _ALERT_KIND.items()}
_CONTAINER_MARKS = re.compile(r"^(?:\s*(?:>|(?:[-+*]|\d{1,9}[.)])(?=\s|$)))*\s*")
_HTML_TAG = re.compile(r"<(/?)([a-zA-Z]+)\s*(/?)>")
_TAG_MARK = {
    "b": "strong",
    "strong": "strong",
    "i": "em",
    "em": "em",
    "s": "strike",
    "del": "strike",
    "strike": "strike",
    "u": "underline",
    "ins": "underline",
    "sub": "sub",
    "sup": "sup",
    "code": "code",
    "kbd": "code",
}


def _mention_rule(state: StateInline, silent: bool) -> bool:
    pos = state.pos
    src = state.src
    if src[pos] != "@":
        return False
    if pos > 0 and (src[pos - 1].isalnum() or src[pos - 1] in "_/@"):
        return False
    m = _LOGIN.match(src, pos + 1)
    if m is None:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.meta = {"login": m.group(0)}
    state.pos = m.end()
    return True


def _identity(url: str) -> str:
    return url


def _accept(url: str) -> bool:
    return True  # links are checked with safe_href when the tree is built


_MAX_LABEL = 1000
_CLOSE_BRACKET = re.compile(r"\\.|\]", re.DOTALL)


def _close_positions(src: str) -> list[int]:
    """Positions of every unescaped ``]``, in one linear pass."""
    return [m.start() for m in _CLOSE_BRACKET.finditer(src) if m.group(0) == "]"]


def _parse_link_label(state: StateInline, start: int, disable_nested: bool = False) -> int:
    """markdown-it's parseLinkLabel rescans to the end for every ``[`` (quadratic on ``[[[[...``);
    skip the scan when no ``]`` follows within _MAX_LABEL characters (then it cannot be a link)."""
    cache = state.env.setdefault("_tandem_brackets", {})
    closes = cache.get(state.src)
    if closes is None:
        closes = cache[state.src] = _close_positions(state.src)
    k = bisect_right(closes, start)
    if k == len(closes) or closes[k] - start > _MAX_LABEL:
        return -1
    return int(md_helpers.parseLinkLabel(state, start, disable_nested))


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "maxNesting": _MAX_NESTING, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _accept  # type: ignore[method-assign]
    md.normalizeLink = _identity  # type: ignore[method-assign]
    md.normalizeLinkText = _identity  # type: ignore[method-assign,assignment]
    md.inline.ruler.push("mention", _mention_rule)
    md.helpers = SimpleNamespace(  # type: ignore[assignment]
        parseLinkLabel=_parse_link_label,
        parseLinkDestination=md_helpers.parseLinkDestination,
        parseLinkTitle=md_helpers.parseLinkTitle,
    )
    return md


_MD = _parser()

# ---------------------------------------------------------------------------------------------------
# Markdown -> neutral


def from_markdown(source: str | None) -> Doc:
    """Read GitHub-flavoured Markdown. Never raises on any string."""
    if not source:
        return normalize({})
    src = source.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    tokens = _MD.parse(src, {})
    blocks = _Builder(src.split("\n")).build(tokens)
    return canonical_doc(blocks)


class _Builder:
    """Turns markdown-it's flat token stream into neutral blocks, without recursion."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.root: Node = {"type": "doc", "content": []}
        # (node or None when flattened for depth, depth of the nearest real container)
        self.stack: list[Node | None] = [self.root]
        self.real: list[Node] = [self.root]
        self.header = False

    def _container(self) -> Node:
        return self.real[-1]

    def _push(self, node: Node | None) -> None:
        self.stack.append(node)
        if node is not None:
            self._container()["content"].append(node)
            self.real.append(node)

    def _pop(self) -> None:
        node = self.stack.pop()
        if node is not None:
            self.real.pop()

    def _open_container(self, node: Node) -> None:
        depth = len(self.real) - 1
        self._push(node if depth < CONTAINER_DEPTH else None)

    def _add_block(self, block: Node) -> None:
        parent = self._container()
        if parent["type"] in ("bullet_list", "ordered_list", "table", "table_row"):
            return  # cannot happen with markdown-it's token stream; never put a block there
        parent["content"].append(block)

    def build(self, tokens: list[Token]) -> list[Node]:
        skip_to: int | None = None
        for tok in tokens:
            kind = tok.type
            if skip_to is not None:
                if tok.nesting == -1 and tok.level == skip_to:
                    skip_to = None
                continue
            if tok.nesting == 1 and tok.level >= _MAX_NESTING - 4 and tok.map:
                # markdown-it stops reading past maxNesting: keep this subtree's source as plain text
                raw = [_CONTAINER_MARKS.sub("", ln) for ln in self.lines[tok.map[0] : tok.map[1]]]
                self._add_block(paragraph(_literal_lines("\n".join(ln for ln in raw if ln.strip()))))
                skip_to = tok.level
                continue
            if kind == "paragraph_open":
                self._push_leaf({"type": "paragraph", "content": []})
            elif kind == "heading_open":
                level = int(tok.tag[1]) if tok.tag[1:].isdigit() else 1
                self._push_leaf({"type": "heading", "attrs": {"level": level}, "content": []})
            elif kind in ("paragraph_close", "heading_close"):
                self._pop()
            elif kind == "inline":
                self._inline(tok)
            elif kind == "bullet_list_open":
                self._open_container({"type": "bullet_list", "content": []})
            elif kind == "ordered_list_open":
                start = tok.attrGet("start")
                value = int(start) if isinstance(start, (int, str)) and str(start).isdigit() else 1
                self._open_container({"type": "ordered_list", "attrs": {"start": value}, "content": []})
            elif kind == "list_item_open":
                self._push(
                    {"type": "list_item", "content": []}
                    if self.stack[-1] is not None and self.stack[-1]["type"].endswith("_list")
                    else None
                )
            elif kind == "blockquote_open":
                self._open_container({"type": "blockquote", "content": []})
            elif kind == "table_open":
                self._open_container({"type": "table", "content": []})
            elif kind == "tr_open":
                self._push({"type": "table_row", "content": []} if self.stack[-1] is not None else None)
            elif kind in ("th_open", "td_open"):
                cell = {"type": "table_cell", "attrs": {"header": kind == "th_open"}, "content": []}
                self._push(cell if self.stack[-1] is not None else None)
            elif kind in ("thead_open", "tbody_open"):
                self.stack.append(None if self.stack[-1] is None else self.stack[-1])
                if self.stack[-1] is not None:
                    self.real.append(self.stack[-1])
            elif kind.endswith("_close") and kind not in ("paragraph_close", "heading_close"):
                self._pop()
            elif kind in ("fence", "code_block"):
                info = tok.info.strip().split(maxsplit=1)
                body = tok.content[:-1] if tok.content.endswith("\n") else tok.content
                self._add_block(
                    {
                        "type": "code_block",
                        "attrs": {"language": info[0] if info else None},
                        "content": [text(body)] if body else [],
                    }
                )
            elif kind == "hr":
                self._add_block({"type": "rule"})
            elif kind == "html_block":
                self._add_block(paragraph(_literal_lines(tok.content.rstrip("\n"))))
        return list(self.root["content"])

    def _push_leaf(self, node: Node) -> None:
        parent = self._container()
        if parent["type"] in ("bullet_list", "ordered_list", "table", "table_row"):
            self.stack.append(None)
            return
        self._push(node)

    def _inline(self, tok: Token) -> None:
        children = tok.children or []
        top = self.stack[-1]
        if top is not None and top["type"] == "paragraph" and len(self.real) > 1:
            parent = self.real[-2]
            alert = _ALERT.match(tok.content)
            if parent["type"] == "blockquote" and parent["content"][0] is top and alert:
                # GitHub alert: "[!NOTE]" alone on the first line of a blockquote (raw, so \[!NOTE] is text)
                parent["type"] = "panel"
                parent["attrs"] = {"kind": _ALERT_KIND[alert.group(1).upper()]}
                cut = next((i for i, c in enumerate(children) if c.type in ("softbreak", "hardbreak")), None)
                children = children[cut + 1 :] if cut is not None else []
        inl = _inlines(children)
        if top is not None and top["type"] in ("paragraph", "heading"):
            top["content"].extend(inl)
        elif top is not None and top["type"] == "table_cell":
            top["content"].append(paragraph(inl))
        else:
            self._add_block(paragraph(inl))


def _literal_lines(value: str) -> list[Node]:
    out: list[Node] = []
    for i, line in enumerate(value.split("\n")):
        if i:
            out.append({"type": "hard_break"})
        if line:
            out.append(text(line))
    return out


def _pair_html(children: list[Token]) -> dict[int, str]:
    """Indices of html_inline tokens that are formatting tags which pair up -> the mark they make."""
    paired: dict[int, str] = {}
    stack: list[tuple[int, str]] = []
    for i, tok in enumerate(children):
        if tok.type != "html_inline":
            continue
        m = _HTML_TAG.fullmatch(tok.content)
        if m is None:
            continue
        name = m.group(2).lower()
        if name == "br" and not m.group(1):
            paired[i] = "br"
            continue
        mark_name = _TAG_MARK.get(name)
        if mark_name is None or m.group(3):
            continue
        if not m.group(1):
            stack.append((i, name))
        elif stack and stack[-1][1] == name:
            j, _ = stack.pop()
            paired[j] = mark_name
            paired[i] = "/" + mark_name
    return paired


def _inlines(children: list[Token]) -> list[Node]:
    out: list[Node] = []
    marks: list[Node] = []
    paired = _pair_html(children)
    for i, tok in enumerate(children):
        kind = tok.type
        if kind in ("text", "text_special"):
            if tok.content:
                out.append(text(tok.content, marks))
        elif kind in ("softbreak", "hardbreak"):
            out.append({"type": "hard_break"})
        elif kind == "code_inline":
            out.append(text(tok.content, [*marks, {"type": "code"}]))
        elif kind in ("strong_open", "em_open", "s_open"):
            marks.append({"type": {"strong_open": "strong", "em_open": "em", "s_open": "strike"}[kind]})
        elif kind == "link_open":
            href = str(tok.attrGet("href") or "")
            marks.append({"type": "link", "attrs": {"href": href}} if safe_href(href) else {"type": "_none"})
        elif kind in ("strong_close", "em_close", "s_close", "link_close"):
            if marks:
                marks.pop()
        elif kind == "image":
            src = str(tok.attrGet("src") or "")
            label = tok.content or src
            link = [{"type": "link", "attrs": {"href": src}}] if src and safe_href(src) else []
            if label:
                out.append(text(label, [*marks, *link]))
        elif kind == "mention":
            out.append(mention(username=str(tok.meta["login"])))
        elif kind == "html_inline":
            tag = paired.get(i)
            if tag == "br":
                out.append({"type": "hard_break"})
            elif tag is None:
                out.append(text(tok.content, marks))
            elif tag.startswith("/"):
                for k in range(len(marks) - 1, -1, -1):
                    if marks[k]["type"] == tag[1:]:
                        del marks[k]
                        break
            else:
                marks.append({"type": tag})
        elif tok.content:
            out.append(text(tok.content, marks))
    return [n for n in out if n["type"] != "text" or n["text"]]


# ---------------------------------------------------------------------------------------------------
# neutral -> Markdown


def to_markdown(doc: Doc) -> str:
    """GitHub-flavoured Markdown for a neutral doc."""
    validate_doc(doc)
    canon = canonical(doc)
    return "\n\n".join(_blocks(canon["content"]))


def _blocks(blocks: list[Node]) -> list[str]:
    out: list[str] = []
    prev_list: tuple[str, str] | None = None  # (list type, marker style) of the block just written
    for block in blocks:
        kind = block["type"]
        if kind in ("bullet_list", "ordered_list"):
            alt = prev_list is not None and prev_list[0] == kind and prev_list[1] == "a"
            out.append(_list(block, "b" if alt else "a"))
            prev_list = (kind, "b" if alt else "a")
            continue
        prev_list = None
        out.append(_block(block))
    return out


def _prefix(body: str, first: str, rest: str) -> str:
    lines = body.split("\n")
    out = []
    for i, line in enumerate(lines):
        pre = first if i == 0 else rest
        out.append((pre + line) if line else pre.rstrip())
    return "\n".join(out)


def _block(block: Node) -> str:
    kind = block["type"]
    content = block.get("content") or []
    attrs = block.get("attrs") or {}
    if kind == "paragraph":
        return _render_inline(content, "\n")
    if kind == "heading":
        return "#" * int(attrs["level"]) + " " + _render_inline(content, "<br>", heading=True)
    if kind == "code_block":
        body = "".join(t["text"] for t in content)
        runs = [len(m.group(0)) for m in re.finditer(r"`{3,}", body)]
        fence = "`" * max(3, max(runs, default=0) + 1)
        lang = attrs.get("language") or ""
        if "`" in lang or any(c.isspace() for c in lang):
            lang = ""
        return fence + lang + "\n" + body + "\n" + fence
    if kind == "blockquote":
        inner = "\n\n".join(_blocks(content))
        return _prefix(inner, "> ", "> ") if inner else ">"
    if kind == "panel":
        head = "> [!" + _KIND_ALERT[attrs["kind"]] + "]"
        inner = "\n\n".join(_blocks(content))
        if not inner:
            return head
        if content[0]["type"] != "paragraph":
            inner = "\n" + inner
        return head + "\n" + _prefix(inner, "> ", "> ")
    if kind == "rule":
        return "___"
    if kind == "table":
        return _table(block)
    return ""


def _list(block: Node, style: str) -> str:
    ordered = block["type"] == "ordered_list"
    start = block.get("attrs", {}).get("start", 1) if ordered else 1
    items = []
    for i, item in enumerate(block["content"]):
        if ordered:
            marker = f"{start + i}{'.' if style == 'a' else ')'}"
        else:
            marker = "-" if style == "a" else "*"
        parts = _blocks(item["content"])
        body = parts[0] if parts else ""
        for child, part in zip(item["content"][1:], parts[1:], strict=True):
            # a nested list may follow its paragraph line directly, unless it could not interrupt a
            # paragraph (an ordered list not starting at 1, or an empty first item: "-" is a setext line)
            tight = (
                child["type"] in ("bullet_list", "ordered_list")
                and (child["type"] == "bullet_list" or child["attrs"]["start"] == 1)
                and bool(child["content"][0]["content"])
            )
            body += ("\n" if tight else "\n\n") + part
        if not body:
            items.append(marker)
            continue
        pad = " " * (len(marker) + 1)
        items.append(_prefix(body, marker + " ", pad))
    return "\n".join(items)


def _table(block: Node) -> str:
    rows = []
    for row in block["content"]:
        cells = []
        for cell in row["content"]:
            inl: list[Node] = []
            for child in cell["content"]:
                if inl:
                    inl.append({"type": "hard_break"})
                inl.extend(child["content"] if child["type"] == "paragraph" else block_inlines(child))
            cells.append(_render_inline(normalize_inlines(inl), "<br>", in_table=True))
        rows.append("| " + " | ".join(cells) + " |")
    width = len(block["content"][0]["content"])
    rows.insert(1, "|" + "|".join([" --- "] * width) + "|")
    return "\n".join(rows)


# --- inline ----------------------------------------------------------------------------------------

_S_TEXT, _S_RAW, _S_OPEN, _S_CLOSE, _S_BREAK = range(5)
_DELIM = {"strong": "**", "em": "_", "strike": "~~"}
_TAG = {"strong": "strong", "em": "em", "strike": "del", "underline": "ins", "sub": "sub", "sup": "sup"}
_AUTOLINK = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^\s<>\x00-\x1f]*")


def _code_span(value: str, in_table: bool) -> str:
    runs = [len(m.group(0)) for m in re.finditer(r"`+", value)]
    ticks = "`" * (max(runs, default=0) + 1)
    pad = (
        value[:1] == "`"
        or value[-1:] == "`"
        or (value[:1] == " " and value[-1:] == " " and value.strip() != "")
    )
    if in_table:  # GFM splits cells before code spans; \| is the way to keep a pipe in one
        value = value.replace("|", "\\|")
    return ticks + (" " + value + " " if pad else value) + ticks


def _dest(href: str) -> str:
    if href and not re.search(r"[\s()<>\\]", href):
        return href
    return "<" + re.sub(r"([<>\\])", r"\\\1", href) + ">"


def _segments(nodes: list[Node], in_table: bool) -> list[list[Any]]:
    """Flat segments; open/close segments carry [kind, mark name, run id] and are resolved later."""
    segs: list[list[Any]] = []
    stack: list[tuple[Node, int]] = []
    run_ids = iter(range(1_000_000_000))

    def close_to(keep: int) -> None:
        while len(stack) > keep:
            m, run = stack.pop()
            if m["type"] == "link":
                segs.append([_S_RAW, "](" + _dest(m["attrs"]["href"]) + ")"])
            else:
                segs.append([_S_CLOSE, m["type"], run])

    k = 0
    while k < len(nodes):
        node = nodes[k]
        kind = node["type"]
        if kind == "hard_break":
            close_to(0)
            segs.append([_S_BREAK, ""])
        elif kind == "mention":
            close_to(0)
            login = node["attrs"].get("username")
            if login and _LOGIN.fullmatch(login):
                segs.append([_S_RAW, "@" + login])
            else:
                label = node["attrs"].get("display_name") or login or node["attrs"].get("email") or "user"
                segs.append([_S_TEXT, "@" + label])
        else:
            marks = [m for m in node.get("marks") or [] if m["type"] != "code"]
            code = len(marks) != len(node.get("marks") or [])
            href = next((m["attrs"]["href"] for m in marks if m["type"] == "link"), None)
            if (
                href is not None
                and marks == [{"type": "link", "attrs": {"href": href}}]
                and not code
                and node["text"] == href
                and _AUTOLINK.fullmatch(href)
                and not stack
            ):
                segs.append([_S_RAW, "<" + href + ">"])
                k += 1
                continue
            common = 0
            while common < len(stack) and common < len(marks) and stack[common][0] == marks[common]:
                common += 1
            close_to(common)
            for m in marks[common:]:
                run = next(run_ids)
                stack.append((m, run))
                if m["type"] == "link":
                    segs.append([_S_RAW, "["])
                else:
                    segs.append([_S_OPEN, m["type"], run])
            if code:
                segs.append([_S_RAW, _code_span(node["text"], in_table)])
            else:
                segs.append([_S_TEXT, node["text"]])
        k += 1
    close_to(0)
    return segs


def _is_ws(c: str | None) -> bool:
    return c is None or isWhiteSpace(ord(c))


def _is_punct(c: str | None) -> bool:
    return c is not None and (isMdAsciiPunct(ord(c)) or isPunctChar(c))


def _flanks(delim: str, before: str | None, after: str | None, opening: bool) -> bool:
    """Would markdown-it let ``delim`` between these characters open (or close) emphasis?"""
    left = not (_is_ws(after) or (_is_punct(after) and not (_is_ws(before) or _is_punct(before))))
    right = not (_is_ws(before) or (_is_punct(before) and not (_is_ws(after) or _is_punct(after))))
    if delim == "_":
        if opening:
            return left and (not right or _is_punct(before))
        return right and (not left or _is_punct(after))
    return left if opening else right


_LINE_START = re.compile(r"[-+=>#]|\d{1,9}[.)](?:[ \t]|$)")


def _escape(value: str, before: str | None, after: str | None, line_start: bool, heading: bool) -> str:
    out: list[str] = []
    n = len(value)
    for k, c in enumerate(value):
        prev = value[k - 1] if k else before
        nxt = value[k + 1] if k + 1 < n else after
        if c in "\\`*[]<|~":
            out.append("\\" + c)
        elif c == "_":
            if prev is not None and nxt is not None and prev.isalnum() and nxt.isalnum():
                out.append(c)
            else:
                out.append("\\_")
        elif c == "&":
            out.append("\\&" if nxt is not None and (nxt.isalnum() or nxt == "#") else c)
        elif c == "@":
            ok_before = prev is None or not (prev.isalnum() or prev in "_/@")
            out.append("\\@" if ok_before and nxt is not None and nxt.isalnum() else c)
        elif c == "#" and heading:
            out.append("\\#")
        else:
            out.append(c)
    escaped = "".join(out)
    if line_start:
        m = _LINE_START.match(escaped)
        if m:
            if m.group(0)[0].isdigit():
                cut = m.end() - (1 if m.group(0)[-1] in " \t" else 0) - 1
                escaped = escaped[:cut] + "\\" + escaped[cut:]
            else:
                escaped = "\\" + escaped
    return escaped


def _render_inline(nodes: list[Node], br: str, heading: bool = False, in_table: bool = False) -> str:
    segs = _segments(nodes, in_table)
    # Decide, per formatting run, between delimiters and HTML tags: both ends must flank.
    plain: dict[int, bool] = {}

    def edge(k: int, last: bool) -> str | None:
        if k < 0 or k >= len(segs):
            return None
        kind, value = segs[k][0], segs[k][1]
        if kind == _S_BREAK:
            return None
        if kind in (_S_OPEN, _S_CLOSE):
            return "*"
        if not value:
            return None
        return str(value[-1] if last else value[0])

    for k, seg in enumerate(segs):
        if seg[0] in (_S_OPEN, _S_CLOSE):
            name, run = seg[1], seg[2]
            delim = _DELIM.get(name)
            ok = delim is not None and _flanks(
                delim, edge(k - 1, True), edge(k + 1, False), seg[0] == _S_OPEN
            )
            plain[run] = plain.get(run, True) and ok
    out: list[str] = []
    for k, seg in enumerate(segs):
        kind = seg[0]
        if kind == _S_BREAK:
            # a blank line would end the paragraph: further breaks are a lone backslash line
            out.append("\\\n" if br == "\n" and k and segs[k - 1][0] == _S_BREAK else br)
        elif kind == _S_RAW:
            out.append(seg[1])
        elif kind == _S_TEXT:
            line_start = k == 0 or (segs[k - 1][0] == _S_BREAK and br == "\n")
            out.append(_escape(seg[1], edge(k - 1, True), edge(k + 1, False), line_start, heading))
        else:
            name, run = seg[1], seg[2]
            if plain[run]:
                out.append(_DELIM[name])
            else:
                out.append(("<" if kind == _S_OPEN else "</") + _TAG[name] + ">")
    return "".join(out)
