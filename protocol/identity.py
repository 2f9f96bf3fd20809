"""Node identity: an Ed25519 signing key and an X25519 box key, and the node id derived from them.

The node id is the first 15 bytes of BLAKE2b-256 over the Ed25519 public key ("tandem node id v1"
personalisation). It is rendered for people as six groups of four base32 characters
(``K3F2-9QXA-…``) so two admins can read it to each other. Nothing here touches the disk or draws
randomness: key generation takes seed bytes from the caller.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from protocol.errors import InvalidMessage

NODE_ID_BYTES = 15
KEY_BYTES = 32
SIGNATURE_BYTES = 64
BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def b32(data: bytes) -> str:
    """Unpadded RFC 4648 base32 (A-Z, 2-7): survives copy-paste, double-click selects it whole."""
    return base64.b32encode(data).decode("ascii").rstrip("=")


def unb32(text: str) -> bytes:
    """Inverse of :func:`b32`; raises ValueError on anything that is not canonical base32."""
    if not text or any(c not in BASE32_ALPHABET for c in text):
        raise ValueError("not base32")
    padded = text + "=" * (-len(text) % 8)
    data = base64.b32decode(padded)
    if b32(data) != text:  # reject non-canonical trailing bits
        raise ValueError("non-canonical base32")
    return data


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64(data) != text:
        raise ValueError("non-canonical base64")
    return data


def node_id_for(sign_public: bytes) -> bytes:
    return hashlib.blake2b(sign_public, digest_size=32, person=b"tandem-node-id1").digest()[:NODE_ID_BYTES]


def render_node_id(node_id: bytes) -> str:
    text = b32(node_id)
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True)
class PublicIdentity:
    """What a peer knows of a node: its two public keys. The node id follows from the signing key."""

    sign_public: bytes
    box_public: bytes

    def __post_init__(self) -> None:
        if len(self.sign_public) != KEY_BYTES or len(self.box_public) != KEY_BYTES:
            raise InvalidMessage("public keys must be 32 bytes each")

    @property
    def node_id(self) -> bytes:
        return node_id_for(self.sign_public)

    @property
    def node_id_text(self) -> str:
        return render_node_id(self.node_id)

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            nacl.signing.VerifyKey(self.sign_public).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return False
        return True

    def to_json(self) -> dict[str, str]:
        return {"sign": b64(self.sign_public), "box": b64(self.box_public)}

    @classmethod
    def from_json(cls, value: object) -> PublicIdentity:
        if not isinstance(value, dict):
            raise InvalidMessage("identity must be an object with 'sign' and 'box' keys")
        try:
            return cls(unb64(value["sign"]), unb64(value["box"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidMessage(f"identity keys are not valid base64 keys: {exc}") from None


class NodeIdentity:
    """A node's private keys. Build from 64 bytes of seed material (32 signing + 32 box)."""

    def __init__(self, sign_seed: bytes, box_secret: bytes) -> None:
        if len(sign_seed) != KEY_BYTES or len(box_secret) != KEY_BYTES:
            raise ValueError("identity seeds must be 32 bytes each")
        self._signing = nacl.signing.SigningKey(sign_seed)
        self._box_secret = box_secret
        self.public = PublicIdentity(
            bytes(self._signing.verify_key), nacl.bindings.crypto_scalarmult_base(box_secret)
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> NodeIdentity:
        if len(seed) != 2 * KEY_BYTES:
            raise ValueError("identity seed must be 64 bytes")
        return cls(seed[:KEY_BYTES], seed[KEY_BYTES:])

    def to_seed(self) -> bytes:
        """The 64 secret bytes to store (owner-only) and reload with :meth:`from_seed`."""
        return bytes(self._signing) + self._box_secret

    @property
    def node_id(self) -> bytes:
        return self.public.node_id

    @property
    def node_id_text(self) -> str:
        return self.public.node_id_text

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message).signature

    def shared_secret(self, peer_box_public: bytes) -> bytes:
        """Raw X25519 output; only ever used as a key for BLAKE2b, never directly."""
        if len(peer_box_public) != KEY_BYTES:
            raise InvalidMessage("peer box key must be 32 bytes")
        try:
            return nacl.bindings.crypto_scalarmult(self._box_secret, peer_box_public)
        except nacl.exceptions.RuntimeError as exc:  # all-zero output: a low-order point
            raise InvalidMessage("peer box key is not usable") from exc

    def __repr__(self) -> str:  # never show secrets
        return f"NodeIdentity({self.node_id_text})"
