"""Message JSON takes a fast path (orjson) where it gives the bytes ``json`` gives, and ``json``
elsewhere: the wire stays byte-identical and every input ``json`` reads is still read."""

from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import InvalidMessage, ReplicaMessage
from protocol.messages import decode_message, encode_message
from protocol.replica import Comment, EntityRef, Replica
from protocol.richtext import from_plain_text

from .helpers import paired_sessions


def _reference(message: Any) -> bytes:
    data = message.model_dump(mode="json", exclude_defaults=False)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _message(custom: dict[str, Any], text: str) -> ReplicaMessage:
    return ReplicaMessage(
        replica=Replica(
            entity=EntityRef(id="1", key="SUP-1"),
            summary=text,
            description=from_plain_text(text),
            custom_fields=custom,
            comments=[Comment(id="c1", body=from_plain_text(text + "\n" + text))],
        ),
        version=3,
    )


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5), st.text())
def test_encoding_is_byte_identical_to_json(custom: dict[str, Any], text: str) -> None:
    message = _message(custom, text)
    encoded = encode_message(message)
    assert encoded == _reference(message)
    assert decode_message(encoded) == message


@pytest.mark.parametrize("value", [1e-7, 1e20, 2.5, 2**64 + 1, -(2**63) - 1, "ratio:1.5", "\u2028\x7f\x00"])
def test_values_where_the_two_encoders_could_differ(value: Any) -> None:
    message = _message({"f": value, "g": [value, {"h": value}]}, "x")
    assert encode_message(message) == _reference(message)


def _with_extra(raw: str) -> bytes:
    base = json.loads(encode_message(_message({}, "x")))
    return (json.dumps(base)[:-1] + ', "extra": ' + raw + "}").encode()


def test_what_json_reads_is_still_read() -> None:
    for raw in ('{"f": 123456789012345678901234567890}', '{"f": [1.5, -2e300, 5e-324]}'):
        assert decode_message(_with_extra(raw)).t == "replica"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"f": NaN}', "non-finite number NaN"),
        ('{"f": -Infinity}', "non-finite number -Infinity"),
        ('{"f": 1e400}', "number 1e400 is too large"),
        ('{"f": [-1E+999, 1234567890123456789012]}', "number -1E\\+999 is too large"),  # the long-number path
    ],
)
def test_non_finite_numbers_are_refused_naming_them(raw: str, problem: str) -> None:
    """They would not come back byte for byte (encoders write ``null``), and no node sends them."""
    with pytest.raises(InvalidMessage, match=f"not JSON: {problem}"):
        decode_message(_with_extra(raw))


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b'{"t": 1}', "string 't'"),
        (b'{"t": "replica", "version": 0}', "invalid replica message"),
    ],
)
def test_bad_plaintext_is_a_clear_error(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidMessage, match=problem):
        decode_message(data)


def test_the_receiver_gets_each_message_with_the_plaintext_it_came_in() -> None:
    pair = paired_sessions()
    messages = [_message({"n": n}, f"issue {n}") for n in range(3)]
    envelopes = [pair.b.send(m, pair.nonces_b())[1] for m in messages]
    first = pair.a.receive(envelopes[2])  # early: held until 1 and 2 arrive
    assert first.delivered == [] and first.plaintexts == []
    pair.a.receive(envelopes[0])
    last = pair.a.receive(envelopes[1])
    assert [seq for seq, _ in last.delivered] == [2, 3]
    for (_, message), body in zip(last.delivered, last.plaintexts, strict=True):
        assert decode_message(body) == message
    assert json.loads(last.plaintexts[1])["replica"]["custom_fields"] == {"n": 2}


def test_floats_of_every_magnitude_encode_as_json_writes_them() -> None:
    rng = random.Random(7)
    values: list[float] = []
    while len(values) < 20_000:
        if len(values) % 2:
            value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        else:
            value = rng.uniform(-10, 10) * 10.0 ** rng.randint(-12, 22)
        if math.isfinite(value):
            values.append(value)
    for chunk in range(0, len(values), 500):
        message = _message({"f": values[chunk : chunk + 500]}, "x")
        assert encode_message(message) == _reference(message)
    for exponent in range(-12, 23):
        message = _message({"f": [1.2345 * 10.0**exponent, -(10.0**exponent)]}, "x")
        assert encode_message(message) == _reference(message)
