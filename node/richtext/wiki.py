"""Jira wiki markup (Jira Server/DC, REST v2 and every Jira webhook) <-> neutral doc.

There is no maintained Python parser for Jira's notation, so this is a small hand parser:

* **block level** reads line by line: ``h1.``–``h6.``, ``bq.``, ``----``, lists (``*``, ``#``,
  ``-``, mixed like ``#*``), tables (``||head||`` / ``|cell|``), paragraphs (a newline inside a
  paragraph is a line break, as Jira renders it), and the block macros ``{code}``, ``{noformat}``,
  ``{quote}``, ``{panel}``, ``{info}``, ``{note}``, ``{warning}``, ``{tip}`` wherever they start on a
  line. Same-name macros cannot nest (the next ``{quote}`` closes), as in Jira; an unclosed macro
  runs to the end of the text.
* **inline level** tokenises once with one regex (escapes ``\\X``, breaks ``\\\\``, markers, brackets),
  then pairs markers left to right: a plain ``*``/``_``/``-``/``+``/``^``/``~``/``??`` opens only
  after a non-letter and before a non-space, and closes only after a non-space and before a
  non-letter (so ``well-known`` and ``2*3`` stay text); Jira Cloud's braced form ``{*}`` always
  counts. Closers are found by bisection in precomputed lists, so unbalanced input stays linear.

``to_wiki`` escapes every character that would otherwise be read as markup, using the same rules,
so ``from_wiki(to_wiki(doc)) == normalize(doc)`` for everything wiki can express. Pure; no I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

from protocol.richtext import Doc, validate_doc

from .normalize import (
    CONTAINER_DEPTH,
    MARK_ORDER,
    Node,
    block_inlines,
    canonical,
    canonical_doc,
    canonical_inlines,
    mention,
    normalize,
    normalize_inlines,
    paragraph,
    safe_href,
    text,
)

# ---------------------------------------------------------------------------------------------------
# Shared tables

_MARKER_MARK = {"*": "strong", "_": "em", "??": "em", "-": "strike", "+": "underline", "^": "sup", "~": "sub"}
_MARK_MARKER = {"strong": "*", "em": "_", "strike": "-", "underline": "+", "sup": "^", "sub": "~"}
_PANEL_COLOURS = {
    "info": "#deebff",
    "note": "#eae6ff",
    "success": "#e3fcef",
    "warning": "#fffae6",
    "error": "#ffebe6",
}
_COLOUR_PANEL = {v: k for k, v in _PANEL_COLOURS.items()}
_MACRO_PANEL = {"info": "info", "note": "note", "warning": "warning", "tip": "success"}
_MAX_LIST_LEVEL = (CONTAINER_DEPTH - 1) // 2

# ---------------------------------------------------------------------------------------------------
# Parsing: inline level

_TOKEN = re.compile(
    r"""
    (?P<br>\\\\\n?|\n)
  | \\(?P<esc>[^\w\s]|_)
  | &\#(?P<ent>\d{1,7});
  | \{(?P<braced>[*_\-+^~])\}
  | (?P<cs>\{\{) | (?P<ce>\}\})
  | (?P<macro>\{(?:color|anchor)(?::[^}\n]*)?\})
  | (?P<mark>\?\?|[*_\-+^~])
  | (?P<lb>\[) | (?P<rb>\]) | (?P<pipe>\|) | (?P<bang>!)
    """,
    re.VERBOSE,
)

# token kinds
_T, _BR, _MARK, _BRACED, _CS, _CE, _MACRO, _LB, _RB, _PIPE, _BANG = range(11)
_GROUP_KIND = {
    "br": _BR,
    "braced": _BRACED,
    "cs": _CS,
    "ce": _CE,
    "macro": _MACRO,
    "mark": _MARK,
    "lb": _LB,
    "rb": _RB,
    "pipe": _PIPE,
    "bang": _BANG,
}
_URLISH = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|/|www\.)")


@dataclass(slots=True)
class _Tok:
    kind: int
    value: str  # literal text (what the token reads as when it is not markup)
    start: int
    end: int


def _tokenise(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    for m in _TOKEN.finditer(src):
        if m.start() > pos:
            toks.append(_Tok(_T, src[pos : m.start()], pos, m.start()))
        group = m.lastgroup or ""
        if group == "esc":
            toks.append(_Tok(_T, m.group("esc"), m.start(), m.end()))
        elif group == "ent":
            code = int(m.group("ent"))
            char = chr(code) if 0 < code < 0x110000 and not 0xD800 <= code <= 0xDFFF else "\ufffd"
            toks.append(_Tok(_T, char, m.start(), m.end()))
        elif group == "braced":
            toks.append(_Tok(_BRACED, m.group(0), m.start(), m.end()))
        else:
            toks.append(_Tok(_GROUP_KIND[group], m.group(0), m.start(), m.end()))
        pos = m.end()
    if pos < len(src):
        toks.append(_Tok(_T, src[pos:], pos, len(src)))
    return toks


class _InlineParser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenise(src)
        self.out: list[Node] = []
        self.closers: dict[str, list[int]] = {}
        self.by_kind: dict[int, list[int]] = {_CE: [], _RB: [], _BANG: [], _PIPE: []}
        for i, tok in enumerate(self.toks):
            if tok.kind in self.by_kind:
                self.by_kind[tok.kind].append(i)
            if tok.kind == _MARK and self._closes(tok):
                self.closers.setdefault(tok.value, []).append(i)
            elif tok.kind == _BRACED:
                self.closers.setdefault(tok.value[1], []).append(i)

    def _before(self, tok: _Tok) -> str:
        return self.src[tok.start - 1] if tok.start > 0 else " "

    def _after(self, tok: _Tok) -> str:
        return self.src[tok.end] if tok.end < len(self.src) else " "

    def _opens(self, tok: _Tok) -> bool:
        return not self._before(tok).isalnum() and not self._after(tok).isspace()

    def _closes(self, tok: _Tok) -> bool:
        return not self._before(tok).isspace() and not self._after(tok).isalnum()

    def _next(self, positions: list[int], after: int, before: int) -> int | None:
        k = bisect_right(positions, after)
        if k < len(positions) and positions[k] < before:
            return positions[k]
        return None

    def parse(self) -> list[Node]:
        self._run(0, len(self.toks), ())
        return canonical_inlines(self.out)

    def _emit(self, value: str, marks: tuple[Node, ...]) -> None:
        if value:
            self.out.append(text(value, marks))

    def _run(self, lo: int, hi: int, marks: tuple[Node, ...]) -> None:
        toks = self.toks
        active = {m["type"] for m in marks}
        i = lo
        while i < hi:
            tok = toks[i]
            kind = tok.kind
            if kind == _T:
                self._emit(tok.value, marks)
            elif kind == _BR:
                self.out.append({"type": "hard_break"})
            elif kind in (_MARK, _BRACED):
                key = tok.value if kind == _MARK else tok.value[1]
                name = _MARKER_MARK[key]
                if name not in active and (kind == _BRACED or self._opens(tok)):
                    j = self._next(self.closers.get(key, []), i + 1, hi)
                    if j is not None:
                        self._run(i + 1, j, (*marks, {"type": name}))
                        i = j + 1
                        continue
                self._emit(key if kind == _BRACED else tok.value, marks)
            elif kind == _CS:
                j = self._next(self.by_kind[_CE], i, hi)
                if j is not None and j > i + 1:
                    code_marks = (*marks, {"type": "code"})
                    for t in toks[i + 1 : j]:
                        if t.kind == _BR:
                            self.out.append({"type": "hard_break"})
                        else:
                            self._emit(t.value, code_marks)
                    i = j + 1
                    continue
                self._emit(tok.value, marks)
            elif kind == _LB:
                j = self._next(self.by_kind[_RB], i, hi)
                if j is not None and self._bracket(i, j, marks):
                    i = j + 1
                    continue
                self._emit("[", marks)
            elif kind == _BANG:
                j = self._next(self.by_kind[_BANG], i, hi)
                if j is not None and self._image(i, j, marks):
                    i = j + 1
                    continue
                self._emit("!", marks)
            elif kind == _MACRO:
                pass  # {color:...}/{anchor:...}: the text inside stays, the styling goes
            else:
                self._emit(tok.value, marks)
            i += 1

    def _bracket(self, i: int, j: int, marks: tuple[Node, ...]) -> bool:
        """``[...]`` between tokens i and j: a mention, link or attachment. False = literal text."""
        raw = self.src[self.toks[i].end : self.toks[j].start]
        if not raw.strip() or "\n" in raw:
            return False
        if raw.startswith("~"):
            name = raw[1:].strip()
            if not name:
                return False
            if name.lower().startswith("accountid:"):
                self.out.append(mention(account_id=name[len("accountid:") :]))
            else:
                self.out.append(mention(username=name))
            return True
        if raw.startswith("^"):  # attachment link
            self._emit(raw[1:].strip(), marks)
            return True
        pipe = self._next(self.by_kind[_PIPE], i, j)
        if pipe is None:
            url = raw.strip()
            if not _URLISH.match(url) or " " in url:
                return False
            self._link_label_text(url, url, marks)
            return True
        rest = self.src[self.toks[pipe].end : self.toks[j].start]
        url = rest.split("|", 1)[0].strip()
        if not url:
            return False
        href = safe_href(url)
        label_marks = (*marks, {"type": "link", "attrs": {"href": href}}) if href is not None else marks
        if "link" in {m["type"] for m in marks}:
            label_marks = marks
        if pipe == i + 1:
            self._emit(url, label_marks)
        else:
            self._run(i + 1, pipe, label_marks)
        return True

    def _link_label_text(self, label: str, url: str, marks: tuple[Node, ...]) -> None:
        href = safe_href(url)
        if href is None or "link" in {m["type"] for m in marks}:
            self._emit(label, marks)
        else:
            self._emit(label, (*marks, {"type": "link", "attrs": {"href": href}}))

    def _image(self, i: int, j: int, marks: tuple[Node, ...]) -> bool:
        raw = self.src[self.toks[i].end : self.toks[j].start]
        name = raw.split("|", 1)[0]
        if not name or name != name.strip() or any(c.isspace() for c in name):
            return False
        if _URLISH.match(name) and "://" in name:
            self._link_label_text(name, name, marks)
        else:
            self._emit(name, marks)
        return True


def _inline(src: str) -> list[Node]:
    if _TOKEN.search(src) is None:  # one text token: what the parser would make of it, directly
        return canonical_inlines([text(src)]) if src else []
    return _InlineParser(src).parse()


# ---------------------------------------------------------------------------------------------------
# Parsing: block level

_BLOCK_MACRO = re.compile(r"\{(code|noformat|quote|panel|info|note|warning|tip)(?::([^}\n]*))?\}")
_HEADING = re.compile(r"h([1-6])\.(?:\s+|$)")
_BQ = re.compile(r"bq\.(?:\s+|$)")
_LIST = re.compile(r"([*#]+|-)(?:\s+|$)")
_RULE = re.compile(r"-{4}\s*$")


def _escaped(src: str, index: int) -> bool:
    """True if the character at ``index`` is escaped by an odd run of backslashes before it."""
    k = index
    while k > 0 and src[k - 1] == "\\":
        k -= 1
    return (index - k) % 2 == 1


def _find_macro(line: str) -> re.Match[str] | None:
    pos = 0
    while True:
        m = _BLOCK_MACRO.search(line, pos)
        if m is None:
            return None
        if not _escaped(line, m.start()) and not (m.start() > 0 and line[m.start() - 1] == "{"):
            return m
        pos = m.start() + 1


def _find_close(src: str, start: int, name: str) -> tuple[int, int]:
    """(end of the body, position after the closing macro); an unclosed macro runs to the end."""
    close = "{" + name + "}"
    pos = start
    while True:
        k = src.find(close, pos)
        if k < 0:
            return len(src), len(src)
        if name in ("code", "noformat") or not _escaped(src, k):
            return k, k + len(close)
        pos = k + 1


def _params(raw: str | None) -> tuple[list[str], dict[str, str]]:
    plain: list[str] = []
    named: dict[str, str] = {}
    for part in (raw or "").split("|"):
        if "=" in part:
            key, _, value = part.partition("=")
            named[key.strip().lower()] = value.strip()
        elif part.strip():
            plain.append(part.strip())
    return plain, named


@dataclass
class _ListLevel:
    node: Node
    char: str


@dataclass
class _BlockParser:
    depth: int
    blocks: list[Node] = field(default_factory=list)
    para: list[str] = field(default_factory=list)
    lists: list[_ListLevel] = field(default_factory=list)
    item_lines: list[str] | None = None
    pending_items: list[tuple[Node, list[str]]] = field(default_factory=list)
    rows: list[list[tuple[bool, str]]] = field(default_factory=list)

    def parse(self, src: str) -> list[Node]:
        n = len(src)
        pos = 0
        while pos < n:
            eol = src.find("\n", pos)
            if eol < 0:
                eol = n
            line = src[pos:eol]
            m = _find_macro(line)
            if m is None:
                self._line(line)
                pos = eol + 1
                continue
            before = line[: m.start()]
            if before.strip():
                self._line(before)
            self._flush()
            body_start = pos + m.end()
            body_end, after = _find_close(src, body_start, m.group(1))
            self.blocks.extend(self._macro(m.group(1), m.group(2), src[body_start:body_end]))
            pos = after
        self._flush()
        return self.blocks

    # -- lines ---------------------------------------------------------------------------------------

    def _line(self, line: str) -> None:
        stripped = line.strip()
        if not stripped:
            self._flush()
            return
        if stripped.startswith("|"):
            self._flush_para()
            self._flush_list()
            self.rows.append(_split_row(stripped))
            return
        if self.rows:
            self._flush_table()
        heading = _HEADING.match(stripped)
        if heading:
            self._flush()
            content = _inline(stripped[heading.end() :])
            self.blocks.append(
                {"type": "heading", "attrs": {"level": int(heading.group(1))}, "content": content}
            )
            return
        quote = _BQ.match(stripped)
        if quote:
            self._flush()
            self.blocks.append(
                {"type": "blockquote", "content": [paragraph(_inline(stripped[quote.end() :]))]}
            )
            return
        if _RULE.match(stripped):
            self._flush()
            self.blocks.append({"type": "rule"})
            return
        item = _LIST.match(stripped)
        if item:
            self._flush_para()
            self._list_item(item.group(1), stripped[item.end() :])
            return
        if self.item_lines is not None:  # a plain line right after a list item continues it
            self.item_lines.append(line)
            return
        self.para.append(line)

    def _list_item(self, marker: str, rest: str) -> None:
        chars = "*" if marker == "-" else marker
        level = min(len(chars), _MAX_LIST_LEVEL)
        while len(self.lists) > level:
            self.lists.pop()
        if len(self.lists) == level and self.lists[-1].char != chars[level - 1]:
            self.lists.pop()
        while len(self.lists) < level:
            char = chars[len(self.lists)]
            node: Node = (
                {"type": "bullet_list", "content": []}
                if char == "*"
                else {"type": "ordered_list", "attrs": {"start": 1}, "content": []}
            )
            if not self.lists:
                self.blocks.append(node)
            else:
                parent = self.lists[-1].node
                if not parent["content"]:
                    parent["content"].append({"type": "list_item", "content": []})
                parent["content"][-1]["content"].append(node)
            self.lists.append(_ListLevel(node, char))
        item: Node = {"type": "list_item", "content": []}
        self.lists[-1].node["content"].append(item)
        self.item_lines = [rest]
        self.pending_items.append((item, self.item_lines))

    # -- flushing ------------------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_para()
        self._flush_list()
        self._flush_table()

    def _flush_para(self) -> None:
        if self.para:
            self.blocks.append(paragraph(_inline("\n".join(self.para))))
            self.para = []

    def _flush_list(self) -> None:
        for item, lines in self.pending_items:
            content = _inline("\n".join(lines))
            if content:
                item["content"].insert(0, paragraph(content))
        self.pending_items = []
        self.lists = []
        self.item_lines = None

    def _flush_table(self) -> None:
        if not self.rows:
            return
        rows = []
        for row in self.rows:
            cells = []
            for header, raw in row:
                inl = _inline(raw)
                cells.append(
                    {
                        "type": "table_cell",
                        "attrs": {"header": header},
                        "content": [paragraph(inl)] if inl else [],
                    }
                )
            rows.append({"type": "table_row", "content": cells})
        self.blocks.append({"type": "table", "content": rows})
        self.rows = []

    # -- macros --------------------------------------------------------------------------------------

    def _macro(self, name: str, raw_params: str | None, body: str) -> list[Node]:
        plain, named = _params(raw_params)
        if name in ("code", "noformat"):
            if body.startswith("\n"):
                body = body[1:]
            if body.endswith("\n"):
                body = body[:-1]
            lang = None
            if name == "code":
                lang = named.get("language") or (plain[0] if plain else None)
            return [
                {"type": "code_block", "attrs": {"language": lang}, "content": [text(body)] if body else []}
            ]
        inner = _BlockParser(self.depth + 1).parse(body) if self.depth < CONTAINER_DEPTH else _flat(body)
        title = named.get("title")
        if title:
            inner.insert(0, paragraph([text(title, [{"type": "strong"}])]))
        if name == "quote":
            return [{"type": "blockquote", "content": inner}]
        if name == "panel":
            kind = _COLOUR_PANEL.get(named.get("bgcolor", "").lower(), "info")
        else:
            kind = _MACRO_PANEL[name]
        return [{"type": "panel", "attrs": {"kind": kind}, "content": inner}]


def _flat(body: str) -> list[Node]:
    inl = _inline(body)
    return [paragraph(inl)] if inl else []


def _find_unescaped(line: str, needle: str, start: int) -> int:
    k = line.find(needle, start)
    while k >= 0 and _escaped(line, k):
        k = line.find(needle, k + 1)
    return k


def _split_row(line: str) -> list[tuple[bool, str]]:
    """Cells of one table line as (is_header, raw text); ``|`` inside ``[...]`` or ``{{...}}`` is text."""
    cells: list[tuple[bool, str]] = []
    n = len(line)
    i = 0
    header = False
    start = -1
    no_rb = no_ce = False
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == "[" and not no_rb:
            k = _find_unescaped(line, "]", i + 1)
            if k < 0:
                no_rb = True
            else:
                i = k + 1
                continue
        if c == "{" and line.startswith("{{", i) and not no_ce:
            k = _find_unescaped(line, "}}", i + 2)
            if k < 0:
                no_ce = True
            else:
                i = k + 2
                continue
        if c == "|":
            if start >= 0:
                cells.append((header, line[start:i]))
            header = line.startswith("||", i)
            i += 2 if header else 1
            start = i
            continue
        i += 1
    if start >= 0 and line[start:].strip():
        cells.append((header, line[start:]))
    return cells


# Characters that can start markup, an entity, an escape or a block (besides "h1." and "bq."): text
# without any of them on one line is one plain paragraph.
_MARKUP_CHARS = re.compile(r"[\\&{}*_\-+^~?\[\]|!#\n\r]")


def from_wiki(markup: str | None) -> Doc:
    """Read Jira wiki markup. Never raises on any string."""
    if not markup:
        return normalize({})
    if _MARKUP_CHARS.search(markup) is None:
        line = markup.strip()
        if line and not _HEADING.match(line) and not _BQ.match(line):
            return canonical_doc([paragraph([text(markup)])])
    return _parse_wiki(markup)


def _parse_wiki(markup: str) -> Doc:
    src = markup.replace("\r\n", "\n").replace("\r", "\n")
    return canonical_doc(_BlockParser(0).parse(src))


# ---------------------------------------------------------------------------------------------------
# Writing

_ALWAYS_ESCAPE = frozenset("{}[]|")
_MARKER_CHARS = frozenset("*_-+^~")
_LINE_START = re.compile(r"([*#]+|-)(?:\s|$)|h[1-6]\.|bq\.|#")


def _cls(char: str | None) -> str:
    """Character class for the flanking rules: 'a' letter/digit, 's' space or edge, 'p' other."""
    if char is None or char.isspace():
        return "s"
    return "a" if char.isalnum() else "p"


_SPECIAL = re.compile(r"[\\{}\[\]|*_\-+^~?!&]")  # every character _escape_text may escape


def _escape_text(value: str, before: str | None, after: str | None, line_start: bool) -> str:
    if _SPECIAL.search(value) is None:  # most text: nothing to escape but a line-start marker
        escaped = value
    else:
        escaped = _escape_chars(value, before, after)
    if line_start:
        m = _LINE_START.match(escaped)
        if m:
            if escaped[0] in "*#-":
                escaped = "\\" + escaped
            else:  # h1. / bq.
                dot = escaped.index(".")
                escaped = escaped[:dot] + "\\" + escaped[dot:]
    return escaped


def _escape_chars(value: str, before: str | None, after: str | None) -> str:
    out: list[str] = []
    n = len(value)
    for k, c in enumerate(value):
        prev = value[k - 1] if k else before
        nxt = value[k + 1] if k + 1 < n else after
        if c == "\\":
            out.append("&#92;")
            continue
        if c in _ALWAYS_ESCAPE:
            out.append("\\" + c)
            continue
        if c in _MARKER_CHARS:
            p, q = _cls(prev), _cls(nxt)
            if not ((p == "a" and q == "a") or (p == "s" and q == "s")):
                out.append("\\" + c)
                continue
        elif c == "?":
            if prev == "?" or nxt == "?":
                out.append("\\?")
                continue
        elif c == "!":
            if _cls(nxt) != "s":
                out.append("\\!")
                continue
        elif c == "&":
            if nxt == "#":
                out.append("\\&")
                continue
        out.append(c)
    return "".join(out)


# Segments of one rendered line group: (kind, value); kinds below.
_S_TEXT, _S_CODE, _S_RAW, _S_OPEN, _S_CLOSE, _S_BREAK = range(6)


def _segments(nodes: list[Node]) -> list[tuple[int, str]]:
    segs: list[tuple[int, str]] = []
    stack: list[Node] = []

    def close_to(keep: int) -> None:
        while len(stack) > keep:
            m = stack.pop()
            if m["type"] == "link":
                segs.append((_S_RAW, "|" + _href(m["attrs"]["href"]) + "]"))
            elif m["type"] == "code":
                segs.append((_S_RAW, "}}"))
            else:
                segs.append((_S_CLOSE, _MARK_MARKER[m["type"]]))

    for node in nodes:
        kind = node["type"]
        if kind != "text":
            close_to(0)
            if kind == "hard_break":
                segs.append((_S_BREAK, ""))
            else:
                segs.append((_S_RAW, _mention(node)))
            continue
        target = [m for m in node.get("marks") or [] if m["type"] in MARK_ORDER]
        common = 0
        while common < len(stack) and common < len(target) and stack[common] == target[common]:
            common += 1
        close_to(common)
        for m in target[common:]:
            stack.append(m)
            if m["type"] == "link":
                segs.append((_S_RAW, "["))
            elif m["type"] == "code":
                segs.append((_S_RAW, "{{"))
            else:
                segs.append((_S_OPEN, _MARK_MARKER[m["type"]]))
        in_code = any(m["type"] == "code" for m in stack)
        segs.append((_S_CODE if in_code else _S_TEXT, node["text"]))
    close_to(0)
    return segs


def _href(href: str) -> str:
    return href.replace("]", "%5D").replace("|", "%7C").replace(" ", "%20")


def _mention(node: Node) -> str:
    attrs = node["attrs"]
    if attrs.get("account_id"):
        return "[~accountid:" + str(attrs["account_id"]) + "]"
    if attrs.get("username"):
        return "[~" + str(attrs["username"]) + "]"
    label = attrs.get("display_name") or attrs.get("email") or "user"
    return _escape_text("@" + label, None, None, False)


def _render_inline(nodes: list[Node], br: str) -> str:
    segs = _segments(nodes)
    out: list[str] = []

    def edge_char(k: int, last: bool) -> str | None:
        if k < 0 or k >= len(segs):
            return None
        kind, value = segs[k]
        if kind == _S_BREAK:
            return None
        if kind in (_S_OPEN, _S_CLOSE):
            return "*"
        if not value:
            return None
        return value[-1] if last else value[0]

    for k, (kind, value) in enumerate(segs):
        if kind == _S_BREAK:
            # a blank line would end the paragraph: the second of two breaks is written as \\
            out.append("\\\\\n" if br == "\n" and k and segs[k - 1][0] == _S_BREAK else br)
        elif kind == _S_RAW:
            out.append(value)
        elif kind == _S_CODE:  # same escapes as text: an outer marker must not close inside {{...}}
            out.append(_escape_text(value, "{", "}", False))
        elif kind == _S_TEXT:
            # (markers opened at a line's start do not hide it: "*# x*" would read as list items)
            j = k - 1
            while j >= 0 and segs[j][0] == _S_OPEN:
                j -= 1
            line_start = j < 0 or segs[j][0] == _S_BREAK
            out.append(_escape_text(value, edge_char(k - 1, True), edge_char(k + 1, False), line_start))
        else:
            before = _cls(edge_char(k - 1, True))
            after = _cls(edge_char(k + 1, False))
            ok = (before != "a" and after != "s") if kind == _S_OPEN else (before != "s" and after != "a")
            if k and segs[k - 1] == (_S_RAW, "[") and value in "~^":
                ok = False  # "[~" is a mention and "[^" an attachment
            out.append(value if ok else "{" + value + "}")
    return "".join(out)


def to_wiki(doc: Doc) -> str:
    """Jira wiki markup for a neutral doc."""
    return to_wiki_canonical(doc)[0]


def to_wiki_canonical(doc: Doc) -> tuple[str, Doc]:
    """(wiki markup, the canonical form of ``doc`` it renders): callers that memoise reads get the
    normalised doc without normalising twice. A doc already canonical (what the converters and the
    rules make) is not normalised again, and is itself the canonical form returned."""
    validate_doc(doc)
    canon = canonical(doc)
    return "\n\n".join(_blocks(canon["content"], False, False)), canon


def _blocks(blocks: list[Node], in_quote: bool, in_panel: bool) -> list[str]:
    out: list[str] = []
    for block in blocks:
        rendered = _block(block, in_quote, in_panel)
        if rendered:
            out.append(rendered)
    return out


def _block(block: Node, in_quote: bool, in_panel: bool) -> str:
    kind = block["type"]
    content = block.get("content") or []
    attrs = block.get("attrs") or {}
    if kind == "paragraph":
        return _render_inline(content, "\n")
    if kind == "heading":
        return f"h{attrs['level']}. " + _render_inline(content, "\\\\")
    if kind in ("bullet_list", "ordered_list"):
        lines: list[str] = []
        _list_lines(block, "", lines)
        return "\n".join(lines)
    if kind == "code_block":
        body = "".join(t["text"] for t in content)
        lang = attrs.get("language")
        use_code = lang is not None and re.fullmatch(r"[\w+#.-]+", lang) is not None
        if use_code and "{code}" in body:
            use_code = False
        if not use_code and "{noformat}" in body:
            if "{code}" in body:
                body = body.replace("{code}", "{code }")
            return "{code}\n" + body + "\n{code}"
        if use_code:
            return "{code:" + str(lang) + "}\n" + body + "\n{code}"
        return "{noformat}\n" + body + "\n{noformat}"
    if kind == "blockquote":
        inner = "\n\n".join(_blocks(content, True, in_panel))
        return inner if in_quote else "{quote}\n" + inner + "\n{quote}"
    if kind == "panel":
        inner = "\n\n".join(_blocks(content, in_quote, True))
        if in_panel:
            return inner
        return "{panel:bgColor=" + _PANEL_COLOURS[attrs["kind"]] + "}\n" + inner + "\n{panel}"
    if kind == "rule":
        return "----"
    if kind == "table":
        rows = []
        for row in content:
            parts = []
            for cell in row["content"]:
                delim = "||" if cell["attrs"]["header"] else "|"
                inl: list[Node] = []
                for child in cell["content"]:
                    if inl:
                        inl.append({"type": "hard_break"})
                    inl.extend(child["content"] if child["type"] == "paragraph" else block_inlines(child))
                body = _render_inline(normalize_inlines(inl), "\\\\")
                parts.append(delim + (body or " "))
            last = "||" if row["content"][-1]["attrs"]["header"] else "|"
            rows.append("".join(parts) + last)
        return "\n".join(rows)
    return ""


def _list_lines(block: Node, prefix: str, lines: list[str]) -> None:
    marker = prefix + ("*" if block["type"] == "bullet_list" else "#")
    for item in block["content"]:
        inl: list[Node] = []
        nested: list[Node] = []
        for child in item["content"]:
            if child["type"] in ("bullet_list", "ordered_list"):
                nested.append(child)
                continue
            if inl:
                inl.append({"type": "hard_break"})
            inl.extend(child["content"] if child["type"] == "paragraph" else block_inlines(child))
        body = _render_inline(normalize_inlines(inl), "\\\\")
        lines.append(marker + (" " + body if body else ""))
        for child in nested:
            _list_lines(child, marker, lines)
