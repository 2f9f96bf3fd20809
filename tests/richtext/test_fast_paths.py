"""The fast paths of normalisation and wiki escaping give exactly what the general rules give."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.richtext.normalize import _normalize_inlines, _plain_run, normalize_inlines
from node.richtext.wiki import _SPECIAL, _escape_chars, _parse_wiki, from_wiki, to_wiki

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
