"""Envelopes: every node-to-node message, authenticated and encrypted end to end.

A relay (or any hop) sees only the routing header. Two kinds::

    DATA (kind 1), after pairing:
      magic "TDM" | version 0x01 | kind 0x01 | connection id (16) | sender node id (15)
      | recipient node id (15) | sequence (u64 big-endian) | nonce (24) | ciphertext

    PAIR (kind 2), the acceptor's first message, before the inviter knows its keys:
      magic "TDM" | version 0x01 | kind 0x02 | connection id (16) | sender node id (15)
      | recipient node id (15) | sender box public key (32) | nonce (24) | ciphertext

The ciphertext is XChaCha20-Poly1305 (IETF) with the whole header as associated data, so no header
byte can be changed. Keys are BLAKE2b-256 keyed with the X25519 shared secret of the two box keys::

    data key  = BLAKE2b(key=shared, "tandem data v1" | connection id | sender id | recipient id)
    pair key  = BLAKE2b(key=shared, "tandem pair v1" | connection id | sender id | recipient id)

so each direction has its own key, a message cannot be reflected back to its sender nor moved to
another connection. Sequence 0 marks an unsequenced control message (ack, ping). Nonces come from
the caller (24 random bytes in production; fixed in test vectors).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions

from protocol.errors import AuthenticationFailed, InvalidMessage, MalformedEnvelope, WrongRecipient
from protocol.identity import KEY_BYTES, NODE_ID_BYTES, NodeIdentity, node_id_for

MAGIC = b"TDM"
VERSION = 1
KIND_DATA = 1
KIND_PAIR = 2
NONCE_BYTES = 24
CONNECTION_ID_BYTES = 16
TAG_BYTES = 16
_PREFIX = struct.Struct(">3sBB16s15s15s")
DATA_HEADER_BYTES = _PREFIX.size + 8 + NONCE_BYTES
PAIR_HEADER_BYTES = _PREFIX.size + KEY_BYTES + NONCE_BYTES


@dataclass(frozen=True)
class Header:
    """The routing header, readable by anyone (relays route on it)."""

    kind: int
    connection_id: bytes
    sender: bytes
    recipient: bytes
    sequence: int
    nonce: bytes
    sender_box_public: bytes | None = None  # PAIR only

    def encode(self) -> bytes:
        prefix = _PREFIX.pack(MAGIC, VERSION, self.kind, self.connection_id, self.sender, self.recipient)
        if self.kind == KIND_DATA:
            return prefix + struct.pack(">Q", self.sequence) + self.nonce
        assert self.sender_box_public is not None
        return prefix + self.sender_box_public + self.nonce


def read_header(data: bytes) -> Header:
    """Parse the routing header only (what a relay does). Raises MalformedEnvelope."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < _PREFIX.size:
        raise MalformedEnvelope("envelope too short")
    magic, version, kind, conn, sender, recipient = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise MalformedEnvelope("not a Tandem envelope (bad magic)")
    if version != VERSION:
        raise MalformedEnvelope(f"unsupported envelope version {version}")
    if kind == KIND_DATA:
        if len(data) < DATA_HEADER_BYTES + TAG_BYTES:
            raise MalformedEnvelope("data envelope truncated")
        (seq,) = struct.unpack_from(">Q", data, _PREFIX.size)
        nonce = bytes(data[_PREFIX.size + 8 : DATA_HEADER_BYTES])
        return Header(kind, conn, sender, recipient, seq, nonce)
    if kind == KIND_PAIR:
        if len(data) < PAIR_HEADER_BYTES + TAG_BYTES:
            raise MalformedEnvelope("pairing envelope truncated")
        box = bytes(data[_PREFIX.size : _PREFIX.size + KEY_BYTES])
        nonce = bytes(data[_PREFIX.size + KEY_BYTES : PAIR_HEADER_BYTES])
        return Header(kind, conn, sender, recipient, 0, nonce, box)
    raise MalformedEnvelope(f"unknown envelope kind {kind}")


def _derive(shared: bytes, label: bytes, conn: bytes, sender: bytes, recipient: bytes) -> bytes:
    return hashlib.blake2b(label + conn + sender + recipient, key=shared, digest_size=32).digest()


@dataclass(frozen=True)
class ChannelKeys:
    """The two directional keys of one connection, from one node's point of view."""

    connection_id: bytes
    local_id: bytes
    peer_id: bytes
    send_key: bytes
    receive_key: bytes

    @classmethod
    def derive(
        cls, identity: NodeIdentity, connection_id: bytes, peer_sign_public: bytes, peer_box_public: bytes
    ) -> ChannelKeys:
        shared = identity.shared_secret(peer_box_public)
        me, peer = identity.node_id, node_id_for(peer_sign_public)
        return cls(
            connection_id,
            me,
            peer,
            _derive(shared, b"tandem data v1", connection_id, me, peer),
            _derive(shared, b"tandem data v1", connection_id, peer, me),
        )

    def seal(self, sequence: int, plaintext: bytes, nonce: bytes) -> bytes:
        if len(nonce) != NONCE_BYTES:
            raise ValueError("nonce must be 24 bytes")
        if not 0 <= sequence < 2**64:
            raise ValueError("sequence out of range")
        header = Header(KIND_DATA, self.connection_id, self.local_id, self.peer_id, sequence, nonce).encode()
        return header + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, header, nonce, self.send_key
        )

    def open(self, data: bytes) -> tuple[Header, bytes]:
        """Verify and decrypt a DATA envelope from the peer. Returns (header, plaintext)."""
        header = read_header(data)
        if header.kind != KIND_DATA:
            raise MalformedEnvelope("expected a data envelope")
        if header.connection_id != self.connection_id:
            raise WrongRecipient("envelope belongs to another connection")
        if header.recipient != self.local_id:
            raise WrongRecipient("envelope is addressed to another node")
        if header.sender != self.peer_id:
            raise WrongRecipient("envelope is from a node that is not this connection's peer")
        return header, _decrypt(data, DATA_HEADER_BYTES, header.nonce, self.receive_key)


def _decrypt(data: bytes, header_len: int, nonce: bytes, key: bytes) -> bytes:
    aad, ciphertext = bytes(data[:header_len]), bytes(data[header_len:])
    try:
        return bytes(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, aad, nonce, key))
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise AuthenticationFailed("envelope failed authentication (tampered, or wrong keys)") from None


def seal_pairing(
    identity: NodeIdentity,
    connection_id: bytes,
    recipient_sign_public: bytes,
    recipient_box_public: bytes,
    plaintext: bytes,
    nonce: bytes,
) -> bytes:
    """Seal the acceptor's first message to the inviter, carrying the acceptor's box key in clear."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError("nonce must be 24 bytes")
    recipient = node_id_for(recipient_sign_public)
    key = _derive(
        identity.shared_secret(recipient_box_public),
        b"tandem pair v1",
        connection_id,
        identity.node_id,
        recipient,
    )
    header = Header(
        KIND_PAIR, connection_id, identity.node_id, recipient, 0, nonce, identity.public.box_public
    ).encode()
    return header + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, nonce, key)


def open_pairing(identity: NodeIdentity, data: bytes) -> tuple[Header, bytes]:
    """Open a PAIR envelope addressed to ``identity``. The caller still has to check that the
    sender id matches the signing key inside (see :mod:`protocol.handshake`)."""
    header = read_header(data)
    if header.kind != KIND_PAIR:
        raise MalformedEnvelope("expected a pairing envelope")
    if header.recipient != identity.node_id:
        raise WrongRecipient("pairing envelope is addressed to another node")
    assert header.sender_box_public is not None
    try:
        shared = identity.shared_secret(header.sender_box_public)
    except InvalidMessage:
        raise AuthenticationFailed("pairing envelope carries an unusable key") from None
    key = _derive(shared, b"tandem pair v1", header.connection_id, header.sender, header.recipient)
    return header, _decrypt(data, PAIR_HEADER_BYTES, header.nonce, key)


__all__ = [
    "CONNECTION_ID_BYTES",
    "DATA_HEADER_BYTES",
    "KIND_DATA",
    "KIND_PAIR",
    "NODE_ID_BYTES",
    "NONCE_BYTES",
    "ChannelKeys",
    "Header",
    "open_pairing",
    "read_header",
    "seal_pairing",
]
