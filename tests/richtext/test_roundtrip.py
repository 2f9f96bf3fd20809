"""Round trips: neutral -> format -> neutral is lossless for what the format can express, and
format -> neutral -> format is stable after one normalisation for real inputs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.richtext import normalize
from node.richtext.adf import from_adf, to_adf
from node.richtext.markdown import from_markdown, to_markdown
from node.richtext.wiki import from_wiki, to_wiki
from protocol.richtext import plain_text, validate_doc

from .strategies import docs

FORMATS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "adf": (to_adf, from_adf),
    "wiki": (to_wiki, from_wiki),
    "markdown": (to_markdown, from_markdown),
}
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def t(value: str, *marks: str, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    ms: list[dict[str, Any]] = [{"type": m} for m in marks]
    if href is not None:
        ms.insert(0, {"type": "link", "attrs": {"href": href}})
    if ms:
        node["marks"] = ms
    return node


def p(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def item(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "list_item", "content": list(blocks)}


def cell(header: bool, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "table_cell", "attrs": {"header": header}, "content": list(blocks)}


def mention(**attrs: str) -> dict[str, Any]:
    full = {"account_id": None, "username": None, "email": None, "display_name": None}
    full.update(attrs)
    return {"type": "mention", "attrs": full}


def corpus(user: dict[str, Any], start: int) -> dict[str, Any]:
    """One doc with every common construct, and text full of markup characters."""
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [t("Release *plan* (v2) #1")]},
            p(
                t("Bold", "strong"),
                t(" "),
                t("it", "em"),
                t(" "),
                t("gone", "strike"),
                t(" "),
                t("under", "underline"),
                t(" H"),
                t("2", "sub"),
                t("O x"),
                t("2", "sup"),
                t(" "),
                t("a*b_c [d] {e} |f| <g> `h` \\i ~j^ @k &amp; 2*3 snake_case well-known"),
            ),
            p(
                t("see "),
                t("the docs", href="https://example.com/a?b=1&c=(2)"),
                t(" and "),
                t("x = 1", "code"),
            ),
            p(t("ping "), user, t(" please"), {"type": "hard_break"}, t("next line")),
            {
                "type": "bullet_list",
                "content": [
                    item(
                        p(t("one")),
                        {
                            "type": "ordered_list",
                            "attrs": {"start": start},
                            "content": [item(p(t("nested a"))), item(p(t("nested b")))],
                        },
                    ),
                    item(p(t("two"))),
                ],
            },
            {
                "type": "code_block",
                "attrs": {"language": "python"},
                "content": [t('print("*not bold*")\n  x = [1]')],
            },
            {"type": "blockquote", "content": [p(t("quoted "), t("text", "strong"))]},
            {"type": "panel", "attrs": {"kind": "warning"}, "content": [p(t("Careful now"))]},
            {"type": "rule"},
            {
                "type": "table",
                "content": [
                    {"type": "table_row", "content": [cell(True, p(t("Name"))), cell(True, p(t("Value")))]},
                    {
                        "type": "table_row",
                        "content": [cell(False, p(t("a|b"))), cell(False, p(t("2", "code")))],
                    },
                ],
            },
        ],
    }


CORPUS = {
    "adf": corpus(mention(account_id="557058:f00", display_name="Ann Lee"), 3),
    "wiki": corpus(mention(username="ann.lee"), 1),
    "markdown": corpus(mention(username="ann-lee"), 3),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_corpus_round_trips(fmt: str) -> None:
    to, back = FORMATS[fmt]
    doc = normalize(CORPUS[fmt])
    validate_doc(doc)
    assert back(to(doc)) == doc


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_corpus_output_is_stable(fmt: str) -> None:
    to, back = FORMATS[fmt]
    once = to(CORPUS[fmt])
    assert to(back(once)) == once


@PROPERTY
@given(docs("adf"))
def test_adf_round_trip_property(doc: dict[str, Any]) -> None:
    assert from_adf(to_adf(doc)) == doc


@PROPERTY
@given(docs("wiki"))
def test_wiki_round_trip_property(doc: dict[str, Any]) -> None:
    assert from_wiki(to_wiki(doc)) == doc


@PROPERTY
@given(docs("markdown"))
def test_markdown_round_trip_property(doc: dict[str, Any]) -> None:
    assert from_markdown(to_markdown(doc)) == doc


@PROPERTY
@given(docs("adf"))
def test_normalize_is_idempotent_and_valid(doc: dict[str, Any]) -> None:
    validate_doc(doc)
    assert normalize(doc) == doc


@PROPERTY
@given(docs("adf"))
def test_every_doc_survives_every_format_as_readable_text(doc: dict[str, Any]) -> None:
    """Even where a format cannot express a construct, its words are not lost."""
    words = Counter(w for w in plain_text(doc).split() if w.isalnum())
    for fmt in ("wiki", "markdown"):
        to, back = FORMATS[fmt]
        again = back(to(doc))
        validate_doc(again)
        got = Counter(w for w in plain_text(again).split() if w.isalnum())
        assert got >= Counter({w: 1 for w in words}) or not words, fmt


# --- real inputs ----------------------------------------------------------------------------------


def _kinds(node: Any, out: Counter[str]) -> Counter[str]:
    if isinstance(node, dict):
        out[str(node.get("type"))] += 1
        for m in node.get("marks") or []:
            out["mark:" + str(m.get("type"))] += 1
        for child in node.get("content") or []:
            _kinds(child, out)
    return out


def _adf_text(node: Any) -> str:
    if isinstance(node, dict):
        own = node.get("text") if node.get("type") == "text" else ""
        return str(own or "") + "".join(_adf_text(c) for c in node.get("content") or [])
    return ""


def test_real_adf_document_keeps_every_common_construct(vendor_data: Path) -> None:
    raw = json.loads((vendor_data / "dev/adf/jira-cli-md.adf.json").read_text())
    doc = from_adf(raw)
    validate_doc(doc)
    again = to_adf(doc)
    before, after = _kinds(raw, Counter()), _kinds(again, Counter())
    common = [
        "heading",
        "paragraph",
        "bulletList",
        "orderedList",
        "listItem",
        "codeBlock",
        "blockquote",
        "panel",
        "table",
        "tableRow",
        "tableHeader",
        "tableCell",
        "mention",
        "mark:strong",
        "mark:em",
        "mark:underline",
        "mark:code",
        "mark:strike",
    ]
    for kind in common:
        assert after[kind] == before[kind], kind
    # the source ends a paragraph with a hard break, which renders as nothing and is dropped
    assert after["hardBreak"] == before["hardBreak"] - 1
    # inlineCard degrades to a link whose text is the URL: one more link mark, same words
    assert after["mark:link"] == before["mark:link"] + before["inlineCard"]
    url = "https://antiklabs.atlassian.net/wiki/spaces/ANK/pages/124234/hello-world"
    assert _adf_text(again).replace(url, "").split() == _adf_text(raw).split()
    assert from_adf(again) == doc


def test_real_adf_document_through_wiki_equals_direct_conversion(vendor_data: Path) -> None:
    raw = json.loads((vendor_data / "dev/adf/jira-cli-md.adf.json").read_text())
    doc = from_adf(raw)
    # wiki mentions carry the account id, not the display name (Jira Cloud's [~accountid:...])
    expected = json.loads(json.dumps(doc).replace('"display_name": "Person A"', '"display_name": null'))
    assert from_wiki(to_wiki(doc)) == expected


def _webhook_texts(vendor_data: Path) -> list[str]:
    texts: list[str] = []
    for path in sorted((vendor_data / "dev/jira-webhooks").glob("*.json")):
        body = json.loads(path.read_text())
        comment = body.get("comment") or {}
        fields = (body.get("issue") or {}).get("fields") or {}
        for value in (comment.get("body"), fields.get("description")):
            if isinstance(value, str):
                texts.append(value)
        for change in (body.get("changelog") or {}).get("items") or []:
            if change.get("field") == "description" and isinstance(change.get("toString"), str):
                texts.append(change["toString"])
    return texts


def test_real_webhook_wiki_bodies(vendor_data: Path) -> None:
    texts = _webhook_texts(vendor_data)
    assert len(texts) >= 9
    for raw in texts:
        doc = from_wiki(raw)
        validate_doc(doc)
        assert plain_text(doc).split() == raw.replace("[~user]", "@user").split()
        once = to_wiki(doc)
        assert to_wiki(from_wiki(once)) == once
    mention_doc = from_wiki("Added a comment with mentioned user [~user]")
    assert mention_doc["content"][0]["content"][-1] == mention(username="user")


def test_real_github_issue_bodies_are_stable(vendor_data: Path) -> None:
    bodies = []
    for path in sorted((vendor_data / "dev/github-webhooks").rglob("*.json")):
        body = json.loads(path.read_text())
        for key in ("issue", "comment"):
            text = (body.get(key) or {}).get("body")
            if isinstance(text, str) and text:
                bodies.append(text)
    assert bodies
    for raw in bodies:
        doc = from_markdown(raw)
        validate_doc(doc)
        once = to_markdown(doc)
        assert to_markdown(from_markdown(once)) == once


REAL_WIKI = [
    "h2. Steps\n# Open *Settings*\n# Click _Save_\n## nested {{code}}\n\n||Col||Val||\n|a|[link|https://x.io]|",
    "{code:java}\npublic class A { }\n{code}\nThen {noformat}raw *text*{noformat} after",
    "{quote}\nSomeone said -this- and +that+\n{quote}\n{info:title=FYI}\nread ^this^ and ~that~\n{info}",
    "Hi [~accountid:557058:0f1e2d3c-aaaa-bbbb] see !screenshot.png|thumbnail! and [^log.txt]",
    "{color:red}red{color} text ??citation?? and a{*}b{*}c -- em dash --- and ---- rule\n----",
    "* one\ncontinued\n* two\n\n- dash item\n\n*not a list*",
]
REAL_MARKDOWN = [
    "## Steps\n1. Open **Settings**\n2. Click _Save_\n   - nested `code`",
    "| Col | Val |\n|---|---|\n| a | [l](https://x.io) |",
    "```java\npublic class A { }\n```\nThen ~~gone~~ and <sub>2</sub> and <ins>u</ins>",
    "> [!TIP]\n> Use `make test`\n\n> plain quote\n\ncc @octocat and @hubot, mail a@b.io",
    "<details><summary>x</summary>hidden</details>\n\n<script>alert(1)</script> <b>bold</b>",
    "* [ ] task\n* [x] done\n\n![img](https://x.io/a.png) and https://bare.link",
    "Line one\nLine two  \nLine three\\\nend",
]


@pytest.mark.parametrize("raw", REAL_WIKI)
def test_wiki_output_is_stable_after_one_normalisation(raw: str) -> None:
    once = to_wiki(from_wiki(raw))
    assert to_wiki(from_wiki(once)) == once


@pytest.mark.parametrize("raw", REAL_MARKDOWN)
def test_markdown_output_is_stable_after_one_normalisation(raw: str) -> None:
    once = to_markdown(from_markdown(raw))
    assert to_markdown(from_markdown(once)) == once


ANY_TEXT = st.lists(
    st.sampled_from(
        [
            *"ab1 \n\t*_-+^~?{}[]|!\\&#<>`@=.:()/'",
            *[
                "h1. ",
                "bq. ",
                "{code}",
                "{quote}",
                "{panel:bgColor=#deebff}",
                "||",
                "[~u]",
                "```",
                "> [!NOTE]\n",
            ],
            *["1. ", "- ", "<sub>", "</sub>", "{{", "}}", "http://x.y", "{*}", "\\\\"],
        ]
    ),
    max_size=40,
).map("".join)


@PROPERTY
@given(ANY_TEXT)
def test_any_wiki_text_parses_and_is_stable(raw: str) -> None:
    doc = from_wiki(raw)
    validate_doc(doc)
    once = to_wiki(doc)
    assert to_wiki(from_wiki(once)) == once


@PROPERTY
@given(ANY_TEXT)
def test_any_markdown_text_parses_and_is_stable(raw: str) -> None:
    doc = from_markdown(raw)
    validate_doc(doc)
    once = to_markdown(doc)
    assert to_markdown(from_markdown(once)) == once


@pytest.mark.parametrize("value", ["#", "# x", "* x", "- x", "** x", "h1. x", "bq. x"])
@pytest.mark.parametrize("marks", [["strong"], ["strike"], ["strong", "em"]])
def test_formatted_text_at_a_line_start_is_not_read_back_as_a_list_or_heading(
    value: str, marks: list[str]
) -> None:
    """The markers opened at a line's start do not make it safe: ``*# x*`` is two list markers."""
    for before in ([], [{"type": "text", "text": "a"}, {"type": "hard_break"}]):
        formatted = {"type": "text", "text": value, "marks": [{"type": m} for m in marks]}
        doc = normalize(
            {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [*before, formatted]}]}
        )
        assert from_wiki(to_wiki(doc)) == doc
