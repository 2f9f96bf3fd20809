"""Every error the protocol raises. Callers can read the policy from the tree::

    ProtocolError                    anything wrong with bytes or state handled by protocol/
    ├── InvitationError              a pasted invitation code cannot be used (a person reads this)
    │   ├── NotAnInvitation          not a Tandem code at all (wrong prefix, empty, random text)
    │   ├── CorruptedInvitation      truncated or corrupted in copy-paste (checksum/length/encoding)
    │   ├── UnsupportedVersion       made by a newer or unknown Tandem version
    │   ├── TamperedInvitation       checksum fine but the inviter's signature does not match
    │   └── ExpiredInvitation        signature fine, but past its expiry
    ├── HandshakeError               pairing proof or confirmation does not verify
    ├── EnvelopeError                a sealed message that must be dropped (counted, never delivered)
    │   ├── MalformedEnvelope        cannot be parsed (garbage, truncated, wrong magic/version)
    │   ├── WrongRecipient           routed to someone else or for another connection
    │   └── AuthenticationFailed     decryption/authentication failed (tampered, wrong keys)
    ├── SessionError                 sequence rules broken by the peer
    │   └── WindowExceeded           message too far ahead of what was delivered
    └── InvalidMessage               decrypted fine but the content is not a valid message

None of these is transient: retrying the same bytes gives the same error. The node decides whether
a peer that keeps sending bad input should be disconnected.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by protocol/."""


class InvitationError(ProtocolError):
    """An invitation code that cannot be used. ``str(err)`` is meant for the person who pasted it."""


class NotAnInvitation(InvitationError):
    pass


class CorruptedInvitation(InvitationError):
    pass


class UnsupportedVersion(InvitationError):
    pass


class TamperedInvitation(InvitationError):
    pass


class ExpiredInvitation(InvitationError):
    pass


class HandshakeError(ProtocolError):
    pass


class EnvelopeError(ProtocolError):
    pass


class MalformedEnvelope(EnvelopeError):
    pass


class WrongRecipient(EnvelopeError):
    pass


class AuthenticationFailed(EnvelopeError):
    pass


class SessionError(ProtocolError):
    pass


class WindowExceeded(SessionError):
    pass


class InvalidMessage(ProtocolError):
    pass
