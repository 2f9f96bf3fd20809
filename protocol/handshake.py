"""Pairing: the acceptor proves it holds the invitation's one-time secret, without sending it.

Flow::

    inviter                                     acceptor
      encode_invitation ──(code, out of band)──▶ decode_invitation
                                                make_accept → PAIR envelope
      open_accept ◀──────────────────────────────
      (checks: pending, unused, unexpired,
       proof, acceptor signature)
      make_welcome → DATA envelope seq 1 ───────▶ check_welcome

    transcript = BLAKE2b("tandem-accept-v1" | invitation digest | acceptor sign key | acceptor box key
                         | acceptor name | acceptor reach)
    proof      = BLAKE2b(key=secret, "acceptor" | transcript)    (sent by the acceptor)
    confirm    = BLAKE2b(key=secret, "inviter"  | transcript)    (sent back by the inviter)

The acceptor also signs the transcript with its Ed25519 key, binding its box key to its identity.
Both sides then compute the same verification string from the connection id and both signing keys;
admins compare it out of band to rule out a man in the middle who got hold of the code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from protocol.envelope import Header, open_pairing, seal_pairing
from protocol.errors import HandshakeError, InvalidMessage
from protocol.identity import NodeIdentity, PublicIdentity, b64, unb64
from protocol.invitation import MAX_NAME, Invitation, Reach, canonical_json


@dataclass(frozen=True)
class AcceptRequest:
    connection_id: bytes
    acceptor: PublicIdentity
    acceptor_name: str
    reach: Reach
    proof: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "t": "accept",
                "conn": b64(self.connection_id),
                "node": self.acceptor.to_json(),
                "name": self.acceptor_name,
                "reach": self.reach.to_json(),
                "proof": b64(self.proof),
                "sig": b64(self.signature),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AcceptRequest:
        try:
            obj = json.loads(data)
            if not isinstance(obj, dict) or obj.get("t") != "accept":
                raise ValueError("not an accept message")
            name = obj["name"]
            if not isinstance(name, str) or len(name) > MAX_NAME:
                raise ValueError(f"name must be a string of at most {MAX_NAME} characters")
            return cls(
                unb64(obj["conn"]),
                PublicIdentity.from_json(obj["node"]),
                name,
                Reach.from_json(obj["reach"]),
                unb64(obj["proof"]),
                unb64(obj["sig"]),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"invalid accept message: {exc}") from None


def transcript(invitation: Invitation, acceptor: PublicIdentity, name: str, reach: Reach) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"tandem-accept-v1")
    h.update(invitation.digest())
    h.update(acceptor.sign_public)
    h.update(acceptor.box_public)
    h.update(canonical_json({"name": name, "reach": reach.to_json()}))
    return h.digest()


def _mac(secret: bytes, role: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(role + data, key=secret, digest_size=32).digest()


def make_accept(
    identity: NodeIdentity, invitation: Invitation, name: str, reach: Reach, nonce: bytes
) -> bytes:
    """The acceptor's PAIR envelope for ``invitation`` (already decoded and verified)."""
    t = transcript(invitation, identity.public, name, reach)
    request = AcceptRequest(
        invitation.connection_id,
        identity.public,
        name,
        reach,
        _mac(invitation.secret, b"acceptor", t),
        identity.sign(b"tandem-accept-sig-v1" + t),
    )
    return seal_pairing(
        identity,
        invitation.connection_id,
        invitation.inviter.sign_public,
        invitation.inviter.box_public,
        request.to_bytes(),
        nonce,
    )


def peek_accept(identity: NodeIdentity, data: bytes) -> tuple[Header, AcceptRequest]:
    """Decrypt a PAIR envelope so the inviter can look up which invitation it answers."""
    header, plaintext = open_pairing(identity, data)
    request = AcceptRequest.from_bytes(plaintext)
    if request.connection_id != header.connection_id:
        raise HandshakeError("accept message names a different connection than its envelope")
    if request.acceptor.node_id != header.sender or request.acceptor.box_public != header.sender_box_public:
        raise HandshakeError("accept message keys do not match its envelope")
    return header, request


def verify_accept(invitation: Invitation, request: AcceptRequest) -> bytes:
    """Check proof and signature against the pending invitation; returns the transcript."""
    if request.connection_id != invitation.connection_id:
        raise HandshakeError("accept message is for a different invitation")
    t = transcript(invitation, request.acceptor, request.acceptor_name, request.reach)
    if not hmac.compare_digest(request.proof, _mac(invitation.secret, b"acceptor", t)):
        raise HandshakeError("the acceptor does not hold this invitation's secret")
    if not request.acceptor.verify(b"tandem-accept-sig-v1" + t, request.signature):
        raise HandshakeError("the acceptor's signature does not verify")
    return t


def welcome_confirm(invitation: Invitation, t: bytes) -> str:
    return b64(_mac(invitation.secret, b"inviter", t))


def check_welcome(
    invitation: Invitation, acceptor: PublicIdentity, name: str, reach: Reach, confirm: str
) -> None:
    """Run by the acceptor on the inviter's Welcome."""
    expected = welcome_confirm(invitation, transcript(invitation, acceptor, name, reach))
    if not hmac.compare_digest(expected.encode(), confirm.encode()):
        raise HandshakeError("the inviter's confirmation does not match this invitation")


def verification_string(connection_id: bytes, inviter: PublicIdentity, acceptor: PublicIdentity) -> str:
    """Twelve digits both admins can read to each other, e.g. ``"0481 3927 5506"``."""
    h = hashlib.blake2b(digest_size=8, person=b"tandem-sas-v1")
    h.update(connection_id + inviter.sign_public + acceptor.sign_public)
    number = int.from_bytes(h.digest()[:5], "big") % 10**12
    digits = f"{number:012d}"
    return " ".join(digits[i : i + 4] for i in range(0, 12, 4))
