"""Neutral doc -> safe HTML, for the admin UI and for Jira's ``renderedFields``.

Everything is built from the tree, never from markup: every text and attribute value goes through
:func:`html.escape`, links are kept only for safe schemes (no ``javascript:``/``data:``/...), and
get ``rel="nofollow noopener noreferrer"``. There is no raw-HTML passthrough. Pure; no I/O.
"""

from __future__ import annotations

from html import escape

from protocol.richtext import Doc, validate_doc

from .normalize import Node, canonical, mention_label, safe_href

_MARK_TAG = {
    "strong": "strong",
    "em": "em",
    "code": "code",
    "strike": "del",
    "underline": "ins",
    "sub": "sub",
    "sup": "sup",
}


def to_html(doc: Doc) -> str:
    """An HTML fragment (no ``<html>``/``<body>``) for a neutral doc."""
    validate_doc(doc)
    out: list[str] = []
    for block in canonical(doc)["content"]:
        _block(block, out)
    return "".join(out)


def _block(block: Node, out: list[str]) -> None:
    kind = block["type"]
    content = block.get("content") or []
    attrs = block.get("attrs") or {}
    if kind == "paragraph":
        out.append("<p>" + _inlines(content) + "</p>")
    elif kind == "heading":
        level = attrs["level"]
        out.append(f"<h{level}>" + _inlines(content) + f"</h{level}>")
    elif kind in ("bullet_list", "ordered_list"):
        if kind == "bullet_list":
            out.append("<ul>")
        else:
            start = attrs.get("start", 1)
            out.append("<ol>" if start == 1 else f'<ol start="{int(start)}">')
        for item in content:
            out.append("<li>")
            for child in item.get("content") or []:
                _block(child, out)
            out.append("</li>")
        out.append("</ul>" if kind == "bullet_list" else "</ol>")
    elif kind == "code_block":
        body = "".join(t["text"] for t in content)
        lang = attrs.get("language")
        cls = f' class="language-{escape(lang, quote=True)}"' if lang else ""
        out.append(f"<pre><code{cls}>" + escape(body, quote=False) + "</code></pre>")
    elif kind == "blockquote":
        out.append("<blockquote>")
        for child in content:
            _block(child, out)
        out.append("</blockquote>")
    elif kind == "panel":
        out.append(f'<div class="panel panel-{escape(attrs["kind"], quote=True)}">')
        for child in content:
            _block(child, out)
        out.append("</div>")
    elif kind == "rule":
        out.append("<hr>")
    elif kind == "table":
        out.append("<table>")
        for row in content:
            out.append("<tr>")
            for cell in row["content"]:
                tag = "th" if cell["attrs"]["header"] else "td"
                out.append(f"<{tag}>")
                for child in cell["content"]:
                    _block(child, out)
                out.append(f"</{tag}>")
            out.append("</tr>")
        out.append("</table>")


def _inlines(nodes: list[Node]) -> str:
    parts: list[str] = []
    for node in nodes:
        kind = node["type"]
        if kind == "hard_break":
            parts.append("<br>")
        elif kind == "mention":
            label = escape("@" + mention_label(node), quote=True)
            parts.append(f'<span class="mention">{label}</span>')
        else:
            html = escape(node["text"], quote=False)
            for m in reversed(node.get("marks") or []):
                if m["type"] == "link":
                    href = safe_href(m["attrs"]["href"])
                    if href is not None:
                        attr = escape(href, quote=True)
                        html = f'<a href="{attr}" rel="nofollow noopener noreferrer">{html}</a>'
                else:
                    tag = _MARK_TAG[m["type"]]
                    html = f"<{tag}>{html}</{tag}>"
            parts.append(html)
    return "".join(parts)
