"""The link opening exchange: signed for one challenge, one connection, one dialer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import LinkProtocolError, make_opening, parse_challenge, parse_opening
from protocol.link import challenge_frame, parse_refusal, refusal_frame

from .helpers import identity

ALICE, MALLORY = identity("alice"), identity("mallory")
CONN = bytes(range(16))
CHALLENGE = bytes([7] * 32)
OPENING = make_opening(ALICE, CHALLENGE, CONN)


def test_opening_verifies_for_its_challenge_and_dialer_only() -> None:
    assert parse_challenge(challenge_frame(CHALLENGE)) == CHALLENGE
    opening = parse_opening(OPENING)
    assert (opening.connection_id, opening.node_id) == (CONN, ALICE.node_id)
    assert opening.verify(CHALLENGE, ALICE.public)
    assert not opening.verify(bytes(32), ALICE.public)  # a recorded opening on another socket
    assert not opening.verify(CHALLENGE, MALLORY.public)
    forged = parse_opening(make_opening(MALLORY, CHALLENGE, CONN))
    assert not forged.verify(CHALLENGE, ALICE.public)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=4), st.integers(min_value=1, max_value=255))
def test_any_byte_flip_after_the_magic_fails_verification(position: int, xor: int) -> None:
    data = bytearray(OPENING)
    data[4 + position % (len(data) - 4)] ^= xor
    assert not parse_opening(bytes(data)).verify(CHALLENGE, ALICE.public)


@pytest.mark.parametrize("frame", [b"", b"TDL1", OPENING[:-1], OPENING + b"x", b"TDC1" + bytes(31)])
def test_malformed_frames_are_link_protocol_errors(frame: bytes) -> None:
    with pytest.raises(LinkProtocolError):
        parse_opening(frame) if frame.startswith(b"TDL1") or not frame else parse_challenge(frame)


def test_refusals_round_trip_and_garbage_is_contained() -> None:
    assert parse_refusal(refusal_frame("invitation_used", "this code was already used")) == (
        "invitation_used",
        "this code was already used",
    )
    assert parse_refusal("not json")[0] == "unknown"
