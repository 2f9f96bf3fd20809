"""Invitation codes: one copy-pasteable ASCII string that an admin sends to the other organisation.

Format (version 1)::

    "TANDEM1" || base32( body || signature(64) || checksum(4) )

* ``body`` is compact JSON with sorted keys (see :class:`Invitation` for fields);
* ``signature`` is the inviter's Ed25519 signature over ``b"tandem-invite-v1" || body``;
* ``checksum`` is BLAKE2b-32 over ``body || signature``. It separates copy-paste damage
  (:class:`CorruptedInvitation`) from deliberate edits (:class:`TamperedInvitation`).

Decoding checks, in order: prefix (NotAnInvitation), version digit (UnsupportedVersion), base32 and
length and checksum (CorruptedInvitation), JSON and signature (TamperedInvitation), expiry
(ExpiredInvitation). Whether a code was already used is decided by the node that issued it.
Whitespace (line wraps from mail clients) is ignored; nothing else is forgiven.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from protocol.errors import (
    CorruptedInvitation,
    ExpiredInvitation,
    InvalidMessage,
    NotAnInvitation,
    TamperedInvitation,
    UnsupportedVersion,
)
from protocol.identity import (
    BASE32_ALPHABET,
    SIGNATURE_BYTES,
    NodeIdentity,
    PublicIdentity,
    b32,
    b64,
    unb32,
    unb64,
)

PREFIX = "TANDEM"
VERSION = 1
SIGN_CONTEXT = b"tandem-invite-v1"
CHECKSUM_BYTES = 4
CONNECTION_ID_BYTES = 16
SECRET_BYTES = 32
MAX_CODE_CHARS = 8192
MAX_NAME = 200

ReachMode = Literal["public", "dial", "relay", "private"]


@dataclass(frozen=True)
class Reach:
    """How to reach a node.

    * ``public``: it listens at ``url`` for peers;
    * ``dial``: it has no inbound address and will dial the other side at ``url`` (the peer URL the
      inviter entered);
    * ``relay``: both sides meet at the relay ``url``;
    * ``private``: (acceptors only) it listens for no one and will dial out.
    """

    mode: ReachMode
    url: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("public", "dial", "relay", "private"):
            raise InvalidMessage(f"unknown reach mode {self.mode!r}")
        if self.mode != "private" and not _is_url(self.url):
            raise InvalidMessage(f"reach mode {self.mode!r} needs an http(s) or ws(s) URL")
        if self.mode == "private" and self.url is not None:
            raise InvalidMessage("reach mode 'private' takes no URL")

    def to_json(self) -> dict[str, str]:
        return {"mode": self.mode} | ({"url": self.url} if self.url else {})

    @classmethod
    def from_json(cls, value: object) -> Reach:
        if not isinstance(value, dict) or not isinstance(value.get("mode"), str):
            raise InvalidMessage("reach must be an object with a 'mode'")
        url = value.get("url")
        if url is not None and not isinstance(url, str):
            raise InvalidMessage("reach url must be a string")
        return cls(value["mode"], url)


def _is_url(url: str | None) -> bool:
    return bool(url) and re.match(r"^(https?|wss?)://[^\s/]+", url or "") is not None


@dataclass(frozen=True)
class Invitation:
    connection_id: bytes
    inviter: PublicIdentity
    inviter_name: str
    reach: Reach
    secret: bytes = field(repr=False)  # one-time secret: never in a repr or a log line
    expires_at: int = 0  # unix seconds
    connection_name: str = ""
    project: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        obj: dict[str, Any] = {
            "v": VERSION,
            "conn": b32(self.connection_id),
            "node": self.inviter.to_json(),
            "name": self.inviter_name,
            "reach": self.reach.to_json(),
            "secret": b64(self.secret),
            "exp": self.expires_at,
        }
        if self.connection_name:
            obj["cname"] = self.connection_name
        if self.project:
            obj["project"] = self.project
        if self.extras:
            obj["x"] = self.extras
        return canonical_json(obj)

    def digest(self) -> bytes:
        """Binds the handshake to exactly this invitation."""
        return hashlib.blake2b(self.body(), digest_size=32, person=b"tandem-inv-hash1").digest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).digest()


def encode_invitation(invitation: Invitation, identity: NodeIdentity) -> str:
    """Sign and encode. ``identity`` must be the inviter's."""
    if identity.public != invitation.inviter:
        raise ValueError("an invitation must be signed by the inviter's own identity")
    if len(invitation.connection_id) != CONNECTION_ID_BYTES or len(invitation.secret) != SECRET_BYTES:
        raise ValueError("connection id must be 16 bytes and secret 32 bytes")
    body = invitation.body()
    signature = identity.sign(SIGN_CONTEXT + body)
    blob = body + signature
    return f"{PREFIX}{VERSION}{b32(blob + _checksum(blob))}"


def decode_invitation(code: str, *, now: int) -> Invitation:
    """Decode and verify. ``now`` is unix seconds (injected: no clock here)."""
    if not isinstance(code, str):
        raise NotAnInvitation("an invitation code is text")
    text = "".join(code.split())
    if not text:
        raise NotAnInvitation("the invitation code is empty")
    if len(text) > MAX_CODE_CHARS:
        raise NotAnInvitation("this is far too long to be a Tandem invitation code")
    if not text.startswith(PREFIX):
        raise NotAnInvitation("this is not a Tandem invitation code (a code starts with 'TANDEM')")
    rest = text[len(PREFIX) :]
    digits = re.match(r"^[0-9]+", rest)
    if digits is None:
        raise CorruptedInvitation("the invitation code is corrupted: its version number is missing")
    version = int(digits.group())
    if version != VERSION:
        raise UnsupportedVersion(
            f"this invitation code has version {version}, but this node understands version {VERSION}; "
            "the other side runs a different Tandem release — upgrade the older node"
        )
    payload = rest[digits.end() :]
    if not payload or any(c not in BASE32_ALPHABET for c in payload):
        raise CorruptedInvitation(
            "the invitation code is corrupted: it contains characters that cannot appear in a code "
            "(was it retyped, or changed by a mail client?)"
        )
    try:
        blob = unb32(payload)
    except ValueError:  # only the length can be wrong now: a piece is missing
        raise CorruptedInvitation("the invitation code is truncated: copy the whole code") from None
    if len(blob) < SIGNATURE_BYTES + CHECKSUM_BYTES + 2:
        raise CorruptedInvitation("the invitation code is truncated: copy the whole code")
    signed, checksum = blob[:-CHECKSUM_BYTES], blob[-CHECKSUM_BYTES:]
    if _checksum(signed) != checksum:
        raise CorruptedInvitation(
            "the invitation code is truncated or corrupted (its checksum does not match): copy it again"
        )
    body, signature = signed[:-SIGNATURE_BYTES], signed[-SIGNATURE_BYTES:]
    try:
        obj = json.loads(body.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        if obj.get("v") != VERSION:
            raise UnsupportedVersion(f"the invitation's content has unsupported version {obj.get('v')!r}")
        invitation = _from_json(obj)
    except (ValueError, KeyError, TypeError, InvalidMessage, UnicodeDecodeError) as exc:
        raise TamperedInvitation(
            f"the invitation code was altered: its content is not valid ({exc})"
        ) from None
    if invitation.body() != body or not invitation.inviter.verify(SIGN_CONTEXT + body, signature):
        raise TamperedInvitation(
            "the invitation code was altered: the inviter's signature does not match its content"
        )
    if now >= invitation.expires_at:
        raise ExpiredInvitation(
            f"this invitation code expired {_ago(now - invitation.expires_at)} ago: ask the other side "
            "for a new one"
        )
    return invitation


def _from_json(obj: dict[str, Any]) -> Invitation:
    conn = unb32(obj["conn"])
    secret = unb64(obj["secret"])
    if len(conn) != CONNECTION_ID_BYTES or len(secret) != SECRET_BYTES:
        raise ValueError("wrong connection id or secret length")
    exp = obj["exp"]
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise ValueError("expiry must be an integer")
    name = obj["name"]
    cname = obj.get("cname", "")
    project = obj.get("project")
    extras = obj.get("x", {})
    if not isinstance(name, str) or not isinstance(cname, str) or not isinstance(extras, dict):
        raise ValueError("name fields must be strings")
    if len(name) > MAX_NAME or len(cname) > MAX_NAME:
        raise ValueError(f"names are limited to {MAX_NAME} characters")
    if project is not None and not isinstance(project, str):
        raise ValueError("project must be a string")
    return Invitation(
        connection_id=conn,
        inviter=PublicIdentity.from_json(obj["node"]),
        inviter_name=name,
        reach=Reach.from_json(obj["reach"]),
        secret=secret,
        expires_at=exp,
        connection_name=cname,
        project=project,
        extras=extras,
    )


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    if seconds < 172800:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"
