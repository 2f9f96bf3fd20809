"""Tandem's wire protocol, sans-I/O.

Pure functions and state objects over bytes: identity and keys, invitation codes, the pairing
handshake, envelopes (seal/open), messages and replicas, and the per-connection session state.
This package must never import asyncio, aiohttp, aiosqlite, sockets or files, nor read the clock or
draw randomness itself: callers inject time (unix seconds) and nonces/seeds (bytes). A test
enforces the import rule. The specification is ``protocol/PROTOCOL.md``.
"""

from protocol.envelope import ChannelKeys, Header, open_pairing, read_header, seal_pairing
from protocol.errors import (
    AuthenticationFailed,
    CorruptedInvitation,
    EnvelopeError,
    ExpiredInvitation,
    HandshakeError,
    InvalidMessage,
    InvitationError,
    MalformedEnvelope,
    NotAnInvitation,
    ProtocolError,
    SessionError,
    TamperedInvitation,
    UnsupportedVersion,
    WindowExceeded,
    WrongRecipient,
)
from protocol.handshake import (
    AcceptRequest,
    check_welcome,
    make_accept,
    peek_accept,
    verification_string,
    verify_accept,
    welcome_confirm,
)
from protocol.identity import NodeIdentity, PublicIdentity, render_node_id
from protocol.invitation import Invitation, Reach, decode_invitation, encode_invitation
from protocol.messages import (
    Ack,
    Blob,
    BlobRequest,
    Bye,
    Hello,
    Message,
    Ping,
    Pong,
    ReplicaMessage,
    ReplicaResult,
    Result,
    UnknownMessage,
    Unlink,
    Welcome,
    decode_message,
    encode_message,
)
from protocol.replica import Attachment, Comment, EntityRef, Replica, StatusRef, UserRef
from protocol.session import Received, Session

__all__ = [
    "AcceptRequest",
    "Ack",
    "Attachment",
    "AuthenticationFailed",
    "Blob",
    "BlobRequest",
    "Bye",
    "ChannelKeys",
    "Comment",
    "CorruptedInvitation",
    "EntityRef",
    "EnvelopeError",
    "ExpiredInvitation",
    "HandshakeError",
    "Header",
    "Hello",
    "InvalidMessage",
    "Invitation",
    "InvitationError",
    "MalformedEnvelope",
    "Message",
    "NodeIdentity",
    "NotAnInvitation",
    "Ping",
    "Pong",
    "ProtocolError",
    "PublicIdentity",
    "Reach",
    "Received",
    "Replica",
    "ReplicaMessage",
    "ReplicaResult",
    "Result",
    "Session",
    "SessionError",
    "StatusRef",
    "TamperedInvitation",
    "UnknownMessage",
    "Unlink",
    "UnsupportedVersion",
    "UserRef",
    "Welcome",
    "WindowExceeded",
    "WrongRecipient",
    "check_welcome",
    "decode_invitation",
    "decode_message",
    "encode_invitation",
    "encode_message",
    "make_accept",
    "open_pairing",
    "peek_accept",
    "read_header",
    "render_node_id",
    "seal_pairing",
    "verification_string",
    "verify_accept",
    "welcome_confirm",
]
