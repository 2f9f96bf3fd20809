"""The fast paths of normalisation and wiki escaping give exactly what the general rules give."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.richtext.adf as adf_module
import node.richtext.markdown as markdown_module
import node.richtext.wiki as wiki_module
from node.richtext.adf import from_adf, to_adf, to_adf_canonical
from node.richtext.markdown import from_markdown, to_markdown
from node.richtext.normalize import (
    _normalize_inlines,
    _plain_run,
    canonical,
    canonical_inlines,
    is_canonical,
    normalize,
    normalize_inlines,
)
from node.richtext.wiki import (
    _SPECIAL,
    _escape_chars,
    _inline,
    _InlineParser,
    _parse_wiki,
    from_wiki,
    to_wiki,
    to_wiki_canonical,
)

from .strategies import docs

edges = st.none() | st.sampled_from([" ", "a", "*", "?", "!", "#", "\n"])
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    ["plain words", " lead", "trail ", "a\nb", "tab\tin", "x\x00y", "", "\u00a0nbsp", "end\u2028"]
)


@settings(max_examples=500, deadline=None)
@given(texts, edges, edges)
def test_text_without_special_characters_needs_no_escape(value: str, before: Any, after: Any) -> None:
    if _SPECIAL.search(value) is None:
        assert _escape_chars(value, before, after) == value


text_nodes = st.builds(
    lambda t, marks: {"type": "text", "text": t, **marks},
    texts,
    st.sampled_from([{}, {"marks": []}, {"marks": None}, {"marks": [{"type": "strong"}]}]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(text_nodes | st.just({"type": "hard_break"}) | st.just("junk"), max_size=5))
def test_a_plain_run_normalises_as_the_general_rules_do(nodes: list[Any]) -> None:
    fast = _plain_run(nodes)
    if fast is not None:
        assert fast == _normalize_inlines(nodes)
    assert normalize_inlines(nodes) == _normalize_inlines(nodes)


def text_nodes(
    words: st.SearchStrategy[str], marks: list[dict[str, Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Text nodes of ``words``, each with one of the ``marks`` choices (in the order given)."""
    return st.builds(lambda t, m: {"type": "text", "text": t, **m}, words, st.sampled_from(marks))


MARKS: list[dict[str, Any]] = [
    {},
    {"marks": [{"type": "strong"}]},
    {"marks": [{"type": "em"}, {"type": "strong"}]},
    {"marks": [{"type": "strong"}, {"type": "em"}]},
    {"marks": [{"type": "link", "attrs": {"href": "https://x.example"}}]},
    {"marks": [{"type": "code"}]},
    {"marks": [{"type": "sub"}, {"type": "sup"}]},
]
inline_nodes = text_nodes(texts | st.sampled_from(["a", "b c", " "]), MARKS) | st.just({"type": "hard_break"})


@settings(max_examples=1000, deadline=None)
@given(st.lists(inline_nodes, max_size=6) | st.lists(inline_nodes, max_size=6).map(normalize_inlines))
def test_inline_runs_are_kept_as_they_are_only_when_normalising_would_keep_them(nodes: list[Any]) -> None:
    assert canonical_inlines(copy.deepcopy(nodes)) == normalize_inlines(nodes)


def test_the_common_comment_takes_the_fast_paths_and_round_trips() -> None:
    nodes = [{"type": "text", "text": "Comment 3 on issue 12: it still fails."}]
    assert _plain_run(nodes) == nodes
    doc = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": nodes}]}
    assert to_wiki(doc) == "Comment 3 on issue 12: it still fails."
    assert from_wiki(to_wiki(doc)) == doc
    assert (
        to_wiki(
            {
                "type": "doc",
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "# no list"}]}],
            }
        )
        == "\\# no list"
    )


plain_wiki = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\\&{}*_-+^~?[]|!#\n\r"), max_size=40
) | st.sampled_from(["h1. title", "bq. quote", "h7. no", "  spaced  ", "\t", "bq.", "h2.", "a\u2028b"])


@settings(max_examples=500, deadline=None)
@given(plain_wiki)
def test_markup_free_text_reads_as_the_parser_reads_it(markup: str) -> None:
    assert from_wiki(markup) == _parse_wiki(markup)


# Raw inline content as anyone may send it: edge and inner spaces, newlines and controls, marks in
# any order, repeated or unsafe, neighbours that merge, breaks anywhere.
raw_marks = st.lists(
    st.sampled_from(
        [
            {"type": "strong"},
            {"type": "em"},
            {"type": "code"},
            {"type": "sub"},
            {"type": "sup"},
            {"type": "strike"},
            {"type": "link", "attrs": {"href": "https://a.example/x"}},
            {"type": "link", "attrs": {"href": "https://b.example/y", "title": "t"}},
            {"type": "link", "attrs": {"href": "javascript:alert(1)"}},
            {"type": "strong", "attrs": {}},
            {"type": "bogus"},
        ]
    ),
    max_size=3,
)
raw_texts = st.sampled_from(["a", "b c", " lead", "trail ", " ", "x\ny", "t\tab", "\x01", "", "\u00a0z"])
raw_inline = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, raw_texts),
    st.builds(lambda t, m: {"type": "text", "text": t, "marks": m}, raw_texts, raw_marks),
    st.just({"type": "hard_break"}),
    st.just({"type": "hard_break", "attrs": {}}),
    st.just({"type": "mention", "attrs": {"username": "u"}}),
    st.just({"type": "text", "text": 5}),
)
raw_block = st.one_of(
    st.builds(lambda c: {"type": "paragraph", "content": c}, st.lists(raw_inline, max_size=5)),
    st.builds(
        lambda level, c: {"type": "heading", "attrs": {"level": level}, "content": c},
        st.sampled_from([0, 1, 3, 6, 7, True]),
        st.lists(raw_inline, max_size=4),
    ),
    st.just({"type": "rule"}),
    st.just({"type": "rule", "content": []}),
    st.just({"type": "code_block", "attrs": {"language": None}, "content": [{"type": "text", "text": "x"}]}),
)
raw_docs = st.builds(
    lambda c, version: {"type": "doc", "version": version, "content": c},
    st.lists(raw_block, max_size=4),
    st.sampled_from([1, 1, 1, 2, True]),
)


@settings(max_examples=200, deadline=None)
@given(raw_docs | st.builds(normalize, raw_docs) | docs("wiki") | docs("adf"))
def test_a_doc_is_called_canonical_only_when_normalising_leaves_it_as_it_is(doc: dict[str, Any]) -> None:
    if is_canonical(doc):
        assert normalize(doc) == doc


@settings(max_examples=150, deadline=None)
@given(raw_docs)
def test_the_common_shapes_are_recognised_once_normalised(doc: dict[str, Any]) -> None:
    """The check is not merely safe but useful: a normalised doc of paragraphs, headings and rules,
    holding text and breaks without tabs, is recognised."""
    canon = normalize(doc)
    inlines = [i for b in canon["content"] for i in b.get("content", [])]
    if all(i["type"] != "mention" and "\t" not in i.get("text", "") for i in inlines) and all(
        b["type"] != "code_block" for b in canon["content"]
    ):
        assert is_canonical(canon)


def test_renderers_give_the_same_text_for_a_canonical_doc_and_keep_it_unchanged() -> None:
    header = {
        "type": "paragraph",
        "content": [
            {"type": "text", "text": "Jane Agent", "marks": [{"type": "strong"}]},
            {"type": "text", "text": " (via A) wrote:"},
        ],
    }
    body = [{"type": "paragraph", "content": [{"type": "text", "text": "Comment 0: it still fails."}]}]
    doc = {"type": "doc", "version": 1, "content": [header, *body]}
    before = copy.deepcopy(doc)
    assert is_canonical(doc)
    text, canon = to_wiki_canonical(doc)
    assert canon is doc and doc == before  # no second tree, nothing changed in place
    assert text == "*Jane Agent* (via A) wrote:\n\nComment 0: it still fails."
    assert to_adf_canonical(doc)[1] is doc and canonical(doc) is doc
    # Not canonical (edge space in a strong run, unsorted marks): normalised as before.
    odd = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [{"type": "text", "text": "Jane ", "marks": [{"type": "em"}, {"type": "strong"}]}],
            }
        ],
    }
    assert not is_canonical(odd)
    assert to_wiki_canonical(odd)[1] == normalize(odd) == canonical(odd) != odd
    inner_space = [
        {"type": "text", "text": "a ", "marks": [{"type": "strong"}]},
        {"type": "text", "text": "b"},
    ]
    merging = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    for content in (inner_space, merging):
        odd = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": content}]}
        assert not is_canonical(odd) and normalize(odd) != odd


markup_wiki = st.lists(
    st.sampled_from([*"ab \t\n\r*_-+^~?{}[]|!#\\&;:.h1q\u00a0", "{{", "}}", "[~jane]", "{code}", "{quote}"]),
    max_size=40,
).map("".join) | st.builds(to_wiki, docs("wiki"))
# parses whose blocks only normalisation makes canonical (an empty heading or quote, a ragged table)
markup_wiki |= st.sampled_from(["h1.", "x\nbq.", "|a|\n|b|c|", "h2. *b*\n|x|"])


markup_md = st.lists(
    st.sampled_from([*"ab \t\n*_`~#>-+[]()!|\\&<.1", "**", "```", "- ", "1. ", "> ", "[x](y)", "@jane"]),
    max_size=40,
).map("".join) | st.builds(to_markdown, docs("markdown"))
raw_adf = st.builds(to_adf, docs("adf")) | st.builds(
    lambda content: {"type": "doc", "version": 1, "content": content},
    st.lists(
        st.builds(
            lambda texts: {"type": "paragraph", "content": texts},
            st.lists(text_nodes(texts | st.sampled_from([" a ", "b", "\n"]), MARKS[:3]), max_size=4),
        ),
        max_size=3,
    ),
)


@contextlib.contextmanager
def full_normalisation(module: Any) -> Iterator[None]:
    """Every shortcut of a reader replaced by full normalisation."""
    saved = {
        name: getattr(module, name)
        for name in ("canonical_doc", "canonical_inlines")
        if hasattr(module, name)
    }
    module.canonical_doc = lambda blocks: normalize({"type": "doc", "content": blocks})
    if "canonical_inlines" in saved:
        module.canonical_inlines = normalize_inlines
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


@settings(max_examples=200, deadline=None)
@given(st.data())
@pytest.mark.parametrize("fmt", ["wiki", "markdown", "adf"])
def test_readers_keep_only_what_normalising_would_leave_as_it_is(fmt: str, data: st.DataObject) -> None:
    # A reader hands back its own inline runs and doc when they are canonical already; with every
    # shortcut replaced by full normalisation the answer must be the same, and canonical; and what
    # one call returns shares nothing with what another returns.
    module, read, source = {
        "wiki": (wiki_module, from_wiki, markup_wiki),
        "markdown": (markdown_module, from_markdown, markup_md),
        "adf": (adf_module, from_adf, raw_adf),
    }[fmt]
    value = data.draw(source)
    fast = read(value)
    with full_normalisation(module):
        slow = read(value)
    assert fast == slow == normalize(fast)
    kept = copy.deepcopy(fast)
    _scribble(fast)
    assert read(value) == kept


def _scribble(node: Any) -> None:
    """Change every dict and list of a tree in place."""
    if isinstance(node, dict):
        for child in list(node.values()):
            _scribble(child)
        node["scribbled"] = True
    elif isinstance(node, list):
        for child in list(node):
            _scribble(child)
        node.append("scribbled")


@settings(max_examples=500, deadline=None)
@given(markup_wiki | texts)
def test_a_paragraph_without_inline_markup_reads_as_the_inline_parser_reads_it(src: str) -> None:
    assert _inline(src) == _InlineParser(src).parse()
