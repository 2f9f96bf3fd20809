"""What each converter does with specific constructs real users type (and what it degrades)."""

from __future__ import annotations

from typing import Any

import pytest

from node.richtext import RichTextError
from node.richtext.adf import from_adf, to_adf
from node.richtext.html import to_html
from node.richtext.markdown import from_markdown, to_markdown
from node.richtext.wiki import from_wiki, to_wiki
from protocol.errors import InvalidMessage
from protocol.richtext import from_plain_text, plain_text, validate_doc


def inlines(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert len(doc["content"]) == 1, doc
    content: list[dict[str, Any]] = doc["content"][0]["content"]
    return content


def marked(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(n.get("text", "@"), [m["type"] for m in n.get("marks", [])]) for n in inlines(doc)]


def doc_of(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(blocks)}


def para(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


# --- wiki -----------------------------------------------------------------------------------------


def test_wiki_inline_marks() -> None:
    doc = from_wiki("*b* _i_ -s- +u+ ^sup^ ~sub~ {{code}} ??cite??")
    assert marked(doc) == [
        ("b", ["strong"]),
        (" ", []),
        ("i", ["em"]),
        (" ", []),
        ("s", ["strike"]),
        (" ", []),
        ("u", ["underline"]),
        (" ", []),
        ("sup", ["sup"]),
        (" ", []),
        ("sub", ["sub"]),
        (" ", []),
        ("code", ["code"]),
        (" ", []),
        ("cite", ["em"]),
    ]


@pytest.mark.parametrize(
    "raw",
    ["2*3*4", "well-known e-mail", "a * b * c", "snake_case_name", "x^2 and y~3", "*unclosed bold", "_a"],
)
def test_wiki_markers_inside_words_or_unbalanced_stay_text(raw: str) -> None:
    assert marked(from_wiki(raw)) == [(raw, [])]


def test_wiki_braced_markers_work_inside_words() -> None:
    assert marked(from_wiki("a{*}b{*}c")) == [("a", []), ("b", ["strong"]), ("c", [])]
    assert "{*}" in to_wiki(from_wiki("a{*}b{*}c"))


def test_wiki_mentions_server_and_cloud() -> None:
    doc = from_wiki("[~jdoe] and [~accountid:557058:0f1e-22]")
    assert inlines(doc)[0]["attrs"]["username"] == "jdoe"
    assert inlines(doc)[2]["attrs"]["account_id"] == "557058:0f1e-22"
    assert to_wiki(doc) == "[~jdoe] and [~accountid:557058:0f1e-22]"


def test_wiki_panels_and_macros() -> None:
    for macro, kind in [("info", "info"), ("note", "note"), ("warning", "warning"), ("tip", "success")]:
        doc = from_wiki("{" + macro + "}\nbody\n{" + macro + "}")
        assert doc["content"][0]["type"] == "panel"
        assert doc["content"][0]["attrs"]["kind"] == kind
    titled = from_wiki("{panel:title=Heads up|bgColor=#ffebe6}\nbody\n{panel}")
    panel = titled["content"][0]
    assert panel["attrs"]["kind"] == "error"
    assert plain_text(titled).split() == ["Heads", "up", "body"]


def test_wiki_code_without_close_runs_to_the_end() -> None:
    doc = from_wiki("before\n{code:python}\nx = 1\nnever closed *bold*")
    assert [b["type"] for b in doc["content"]] == ["paragraph", "code_block"]
    assert doc["content"][1]["attrs"]["language"] == "python"
    assert doc["content"][1]["content"][0]["text"] == "x = 1\nnever closed *bold*"


def test_wiki_lists_tables_headings() -> None:
    doc = from_wiki("h3. Title\n* a\n*# b\n*# c\n* d\n\n||h||i||\n|1|[x|https://e.io]|")
    kinds = [b["type"] for b in doc["content"]]
    assert kinds == ["heading", "bullet_list", "table"]
    inner = doc["content"][1]["content"][0]["content"][1]
    assert inner["type"] == "ordered_list" and len(inner["content"]) == 2
    header = doc["content"][2]["content"][0]["content"][0]
    assert header["attrs"]["header"] is True
    link = doc["content"][2]["content"][1]["content"][1]["content"][0]["content"][0]
    assert link["marks"] == [{"type": "link", "attrs": {"href": "https://e.io"}}]


def test_wiki_escapes_literal_markup() -> None:
    literal = para({"type": "text", "text": "*not bold* [x|y] {code} -5 | a\\b h1. ?? !img!"})
    doc = doc_of(literal)
    wiki = to_wiki(doc)
    assert "\\*not bold\\*" in wiki
    assert from_wiki(wiki) == doc
    line_start = doc_of(
        para({"type": "text", "text": "* not a list"}), para({"type": "text", "text": "h1. no"})
    )
    assert from_wiki(to_wiki(line_start)) == line_start


def test_wiki_drops_colour_and_unsafe_links() -> None:
    assert plain_text(from_wiki("{color:red}red{color} text")) == "red text"
    assert marked(from_wiki("[click|javascript:alert(1)]")) == [("click", [])]


# --- markdown -------------------------------------------------------------------------------------


def test_markdown_mentions_need_a_word_boundary() -> None:
    doc = from_markdown("cc @octo-cat, mail a@b.io or \\@escaped")
    kinds = [n["type"] for n in inlines(doc)]
    assert kinds == ["text", "mention", "text"]
    assert inlines(doc)[1]["attrs"]["username"] == "octo-cat"
    assert "a@b.io or @escaped" in inlines(doc)[2]["text"]


def test_markdown_html_is_text_but_formatting_tags_are_marks() -> None:
    block = from_markdown("<div onclick=x>\n<script>alert(1)</script>\n</div>")
    assert plain_text(block) == "<div onclick=x>\n<script>alert(1)</script>\n</div>"
    doc = from_markdown("x <script>alert(1)</script> H<sub>2</sub>O <ins>u</ins> <b>unclosed")
    assert marked(doc) == [
        ("x <script>alert(1)</script> H", []),
        ("2", ["sub"]),
        ("O ", []),
        ("u", ["underline"]),
        (" <b>unclosed", []),
    ]
    out = to_markdown(doc)
    assert "\\<script>" in out and "<sub>2</sub>" in out


def test_markdown_alerts_are_panels_and_back() -> None:
    doc = from_markdown("> [!CAUTION]\n> Do not **run** this")
    assert doc["content"][0]["type"] == "panel"
    assert doc["content"][0]["attrs"]["kind"] == "error"
    assert to_markdown(doc) == "> [!CAUTION]\n> Do not **run** this"
    escaped = from_markdown("> \\[!NOTE]\n> plain")
    assert escaped["content"][0]["type"] == "blockquote"


def test_markdown_lists_code_tables() -> None:
    doc = from_markdown("3. a\n4. b\n\n```js\nlet x = `y`;\n```\n\n| h | i |\n|---|---|\n| 1 | 2 |")
    assert doc["content"][0]["attrs"]["start"] == 3
    assert doc["content"][1]["attrs"]["language"] == "js"
    assert doc["content"][2]["content"][0]["content"][0]["attrs"]["header"] is True
    assert from_markdown(to_markdown(doc)) == doc


def test_markdown_newline_is_a_line_break_as_on_github() -> None:
    doc = from_markdown("one\ntwo")
    assert [n["type"] for n in inlines(doc)] == ["text", "hard_break", "text"]


def test_markdown_unsafe_links_keep_only_their_text() -> None:
    assert marked(from_markdown("[x](javascript:alert(1)) [y](data:text/html,hi)")) == [("x y", [])]


def test_markdown_escapes_literal_markup() -> None:
    doc = doc_of(para({"type": "text", "text": "1. *a* _b_ [c](d) `e` <f> # g | ~~h~~ @i &amp;"}))
    assert from_markdown(to_markdown(doc)) == doc


def test_markdown_degrades_what_it_cannot_express() -> None:
    table = {
        "type": "table",
        "content": [
            {
                "type": "table_row",
                "content": [
                    {
                        "type": "table_cell",
                        "attrs": {"header": False},
                        "content": [
                            para({"type": "text", "text": "a"}),
                            {
                                "type": "bullet_list",
                                "content": [
                                    {"type": "list_item", "content": [para({"type": "text", "text": "b"})]}
                                ],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    out = to_markdown(doc_of(table))
    assert out.splitlines()[0] == "| a<br>- b |"


# --- ADF ------------------------------------------------------------------------------------------


def test_adf_mention_panel_and_marks() -> None:
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "mention", "attrs": {"id": "557058:abc", "text": "@Ann Lee"}},
                    {"type": "text", "text": "2", "marks": [{"type": "subsup", "attrs": {"type": "sup"}}]},
                    {
                        "type": "text",
                        "text": "red",
                        "marks": [{"type": "textColor", "attrs": {"color": "#f00"}}],
                    },
                ],
            },
            {
                "type": "panel",
                "attrs": {"panelType": "success"},
                "content": [{"type": "paragraph", "content": []}],
            },
        ],
    }
    doc = from_adf(adf)
    first = doc["content"][0]["content"]
    assert first[0]["attrs"] == {
        "account_id": "557058:abc",
        "username": None,
        "email": None,
        "display_name": "Ann Lee",
    }
    assert first[1]["marks"] == [{"type": "sup"}]
    assert "marks" not in first[2]
    assert doc["content"][1] == {"type": "panel", "attrs": {"kind": "success"}, "content": []}
    back = to_adf(doc)
    assert back["content"][0]["content"][0] == {
        "type": "mention",
        "attrs": {"id": "557058:abc", "text": "@Ann Lee"},
    }
    assert back["content"][1]["content"] == [{"type": "paragraph", "content": []}]  # ADF needs content


def test_adf_rich_nodes_degrade_to_text_or_links() -> None:
    adf = {
        "type": "doc",
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "emoji", "attrs": {"shortName": ":smile:", "text": "😄"}},
                    {"type": "status", "attrs": {"text": "IN PROGRESS", "color": "blue"}},
                    {"type": "date", "attrs": {"timestamp": "1700000000000"}},
                    {"type": "inlineCard", "attrs": {"url": "https://e.io/x"}},
                ],
            },
            {
                "type": "mediaSingle",
                "content": [{"type": "media", "attrs": {"id": "f-1", "type": "file", "alt": "a.png"}}],
            },
            {
                "type": "taskList",
                "content": [
                    {
                        "type": "taskItem",
                        "attrs": {"state": "DONE"},
                        "content": [{"type": "text", "text": "ship"}],
                    }
                ],
            },
            {
                "type": "expand",
                "attrs": {"title": "More"},
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hidden"}]}],
            },
            {
                "type": "someFutureNode",
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "kept"}]}],
            },
        ],
    }
    doc = from_adf(adf)
    validate_doc(doc)
    assert (
        plain_text(doc).split()
        == "😄[IN PROGRESS]2023-11-14https://e.io/x [attachment: a.png] - [x] ship More hidden kept".split()
    )
    link = doc["content"][0]["content"][-1]
    assert link["marks"] == [{"type": "link", "attrs": {"href": "https://e.io/x"}}]


def test_adf_output_respects_the_schema() -> None:
    doc = doc_of(
        {
            "type": "blockquote",
            "content": [
                {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "H"}]}
            ],
        },
        para({"type": "text", "text": "c", "marks": [{"type": "strong"}, {"type": "code"}]}),
    )
    adf = to_adf(doc)
    assert adf["content"][0]["content"][0]["type"] == "paragraph"  # no heading inside a blockquote
    assert adf["content"][1]["content"][0]["marks"] == [{"type": "code"}]  # code takes only link beside it


@pytest.mark.parametrize("bad", [None, "text", 3, [], {"type": "paragraph"}])
def test_adf_rejects_what_is_not_a_document(bad: Any) -> None:
    if bad is None:
        assert from_adf(bad)["content"] == []
        return
    with pytest.raises(RichTextError, match="ADF"):
        from_adf(bad)


def test_adf_tolerates_garbage_inside_a_document() -> None:
    adf = {
        "type": "doc",
        "content": [None, 3, {"type": "paragraph", "content": [{"type": "text"}, "x", {}]}, {}],
    }
    assert from_adf(adf)["content"] == []


# --- writers reject invalid neutral docs -----------------------------------------------------------


@pytest.mark.parametrize("writer", [to_adf, to_wiki, to_markdown, to_html])
def test_writers_name_the_problem_in_an_invalid_doc(writer: Any) -> None:
    with pytest.raises(InvalidMessage, match="heading level"):
        writer(doc_of({"type": "heading", "attrs": {"level": 9}, "content": []}))


# --- HTML -----------------------------------------------------------------------------------------


def test_html_escapes_everything_and_drops_unsafe_links() -> None:
    doc = doc_of(
        para(
            {"type": "text", "text": '<script>x</script> & "q"'},
            {
                "type": "text",
                "text": "bad",
                "marks": [{"type": "link", "attrs": {"href": "javascript:alert(1)"}}],
            },
            {
                "type": "text",
                "text": "good",
                "marks": [{"type": "link", "attrs": {"href": 'https://e.io/?a="b"'}}],
            },
        )
    )
    html = to_html(doc)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert 'href="https://e.io/?a=&quot;b&quot;"' in html


def test_html_structure() -> None:
    doc = from_markdown(
        "# T\n\n- a\n\n5. b\n\n> [!NOTE]\n> n\n\n| h |\n|---|\n| c |\n\n```py\n<x>\n```\n\ncc @me"
    )
    html = to_html(doc)
    for fragment in [
        "<h1>T</h1>",
        "<ul><li><p>a</p></li></ul>",
        '<ol start="5">',
        '<div class="panel panel-info">',
        "<th><p>h</p></th>",
        '<pre><code class="language-py">&lt;x&gt;</code></pre>',
        '<span class="mention">@me</span>',
    ]:
        assert fragment in html


def test_plain_text_documents_convert_everywhere() -> None:
    doc = from_plain_text("Hello *world*\nsecond line\n\nnew paragraph")
    assert from_wiki(to_wiki(doc)) == doc
    assert from_markdown(to_markdown(doc)) == doc
    assert from_adf(to_adf(doc)) == doc
