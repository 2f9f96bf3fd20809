"""The memo of Jira text → neutral doc (node.trackers.jira.markup.DOC_CACHE): a cached read equals a
fresh one, priming on write is only done where the round trip is exact, and the memo stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from node.richtext.adf import from_adf, to_adf
from node.richtext.normalize import normalize
from node.richtext.wiki import from_wiki, to_wiki
from node.trackers.base import IssueUpdate
from node.trackers.jira.markup import DOC_CACHE, DocCache, from_native, primable, to_native
from protocol.errors import InvalidMessage
from protocol.richtext import empty_doc, from_plain_text, validate_doc

from ..richtext.strategies import docs
from .conftest import PROJECT, Site

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANY_TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20) | st.sampled_from(
    [
        "h1. x",
        "bq. y",
        "* item",
        "# one",
        "----",
        "{code}x{code}",
        "a\nb",
        " lead",
        "x\r\ny",
        "[~ann]",
        "{{m}}",
    ]
)
MARK = st.sampled_from(["strong", "em", "code", "strike", "underline", "sub", "sup"])
INLINE = st.one_of(
    st.builds(
        lambda t, ms, href: {
            "type": "text",
            "text": t,
            "marks": [{"type": m} for m in ms]
            + ([{"type": "link", "attrs": {"href": href}}] if href else []),
        },
        ANY_TEXT,
        st.lists(MARK, max_size=2, unique=True),
        st.none() | st.sampled_from(["https://x.example/a?b=(1)", "http://y.example/"]),
    ),
    st.just({"type": "hard_break"}),
)
BLOCK = st.one_of(
    st.builds(lambda c: {"type": "paragraph", "content": c}, st.lists(INLINE, min_size=1, max_size=5)),
    st.builds(
        lambda lvl, c: {"type": "heading", "attrs": {"level": lvl}, "content": c},
        st.integers(1, 6),
        st.lists(INLINE, min_size=1, max_size=3),
    ),
    st.just({"type": "rule"}),
)
# Primable-shaped docs over all of Unicode (the round-trip strategies use a smaller alphabet).
WIDE_DOCS = st.builds(
    lambda c: normalize({"type": "doc", "version": 1, "content": c}), st.lists(BLOCK, max_size=4)
)

# The same shapes before normalisation (what a rule script or a peer may hand the adapter).
RAW_DOCS = st.builds(lambda c: {"type": "doc", "version": 1, "content": c}, st.lists(BLOCK, max_size=4))


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    DOC_CACHE.clear()
    yield
    DOC_CACHE.clear()


@PROPERTY
@given(WIDE_DOCS | docs("wiki") | docs("adf"))
def test_a_primable_doc_reads_back_exactly_from_both_formats(doc: dict[str, Any]) -> None:
    if primable(doc, "wiki"):
        assert from_wiki(to_wiki(doc)) == doc
    if primable(doc, "adf"):
        assert from_adf(to_adf(doc)) == doc


@PROPERTY
@given(WIDE_DOCS | RAW_DOCS | docs("wiki") | docs("adf"), st.sampled_from(["wiki", "adf"]))
def test_after_a_write_reading_the_text_equals_an_uncached_read(doc: dict[str, Any], fmt: Any) -> None:
    DOC_CACHE.clear()
    try:
        validate_doc(doc)
    except InvalidMessage:
        assume(False)
    native = to_native(doc, fmt)
    cached = from_native(native)
    DOC_CACHE.clear()
    assert cached == from_native(native)
    assert from_native(native) == cached  # and the second, cached, read too


@PROPERTY
@given(ANY_TEXT | st.text(st.sampled_from(list("ab *_-+{}[]|!#\n\\h1.bq")), max_size=40))
def test_a_cached_wiki_read_equals_a_fresh_one(text: str) -> None:
    DOC_CACHE.clear()
    first = from_native(text)
    assert from_native(text) == first
    DOC_CACHE.clear()
    assert from_native(text) == first


def test_writing_primes_the_read_of_a_proven_doc() -> None:
    doc = normalize(
        {
            "type": "doc",
            "content": [
                {
                    "type": "paragraph",
                    "content": [{"type": "text", "text": "see *this*", "marks": [{"type": "em"}]}],
                }
            ],
        }
    )
    assert primable(doc, "wiki")
    text = to_native(doc, "wiki")
    assert DOC_CACHE.stats.primed == 1
    assert from_native(text) == doc
    assert (DOC_CACHE.stats.hits, DOC_CACHE.stats.misses) == (1, 0)


def test_a_doc_whose_round_trip_may_change_is_not_primed_but_cached_on_first_read() -> None:
    mention = {
        "type": "mention",
        "attrs": {"account_id": "557058:f00", "username": None, "email": None, "display_name": "Ann Lee"},
    }
    doc = normalize({"type": "doc", "content": [{"type": "paragraph", "content": [mention]}]})
    assert not primable(doc, "wiki")
    text = to_native(doc, "wiki")
    assert DOC_CACHE.stats.primed == 0
    read = from_native(text)
    assert read != doc  # wiki mentions do not carry the display name: priming would have lied
    assert from_native(text) == read
    assert (DOC_CACHE.stats.hits, DOC_CACHE.stats.misses) == (1, 1)


def test_mutating_a_returned_doc_does_not_change_the_next_read() -> None:
    adf = to_adf(from_plain_text("hello world"))
    for value in ("hello *world*", adf):
        first = from_native(value)
        assert first is not None
        first["content"][0]["content"][0]["text"] = "changed"
        first["content"].append({"type": "rule"})
        again = from_native(value)
        DOC_CACHE.clear()
        assert again == from_native(value)


def test_the_memo_is_bounded_by_entries_and_by_bytes() -> None:
    small = DocCache(max_entries=3, max_bytes=10_000)
    for n in range(5):
        small.put(("wiki", f"t{n}"), from_plain_text(f"t{n}"))
    assert len(small) == 3
    assert small.get(("wiki", "t0")) is None and small.get(("wiki", "t4")) is not None
    small.get(("wiki", "t2"))  # used recently: survives the next insertion
    small.put(("wiki", "t5"), from_plain_text("t5"))
    assert small.get(("wiki", "t2")) is not None and small.get(("wiki", "t3")) is None

    tight = DocCache(max_entries=100, max_bytes=2_000, max_item=1_000)
    tight.put(("wiki", "x" * 2_000), from_plain_text("x" * 2_000))  # one item over max_item: not kept
    assert len(tight) == 0
    for n in range(20):
        text = f"{n:03d}" + "y" * 200
        tight.put(("wiki", text), from_plain_text(text))
    assert tight.stats.size <= 2_000 and 0 < len(tight) < 20


def test_odd_values_are_read_without_caching_failures() -> None:
    DOC_CACHE.clear()
    # orjson cannot write 2**70: the value is still read, and nothing is kept for it
    assert from_native({"type": "doc", "content": [{"type": "paragraph", "content": [{"text": 2**70}]}]})
    assert len(DOC_CACHE) == 0
    assert from_native(12) == from_plain_text("12")
    assert from_native("") == empty_doc()


async def test_issue_read_after_adding_comments_equals_an_uncached_read(site: Site) -> None:
    snap = await site.admin.create_issue(
        PROJECT,
        IssueUpdate(summary="memo", description=from_native("Steps: open *settings*, press {{Save}}.")),
    )
    bodies = ["plain words", "with *bold* and {{code}}", "h2. a heading\n\nthen text", "* a list\n* of two"]
    for body in bodies:
        await site.admin.add_comment(snap.key, from_native(body) or from_plain_text(body))
    hits_before = DOC_CACHE.stats.hits
    cached = await site.admin.get_issue(snap.key)
    assert DOC_CACHE.stats.hits > hits_before
    DOC_CACHE.clear()
    fresh = await site.admin.get_issue(snap.key)
    assert DOC_CACHE.stats.hits == 0
    assert cached == fresh
    assert [c.body for c in cached.comments] == [c.body for c in fresh.comments]
