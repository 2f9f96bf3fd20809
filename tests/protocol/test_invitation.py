"""Invitation codes: round trip, each failure with its own error, and no byte flip ever accepted."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CorruptedInvitation,
    ExpiredInvitation,
    InvitationError,
    NotAnInvitation,
    Reach,
    TamperedInvitation,
    UnsupportedVersion,
    decode_invitation,
    encode_invitation,
)
from protocol.identity import b32, unb32
from protocol.invitation import PREFIX, SIGN_CONTEXT, _checksum

from .helpers import NOW, identity, make_invitation

ALICE = identity("alice")
CODE = encode_invitation(make_invitation(ALICE), ALICE)


def test_round_trip_keeps_every_field() -> None:
    inv = make_invitation(ALICE)
    got = decode_invitation(CODE, now=NOW)
    assert got == inv
    assert CODE.startswith("TANDEM1") and CODE.isascii() and CODE.isalnum()


def test_line_wrapped_paste_is_accepted() -> None:
    wrapped = "\n".join(CODE[i : i + 60] for i in range(0, len(CODE), 60))
    assert decode_invitation("  " + wrapped + "\n", now=NOW) == make_invitation(ALICE)


@pytest.mark.parametrize(
    ("reach"),
    [
        Reach("public", "https://eng.example:8443"),
        Reach("dial", "https://peer.example"),
        Reach("relay", "wss://relay.example"),
    ],
)
def test_every_reach_mode_round_trips(reach: Reach) -> None:
    inv = dataclasses.replace(make_invitation(ALICE), reach=reach, project="SUP")
    assert decode_invitation(encode_invitation(inv, ALICE), now=NOW) == inv


def test_not_a_code() -> None:
    for text in ["", "   ", "hello world", "https://example.com", "TANDOM1ABC"]:
        with pytest.raises(NotAnInvitation):
            decode_invitation(text, now=NOW)


@pytest.mark.parametrize("keep", [8, 9, 20, 21, 100, 333, -1, -3, -7, -8])
def test_truncated_code_says_truncated_wherever_it_is_cut(keep: int) -> None:
    with pytest.raises(CorruptedInvitation, match="truncated"):
        decode_invitation(CODE[:keep], now=NOW)


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedVersion, match="version 2"):
        decode_invitation("TANDEM2" + CODE[7:], now=NOW)


def test_expired_code_says_when() -> None:
    with pytest.raises(ExpiredInvitation, match="expired 2 hours ago"):
        decode_invitation(CODE, now=NOW + 3600 + 7200)


def test_tampered_content_with_recomputed_checksum_fails_the_signature() -> None:
    blob = unb32(CODE[len(PREFIX) + 1 :])[:-4]
    body, sig = blob[:-64], blob[-64:]
    forged_body = body.replace(b"https://a.example", b"https://evil.example")
    forged = forged_body + sig
    code = f"{PREFIX}1{b32(forged + _checksum(forged))}"
    with pytest.raises(TamperedInvitation, match="signature"):
        decode_invitation(code, now=NOW)


def test_code_signed_by_someone_else_is_tampered() -> None:
    mallory = identity("mallory")
    body = make_invitation(ALICE).body()
    blob = body + mallory.sign(SIGN_CONTEXT + body)
    with pytest.raises(TamperedInvitation):
        decode_invitation(f"{PREFIX}1{b32(blob + _checksum(blob))}", now=NOW)


def test_cannot_sign_with_a_foreign_identity() -> None:
    with pytest.raises(ValueError):
        encode_invitation(make_invitation(ALICE), identity("mallory"))


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0), st.characters(codec="ascii"))
def test_any_single_character_change_is_rejected(position: int, replacement: str) -> None:
    i = position % len(CODE)
    if CODE[i] == replacement or replacement.isspace():
        return
    changed = CODE[:i] + replacement + CODE[i + 1 :]
    with pytest.raises(InvitationError):
        decode_invitation(changed, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_bit_flip_in_the_payload_is_rejected(position: int, xor: int) -> None:
    blob = bytearray(unb32(CODE[len(PREFIX) + 1 :]))
    blob[position % len(blob)] ^= xor
    with pytest.raises(InvitationError):
        decode_invitation(f"{PREFIX}1{b32(bytes(blob))}", now=NOW)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=600) | st.from_regex(r"TANDEM1[A-Z2-7]{0,500}", fullmatch=True))
def test_decoding_arbitrary_text_raises_only_invitation_errors(text: str) -> None:
    with pytest.raises(InvitationError):
        decode_invitation(text, now=NOW)
