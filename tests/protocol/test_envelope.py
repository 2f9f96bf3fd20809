"""Envelopes: authenticated encryption end to end; any change to any byte is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    AuthenticationFailed,
    EnvelopeError,
    MalformedEnvelope,
    ProtocolError,
    WrongRecipient,
    make_accept,
    peek_accept,
    read_header,
)
from protocol.envelope import ChannelKeys
from protocol.invitation import Reach

from .helpers import Nonces, identity, make_invitation, paired_sessions

ALICE, BOB, CAROL = identity("alice"), identity("bob"), identity("carol")
CONN = bytes(range(16))
A2B = ChannelKeys.derive(ALICE, CONN, BOB.public.sign_public, BOB.public.box_public)
B_FROM_A = ChannelKeys.derive(BOB, CONN, ALICE.public.sign_public, ALICE.public.box_public)
NONCE = bytes(24)
ENV = A2B.seal(7, b"hello bob", NONCE)


def test_open_returns_plaintext_and_routing_header() -> None:
    header, plaintext = B_FROM_A.open(ENV)
    assert plaintext == b"hello bob"
    assert (header.sequence, header.sender, header.recipient) == (7, ALICE.node_id, BOB.node_id)
    # a relay can read the routing header without any key
    assert read_header(ENV) == header


def test_plaintext_does_not_appear_in_the_envelope() -> None:
    assert b"hello bob" not in A2B.seal(1, b"hello bob" * 10, NONCE)


def test_directional_keys_differ_so_reflection_fails() -> None:
    assert A2B.send_key != A2B.receive_key
    with pytest.raises(WrongRecipient):
        A2B.open(ENV)  # alice receiving her own message back


def test_third_party_cannot_open_or_impersonate() -> None:
    c_from_a = ChannelKeys.derive(CAROL, CONN, ALICE.public.sign_public, ALICE.public.box_public)
    with pytest.raises(WrongRecipient):
        c_from_a.open(ENV)
    # carol seals "as alice" toward bob with her own keys: bob rejects it
    c_to_b = ChannelKeys.derive(CAROL, CONN, BOB.public.sign_public, BOB.public.box_public)
    forged = c_to_b.seal(1, b"hi", NONCE)
    with pytest.raises(WrongRecipient):
        B_FROM_A.open(forged)


def test_other_connection_is_rejected() -> None:
    other = ChannelKeys.derive(ALICE, bytes(16), BOB.public.sign_public, BOB.public.box_public)
    with pytest.raises(WrongRecipient, match="another connection"):
        B_FROM_A.open(other.seal(1, b"x", NONCE))


def test_garbage_is_malformed() -> None:
    for data in [b"", b"TDM", b"GET / HTTP/1.1\r\n\r\n", bytes(200)]:
        with pytest.raises(MalformedEnvelope):
            B_FROM_A.open(data)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_byte_flip_is_rejected(position: int, xor: int) -> None:
    data = bytearray(ENV)
    data[position % len(data)] ^= xor
    with pytest.raises(EnvelopeError):
        B_FROM_A.open(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_any_truncation_is_rejected(cut: int) -> None:
    with pytest.raises(EnvelopeError):
        B_FROM_A.open(ENV[: cut % len(ENV)])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    pair = paired_sessions()
    with pytest.raises(ProtocolError):
        pair.a.receive(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_byte_flip_in_a_pairing_envelope_is_rejected(position: int, xor: int) -> None:
    inv = make_invitation(ALICE)
    env = bytearray(make_accept(BOB, inv, "Engineering", Reach("private"), Nonces("p")()))
    env[position % len(env)] ^= xor
    with pytest.raises(ProtocolError):
        peek_accept(ALICE, bytes(env))


def test_pairing_envelope_for_someone_else() -> None:
    env = make_accept(BOB, make_invitation(ALICE), "Eng", Reach("private"), NONCE)
    with pytest.raises(WrongRecipient):
        peek_accept(CAROL, env)
    with pytest.raises(AuthenticationFailed):
        # right recipient id, but opened with keys that do not match
        peek_accept(CAROL, env[: 3 + 2 + 16 + 15] + CAROL.node_id + env[3 + 2 + 16 + 30 :])
