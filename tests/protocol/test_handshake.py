"""Pairing: proof of the one-time secret, binding of keys, verification string."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from protocol import (
    HandshakeError,
    Reach,
    check_welcome,
    decode_invitation,
    encode_invitation,
    make_accept,
    peek_accept,
    verification_string,
    verify_accept,
    welcome_confirm,
)

from .helpers import NOW, Nonces, identity, make_invitation

ALICE, BOB, MALLORY = identity("alice"), identity("bob"), identity("mallory")


def test_accept_verifies_and_both_sides_agree() -> None:
    inv = make_invitation(ALICE)
    seen_by_bob = decode_invitation(encode_invitation(inv, ALICE), now=NOW)
    env = make_accept(BOB, seen_by_bob, "Engineering", Reach("public", "https://eng.example"), Nonces("x")())
    header, request = peek_accept(ALICE, env)
    assert header.sender == BOB.node_id and request.acceptor == BOB.public
    assert request.reach == Reach("public", "https://eng.example")
    t = verify_accept(inv, request)
    check_welcome(seen_by_bob, BOB.public, "Engineering", request.reach, welcome_confirm(inv, t))
    assert verification_string(inv.connection_id, ALICE.public, BOB.public) == verification_string(
        seen_by_bob.connection_id, seen_by_bob.inviter, request.acceptor
    )


def test_secret_never_travels_in_the_accept_message() -> None:
    inv = make_invitation(ALICE)
    env = make_accept(BOB, inv, "Eng", Reach("private"), Nonces("x")())
    _, request = peek_accept(ALICE, env)
    assert inv.secret not in request.to_bytes() and inv.secret not in env


def test_acceptor_without_the_secret_is_refused() -> None:
    inv = make_invitation(ALICE)
    guessed = dataclasses.replace(inv, secret=hashlib.sha256(b"guess").digest())
    env = make_accept(MALLORY, guessed, "Eng", Reach("private"), Nonces("x")())
    _, request = peek_accept(ALICE, env)
    with pytest.raises(HandshakeError, match="secret"):
        verify_accept(inv, request)


def test_accept_for_another_invitation_is_refused() -> None:
    inv = make_invitation(ALICE)
    other = dataclasses.replace(inv, connection_id=bytes(16))
    env = make_accept(BOB, other, "Eng", Reach("private"), Nonces("x")())
    _, request = peek_accept(ALICE, env)
    with pytest.raises(HandshakeError):
        verify_accept(inv, request)


def test_forged_welcome_is_refused() -> None:
    inv = make_invitation(ALICE)
    with pytest.raises(HandshakeError):
        check_welcome(inv, BOB.public, "Eng", Reach("private"), "AAAA")


def test_man_in_the_middle_shows_a_different_verification_string() -> None:
    conn = make_invitation(ALICE).connection_id
    assert verification_string(conn, ALICE.public, BOB.public) != verification_string(
        conn, ALICE.public, MALLORY.public
    )
