"""Messages and replicas: validation, forward compatibility."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import InvalidMessage, Replica, ReplicaMessage, UnknownMessage, decode_message, encode_message
from protocol.messages import Ack, Hello, ReplicaResult, Result
from protocol.replica import Comment, EntityRef
from protocol.richtext import from_plain_text, plain_text, validate_doc


def test_replica_message_round_trip() -> None:
    msg = ReplicaMessage(
        replica=Replica(
            entity=EntityRef(id="10001", key="SUP-1", url="https://sup.example/browse/SUP-1"),
            summary="Printer on fire",
            description=from_plain_text("It is on fire.\n\nReally."),
            labels=["hardware"],
            comments=[Comment(id="1", body=from_plain_text("hello"), internal=False)],
        ),
        version=3,
    )
    assert decode_message(encode_message(msg)) == msg


def test_older_node_reads_known_fields_of_a_newer_replica() -> None:
    newer = {
        "t": "replica",
        "version": 1,
        "replica": {
            "schema_version": 7,
            "entity": {"id": "1", "kind": "issue", "shiny_new": True},
            "summary": "still readable",
            "sentiment": "angry",
        },
        "future_field": [1, 2, 3],
    }
    msg = decode_message(json.dumps(newer).encode())
    assert isinstance(msg, ReplicaMessage)
    assert msg.replica.summary == "still readable" and msg.replica.schema_version == 7


def test_unknown_message_type_is_skippable_not_fatal() -> None:
    msg = decode_message(b'{"t":"hologram","ack":4}')
    assert isinstance(msg, UnknownMessage) and msg.ack == 4


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[]", "object"),
        (b'{"t":"ack","upto":-1}', "upto"),
        (b'{"t":"hello"}', "recv_next"),
        (
            b'{"t":"replica","version":1,"replica":{"entity":{"id":"1"},"description":{"type":"para"}}}',
            "rich text",
        ),
        (b'{"t":"result","results":[{"entity_id":"1","version":1,"outcome":"exploded"}]}', "outcome"),
    ],
)
def test_invalid_messages_name_the_problem(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        decode_message(data)


def test_results_carry_outcomes() -> None:
    res = Result(
        results=[ReplicaResult(entity_id="1", version=2, outcome="failed", reason="no such priority")]
    )
    assert decode_message(encode_message(res)) == res
    assert decode_message(encode_message(Ack(upto=3))) == Ack(upto=3)
    assert decode_message(encode_message(Hello(recv_next=9))) == Hello(recv_next=9)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decoding_arbitrary_bytes_raises_only_invalid_message(data: bytes) -> None:
    try:
        decode_message(data)
    except InvalidMessage:
        pass


def test_plain_text_round_trip() -> None:
    doc = validate_doc(from_plain_text("line one\nline two\n\nsecond para"))
    assert plain_text(doc) == "line one\nline two\n\nsecond para"


@pytest.mark.parametrize(
    "data",
    [
        b'{"t":"bye","reason":"' + b"x" * 5000 + b'"}',
        b'{"t":"welcome","confirm":"AAAA","name":"' + b"n" * 300 + b'"}',
        b'{"t":"result","results":[{"entity_id":"1","version":1,"outcome":"failed","reason":"'
        + b"r" * 5000
        + b'"}]}',
    ],
)
def test_texts_shown_to_the_other_admin_are_bounded(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(data)
