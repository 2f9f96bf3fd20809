"""Hypothesis strategies for neutral docs, per target format (what that format can express)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from node.richtext.normalize import normalize

Node = dict[str, Any]

# Prose plus every character that is markup somewhere.
ALPHABET = st.sampled_from(
    list("abcxyzAB019 ") + list("*_-+^~?{}[]|!\\&#<>`@=.:()/'\"%$") + ["é", "\u00a0", "中"]
)
PLAIN = st.text(ALPHABET, min_size=1, max_size=12)
WORD = st.text(st.sampled_from(list("abcdefxyz019")), min_size=1, max_size=8)
HREF = st.builds(lambda host, path: f"https://{host}.example/{path}", WORD, WORD)
LANG = st.sampled_from([None, "python", "java", "go", "c++", "sql"])
MARKS = ["strong", "em", "strike", "underline", "sub", "sup"]


@st.composite
def marks(draw: st.DrawFn) -> list[Node]:
    if draw(st.booleans()):
        out: list[Node] = [{"type": "code"}]
    else:
        chosen = draw(st.lists(st.sampled_from(MARKS), max_size=3, unique=True))
        if "sub" in chosen and "sup" in chosen:
            chosen.remove("sup")
        out = [{"type": m} for m in chosen]
    if draw(st.integers(0, 4)) == 0:
        out.append({"type": "link", "attrs": {"href": draw(HREF)}})
    return out


def mention(fmt: str) -> st.SearchStrategy[Node]:
    def build(account: str, name: str, which: bool) -> Node:
        attrs: dict[str, Any] = {"account_id": None, "username": None, "email": None, "display_name": None}
        if fmt == "adf":
            attrs["account_id"] = "557058:" + account
            attrs["display_name"] = name if which else None
        elif fmt == "wiki":
            if which:
                attrs["account_id"] = "557058:" + account
            else:
                attrs["username"] = name
        else:
            attrs["username"] = name
        return {"type": "mention", "attrs": attrs}

    return st.builds(build, WORD, WORD, st.booleans())


def inline(fmt: str) -> st.SearchStrategy[Node]:
    text = st.builds(lambda t, m: {"type": "text", "text": t, "marks": m}, PLAIN, marks())
    return st.one_of(text, text, text, mention(fmt), st.just({"type": "hard_break"}))


def _spaced(content: list[Node]) -> list[Node]:
    """GitHub reads ``@login`` as a mention only between non-word characters: put spaces around each."""
    out: list[Node] = []
    for node in content:
        if node["type"] == "mention":
            out.extend([{"type": "text", "text": " "}, node, {"type": "text", "text": " "}])
        else:
            out.append(node)
    return out


def paragraph(fmt: str) -> st.SearchStrategy[Node]:
    fix = _spaced if fmt == "markdown" else (lambda c: c)
    return st.builds(
        lambda c: {"type": "paragraph", "content": fix(c)}, st.lists(inline(fmt), min_size=1, max_size=6)
    )


def heading(fmt: str) -> st.SearchStrategy[Node]:
    return st.builds(
        lambda lvl, c: {"type": "heading", "attrs": {"level": lvl}, "content": _spaced(c)},
        st.integers(1, 6),
        st.lists(inline(fmt), min_size=1, max_size=4),
    )


def code_block() -> st.SearchStrategy[Node]:
    body = st.text(st.sampled_from(list("ab {}`~\n\t*<>\\")), max_size=30)
    return st.builds(
        lambda lang, b: {
            "type": "code_block",
            "attrs": {"language": lang},
            "content": [{"type": "text", "text": b}] if b else [],
        },
        LANG,
        body,
    )


def table(fmt: str) -> st.SearchStrategy[Node]:
    @st.composite
    def build(draw: st.DrawFn) -> Node:
        width = draw(st.integers(1, 3))
        height = draw(st.integers(1, 3))
        rows = []
        for r in range(height):
            cells = []
            for _ in range(width):
                header = (r == 0) if fmt == "markdown" else draw(st.booleans())
                content = [draw(paragraph(fmt))] if draw(st.integers(0, 3)) else []
                cells.append({"type": "table_cell", "attrs": {"header": header}, "content": content})
            rows.append({"type": "table_row", "content": cells})
        return {"type": "table", "content": rows}

    return build()


# What the ADF schema lets each container hold (written from the ADF spec, independently of node/).
ADF_ALLOWED = {
    "top": {"paragraph", "heading", "code_block", "rule", "table", "list", "blockquote", "panel"},
    "quote": {"paragraph", "code_block", "list"},
    "panel": {"paragraph", "heading", "code_block", "rule", "list"},
    "item": {"paragraph", "code_block", "list"},
}


def blocks(
    fmt: str, depth: int = 0, in_quote: bool = False, in_panel: bool = False, ctx: str = "top"
) -> st.SearchStrategy[Node]:
    allowed = ADF_ALLOWED[ctx] if fmt == "adf" else ADF_ALLOWED["top"]
    candidates: dict[str, st.SearchStrategy[Node]] = {
        "paragraph": paragraph(fmt),
        "heading": heading(fmt),
        "code_block": code_block(),
        "rule": st.just({"type": "rule"}),
        "table": table(fmt),
    }
    if depth < 2:
        candidates["list"] = lists(fmt, depth)
        if not (fmt == "wiki" and in_quote):
            candidates["blockquote"] = st.builds(
                lambda c: {"type": "blockquote", "content": c},
                st.lists(blocks(fmt, depth + 1, True, in_panel, "quote"), max_size=3),
            )
        if not (fmt == "wiki" and in_panel):
            candidates["panel"] = st.builds(
                lambda k, c: {"type": "panel", "attrs": {"kind": k}, "content": c},
                st.sampled_from(["info", "note", "warning", "success", "error"]),
                st.lists(blocks(fmt, depth + 1, in_quote, True, "panel"), max_size=3),
            )
    options = [strategy for kind, strategy in candidates.items() if kind in allowed]
    return st.one_of(candidates["paragraph"], *options)


def lists(fmt: str, depth: int) -> st.SearchStrategy[Node]:
    @st.composite
    def build(draw: st.DrawFn) -> Node:
        ordered = draw(st.booleans())
        items = []
        for _ in range(draw(st.integers(1, 3))):
            if fmt == "wiki":  # wiki items: one paragraph (or none), then nested lists
                content = [draw(paragraph(fmt))] if draw(st.integers(0, 4)) else []
                if depth < 2:
                    content += draw(st.lists(lists(fmt, depth + 1), max_size=1))
            else:
                content = draw(st.lists(blocks(fmt, depth + 1, ctx="item"), max_size=3))
            items.append({"type": "list_item", "content": content})
        if not ordered:
            return {"type": "bullet_list", "content": items}
        start = 1 if fmt == "wiki" else draw(st.integers(1, 20))
        return {"type": "ordered_list", "attrs": {"start": start}, "content": items}

    return build()


def docs(fmt: str) -> st.SearchStrategy[dict[str, Any]]:
    """Canonical docs that ``fmt`` can express exactly."""
    return st.builds(
        lambda c: normalize({"type": "doc", "version": 1, "content": c}),
        st.lists(blocks(fmt), max_size=5),
    )
