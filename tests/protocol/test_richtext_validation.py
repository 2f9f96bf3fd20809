"""Rich text from the peer: ``validate_doc`` accepts exactly the trees its rules allow, and anything
else (any JSON shape at all) is an InvalidMessage naming where, never another exception."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import InvalidMessage
from protocol.messages import ReplicaMessage, decode_message, encode_message
from protocol.replica import EntityRef, Replica
from protocol.richtext import BLOCK_TYPES, INLINE_TYPES, MARK_TYPES, MAX_DEPTH, validate_doc

TYPES = [*sorted(BLOCK_TYPES | INLINE_TYPES), "doc", "nope"]
junk = st.none() | st.booleans() | st.integers(-3, 9) | st.text(max_size=3) | st.just([1]) | st.just({})
marks = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from([*sorted(MARK_TYPES), "blink"]) | junk},
        optional={"attrs": st.fixed_dictionaries({}, optional={"href": st.text(max_size=3) | junk}) | junk},
    )
    | junk,
    max_size=2,
)


def nodes(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    attrs = st.fixed_dictionaries(
        {},
        optional={
            "level": st.integers(0, 7) | junk,
            "kind": st.sampled_from(["info", "note", "other"]) | junk,
            "display_name": st.text(max_size=3) | junk,
        },
    )
    return st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES) | junk},
        optional={
            "text": st.text(max_size=3) | junk,
            "marks": marks | junk,
            "attrs": attrs | junk,
            "content": st.lists(children, max_size=3) | junk,
        },
    )


trees = st.recursive(nodes(junk) | junk, nodes, max_leaves=12)
docs = st.fixed_dictionaries(
    {"type": st.just("doc")}, optional={"version": st.just(1) | junk, "content": st.lists(trees, max_size=3)}
)


def reference(node: Any, kind: str, depth: int) -> bool:
    """The rules of protocol/richtext.py, written out plainly (slow, obviously right)."""
    if depth > MAX_DEPTH:
        return False
    attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    if kind == "text":
        ms = node.get("marks", [])
        if not isinstance(node.get("text"), str) or not isinstance(ms, list):
            return False
        for m in ms:
            if not isinstance(m, dict) or not (isinstance(m.get("type"), str) and m["type"] in MARK_TYPES):
                return False
            href = (m.get("attrs") if isinstance(m.get("attrs"), dict) else {}).get("href")
            if m["type"] == "link" and not isinstance(href, str):
                return False
    if kind == "heading" and not (isinstance(attrs.get("level"), int) and 1 <= attrs["level"] <= 6):
        return False
    if kind == "panel" and attrs.get("kind") not in ("info", "note", "warning", "success", "error"):
        return False
    if kind == "mention":
        if not isinstance(node.get("attrs"), dict):
            return False
        if any(
            node["attrs"].get(k) is not None and not isinstance(node["attrs"][k], str)
            for k in node["attrs"]
            if k in ("account_id", "username", "email", "display_name")
        ):
            return False
    content = node.get("content", [])
    if not isinstance(content, list):
        return False
    from protocol.richtext import _CHILDREN

    for child in content:
        if not isinstance(child, dict) or not isinstance(child.get("type"), str):
            return False
        if child["type"] not in _CHILDREN[kind] or not reference(child, child["type"], depth + 1):
            return False
    return True


@settings(max_examples=1500, deadline=None)
@given(docs)
def test_validate_doc_accepts_exactly_the_valid_trees(doc: dict[str, Any]) -> None:
    version = doc.get("version", 1)
    expected = isinstance(version, int) and version >= 1 and reference(doc, "doc", 0)
    try:
        assert validate_doc(doc) is doc
        accepted = True
    except InvalidMessage as exc:
        assert str(exc).startswith("rich text: ")
        accepted = False
    assert accepted == expected, doc


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"type": "doc", "content": [{"type": [1]}]}, "'[1]' not allowed inside 'doc' at $.content[0]"),
        (
            {
                "type": "doc",
                "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "x", "marks": [{"type": {}}]}]}
                ],
            },
            "unknown mark at $.content[0].content[0]",
        ),
        (
            {"type": "doc", "content": [{"type": "heading", "attrs": [1]}]},
            "heading level must be 1..6 at $.content[0]",
        ),
        ({"type": "doc", "content": [{"type": "panel", "attrs": {"kind": ["info"]}}]}, "panel kind"),
        (
            {
                "type": "doc",
                "content": [
                    {
                        "type": "paragraph",
                        "content": [{"type": "text", "text": "x", "marks": [{"type": "link", "attrs": "u"}]}],
                    }
                ],
            },
            "link mark without href at $.content[0].content[0]",
        ),
        (
            {
                "type": "doc",
                "content": [
                    {
                        "type": "bullet_list",
                        "content": [
                            {
                                "type": "list_item",
                                "content": [{"type": "paragraph", "content": [{"type": "text"}]}],
                            }
                        ],
                    }
                ],
            },
            "text node without a string 'text' at $.content[0].content[0].content[0].content[0]",
        ),
    ],
)
def test_an_invalid_tree_is_refused_naming_where(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        validate_doc(doc)
    assert where in str(caught.value)


def test_a_peer_message_with_an_unhashable_node_type_is_an_invalid_message() -> None:
    good = encode_message(ReplicaMessage(replica=Replica(entity=EntityRef(id="1")), version=1))
    bad = good.replace(b'"description":null', b'"description":{"type":"doc","content":[{"type":{"a":1}}]}')
    assert bad != good
    with pytest.raises(InvalidMessage, match="not allowed inside 'doc'"):
        decode_message(bad)
