"""In-memory protocol pairs: two nodes wired back to back, no sockets, deterministic."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from protocol import (
    Invitation,
    NodeIdentity,
    Reach,
    Session,
    check_welcome,
    decode_invitation,
    encode_invitation,
    make_accept,
    peek_accept,
    verify_accept,
    welcome_confirm,
)
from protocol.envelope import ChannelKeys
from protocol.messages import Welcome

NOW = 1_800_000_000


def identity(name: str) -> NodeIdentity:
    return NodeIdentity.from_seed(hashlib.sha512(name.encode()).digest())


class Nonces:
    """Deterministic, never-repeating 24-byte nonces for tests."""

    def __init__(self, label: str) -> None:
        self._label = label.encode()
        self._counter = itertools.count()

    def __call__(self) -> bytes:
        return hashlib.blake2b(self._label + str(next(self._counter)).encode(), digest_size=24).digest()


def make_invitation(
    inviter: NodeIdentity, *, expires_at: int = NOW + 3600, url: str = "https://a.example"
) -> Invitation:
    return Invitation(
        connection_id=bytes(range(16)),
        inviter=inviter.public,
        inviter_name="Support (Jira Cloud)",
        reach=Reach("public", url),
        secret=hashlib.sha256(b"secret").digest(),
        expires_at=expires_at,
        connection_name="support-eng",
    )


@dataclass
class Pair:
    a: Session  # inviter
    b: Session  # acceptor
    nonces_a: Nonces
    nonces_b: Nonces
    verification: tuple[str, str]


def paired_sessions(window: int = 4096) -> Pair:
    """Run the whole pairing handshake in memory and return two live sessions."""
    from protocol import verification_string

    alice, bob = identity("alice"), identity("bob")
    na, nb = Nonces("a"), Nonces("b")
    code = encode_invitation(make_invitation(alice), alice)
    inv_b = decode_invitation(code, now=NOW)
    reach_b = Reach("private")
    pair_env = make_accept(bob, inv_b, "Engineering", reach_b, nb())
    _, request = peek_accept(alice, pair_env)
    t = verify_accept(make_invitation(alice), request)
    keys_a = ChannelKeys.derive(
        alice, inv_b.connection_id, request.acceptor.sign_public, request.acceptor.box_public
    )
    keys_b = ChannelKeys.derive(bob, inv_b.connection_id, inv_b.inviter.sign_public, inv_b.inviter.box_public)
    a = Session(keys_a, window=window)
    b = Session(keys_b, window=window)
    _, welcome_env = a.send(Welcome(confirm=welcome_confirm(make_invitation(alice), t), name="Support"), na())
    got = b.receive(welcome_env)
    assert len(got.delivered) == 1
    w = got.delivered[0][1]
    assert isinstance(w, Welcome)
    check_welcome(inv_b, bob.public, "Engineering", reach_b, w.confirm)
    va = verification_string(inv_b.connection_id, alice.public, request.acceptor)
    vb = verification_string(inv_b.connection_id, inv_b.inviter, bob.public)
    return Pair(a, b, na, nb, (va, vb))
