"""The opening exchange on a direct peer link (PROTOCOL.md §7). Sans-I/O: the caller draws the
challenge bytes and moves the frames.

    listener → dialer   "TDC1" | challenge (32 bytes)
    dialer → listener   a PAIR envelope (an acceptor not yet welcomed), or
                        "TDL1" | connection id (16) | dialer node id (15) | signature (64)
                        signature = Ed25519(dialer) over
                        "tandem-link-open-v1" | challenge | connection id | dialer node id
    either              a text refusal {"error": {"code", "message"}}, then close

A fresh challenge per socket makes a recorded opening useless elsewhere; the listener checks the
signature with the peer's signing key from the pairing (or from the invitation code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocol.errors import ProtocolError
from protocol.identity import NODE_ID_BYTES, SIGNATURE_BYTES, NodeIdentity, PublicIdentity

CHALLENGE_MAGIC = b"TDC1"
OPENING_MAGIC = b"TDL1"
CHALLENGE_BYTES = 32
OPEN_CONTEXT = b"tandem-link-open-v1"
CONNECTION_ID_BYTES = 16
OPENING_BYTES = len(OPENING_MAGIC) + CONNECTION_ID_BYTES + NODE_ID_BYTES + SIGNATURE_BYTES


class LinkProtocolError(ProtocolError):
    """A frame on a link does not follow the opening exchange."""


def challenge_frame(challenge: bytes) -> bytes:
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError("a link challenge is 32 bytes")
    return CHALLENGE_MAGIC + challenge


def parse_challenge(frame: bytes) -> bytes:
    if len(frame) != len(CHALLENGE_MAGIC) + CHALLENGE_BYTES or not frame.startswith(CHALLENGE_MAGIC):
        raise LinkProtocolError("the peer did not start with a link challenge")
    return frame[len(CHALLENGE_MAGIC) :]


def _signed_part(challenge: bytes, connection_id: bytes, node_id: bytes) -> bytes:
    return OPEN_CONTEXT + challenge + connection_id + node_id


def make_opening(identity: NodeIdentity, challenge: bytes, connection_id: bytes) -> bytes:
    signature = identity.sign(_signed_part(challenge, connection_id, identity.node_id))
    return OPENING_MAGIC + connection_id + identity.node_id + signature


@dataclass(frozen=True)
class Opening:
    connection_id: bytes
    node_id: bytes
    signature: bytes

    def verify(self, challenge: bytes, dialer: PublicIdentity) -> bool:
        return dialer.node_id == self.node_id and dialer.verify(
            _signed_part(challenge, self.connection_id, self.node_id), self.signature
        )


def is_opening(frame: bytes) -> bool:
    return frame.startswith(OPENING_MAGIC)


def parse_opening(frame: bytes) -> Opening:
    if len(frame) != OPENING_BYTES or not frame.startswith(OPENING_MAGIC):
        raise LinkProtocolError("malformed link opening")
    i = len(OPENING_MAGIC)
    conn = frame[i : i + CONNECTION_ID_BYTES]
    i += CONNECTION_ID_BYTES
    node = frame[i : i + NODE_ID_BYTES]
    return Opening(conn, node, frame[i + NODE_ID_BYTES :])


def refusal_frame(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


def parse_refusal(text: str) -> tuple[str, str]:
    try:
        obj = json.loads(text)
        err = obj["error"]
        return str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return "unknown", text[:200]
