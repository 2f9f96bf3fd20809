"""The Basic/Visual engine avoids dumping and re-validating what is already valid; these tests pin
that it still hands out trees of its own (changing a result never changes the issue it came from),
and that the shortcuts give the same answers as the long way."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from node.rules import IncomingContext, OutgoingContext, RuleSet, compile_rules
from node.rules.values import canon, read_entity_field, same
from protocol.replica import Comment, Replica
from protocol.richtext import from_plain_text
from tests.rules.conftest import support_issue


def test_the_replica_does_not_share_comments_or_attachments_with_the_issue() -> None:
    issue = support_issue()
    replica = compile_rules(RuleSet(direction="outgoing")).outgoing(issue, OutgoingContext(connection="c"))
    assert replica is not None
    sent = [c.id for c in replica.comments]
    assert sent == ["100", "102"]  # the internal comment stays home
    replica.comments[0].internal = True
    replica.comments[0].body["content"].clear()  # in place: the trees must not be shared
    replica.attachments[0].filename = "renamed"
    assert issue.comments[0].internal is False
    assert issue.comments[0].body == from_plain_text("It is still failing.")
    assert issue.attachments[0].filename == "har.har"


def test_the_replica_is_what_a_full_round_trip_through_json_gives() -> None:
    issue = support_issue()
    replica = compile_rules(RuleSet(direction="outgoing")).outgoing(issue, OutgoingContext(connection="c"))
    assert replica is not None
    assert Replica.model_validate_json(replica.model_dump_json()) == replica


def test_a_field_value_read_for_the_rules_is_a_copy() -> None:
    issue = support_issue()
    value = read_entity_field(issue, "description")
    value["content"][0]["content"][0]["text"] = "changed"
    labels = read_entity_field(issue, "labels")
    labels.append("x")
    assert issue.description == support_issue().description
    assert issue.labels == ["escalated", "cust-acme", "triage-l2"]


@pytest.mark.parametrize(
    ("kind", "a", "b", "expected"),
    [
        ("doc", from_plain_text("a\nb"), from_plain_text("a\nb"), True),
        ("doc", from_plain_text("a"), from_plain_text("b"), False),
        ("doc", {"type": "doc", "content": [{"type": "paragraph", "content": []}]}, None, False),
        ("list", ["b", "a"], ["a", "b"], True),
        ("list", ["a"], ["a", "b"], False),
        ("user", {"email": "X@example.com"}, {"email": "x@example.com"}, True),
        ("user", {"email": "x@example.com"}, {"email": "x@example.com"}, True),
        ("any", 1, 1.0, True),
        ("any", float("nan"), float("nan"), False),
        ("text", "a", "a", True),
        ("text", "a", "b", False),
    ],
)
def test_same_gives_the_answer_of_the_canonical_forms(kind: Any, a: Any, b: Any, expected: bool) -> None:
    assert same(kind, a, b) is expected
    assert same(kind, copy.deepcopy(a), copy.deepcopy(b)) is expected
    if type(a) is type(b) and a == b:  # the shortcut in same() rests on this
        assert canon(kind, a) == canon(kind, b)


def test_added_comments_carry_the_header_and_the_remote_body() -> None:
    remote = Comment(id="7", body=from_plain_text("first line\nsecond"))
    replica = Replica.model_validate(
        {"entity": {"id": "1"}, "summary": "s", "comments": [remote.model_dump()]}
    )
    cs = compile_rules(RuleSet(direction="incoming")).incoming(
        replica, None, None, IncomingContext(project="OPS", peer_name="Support")
    )
    (added,) = cs.comments_add
    assert added.remote_id == "7"
    assert added.body["content"][1:] == remote.body["content"]
    assert "Support" in str(added.body["content"][0])
    again = type(added).model_validate(added.model_dump())  # what full validation would have built
    assert again == added
