"""Per-connection session state: sequencing, acks, dedup, reordering, resend. Sans-I/O.

Rules of this module (the whole state machine, in one place):

1. Each direction numbers its sequenced messages 1, 2, 3, … (``send_next`` is the next to use).
   Sequence 0 is reserved for control messages (hello, ack, ping, pong), which are never acked,
   never held and harmless to replay.
2. The sender keeps every sequenced envelope, byte for byte, in ``unacked`` until the peer acks it.
   The caller persists them (the node's durable outbox) and can rebuild a session from
   (``send_next``, ``recv_next``, ``unacked``) after a restart.
3. Acks are cumulative: "I have delivered everything up to N". They arrive as Ack messages, inside
   every sequenced message (``ack`` field) and as ``Hello.recv_next - 1`` when a link comes up.
   An ack for something never sent is a peer error (SessionError), not a silent clamp.
4. The receiver delivers each sequence number exactly once and in order: ``recv_next`` is the next
   it will deliver; anything lower is a duplicate or replay and is dropped (reported so the caller
   re-acks); anything higher within ``window`` is held until the gap fills; anything beyond the
   window is refused (WindowExceeded) and will be resent by the peer.
5. After a reconnect the sender resends everything in ``unacked`` (oldest first) — identical bytes,
   so duplicates are exactly recognisable — once it learned the peer's ``recv_next`` from Hello.
6. Envelopes that fail to open are rejected with EnvelopeError before touching any state.
7. What this side tells the peer it has (``ack``, the ``ack`` field of what it sends, ``Hello``)
   is ``recv_next - 1``; a Hello may say less (``recv_next=``: what the caller has persisted when
   a new link arrives while delivered messages are still being stored), so it never covers a
   message that could still be lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.envelope import ChannelKeys
from protocol.errors import InvalidMessage, SessionError, WindowExceeded
from protocol.messages import (
    Ack,
    Hello,
    Message,
    decode_message,
    encode_message,
    is_control,
    piggybacked_ack,
)

DEFAULT_WINDOW = 4096


@dataclass
class Received:
    """What one incoming envelope produced."""

    delivered: list[tuple[int, Message]] = field(default_factory=list)  # in order, exactly once
    # The plaintext each delivered message was decoded from (same order): what the caller stores,
    # instead of encoding the message again.
    plaintexts: list[bytes] = field(default_factory=list)
    control: list[Message] = field(default_factory=list)
    duplicate: bool = False  # already delivered or already held: re-ack so the peer stops resending
    newly_acked: list[int] = field(default_factory=list)  # our sequence numbers the peer just acked


@dataclass(frozen=True)
class SessionState:
    send_next: int
    recv_next: int
    peer_acked: int


class Session:
    def __init__(
        self,
        keys: ChannelKeys,
        *,
        send_next: int = 1,
        recv_next: int = 1,
        unacked: Mapping[int, bytes] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if send_next < 1 or recv_next < 1:
            raise ValueError("sequence numbers start at 1")
        self.keys = keys
        self.send_next = send_next
        self.recv_next = recv_next
        self.window = window
        self._unacked: dict[int, bytes] = dict(sorted((unacked or {}).items()))
        if any(seq >= send_next or seq < 1 for seq in self._unacked):
            raise ValueError("unacked sequence numbers must lie in [1, send_next)")
        self.peer_acked = min(self._unacked, default=send_next) - 1
        self._held: dict[int, tuple[Message, bytes]] = {}

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: Message, nonce: bytes) -> tuple[int, bytes]:
        """Seal a sequenced message; returns (sequence, envelope). Keep the envelope until acked.
        It carries everything delivered as its piggybacked ack."""
        if is_control(message):
            raise ValueError(f"{message.t} is a control message: use control()")
        if "ack" in type(message).model_fields:
            message = message.model_copy(update={"ack": self.delivered_upto})
        seq = self.send_next
        data = self.keys.seal(seq, encode_message(message), nonce)
        self.send_next += 1
        self._unacked[seq] = data
        return seq, data

    def control(self, message: Message, nonce: bytes) -> bytes:
        if not is_control(message):
            raise ValueError(f"{message.t} is a sequenced message: use send()")
        return self.keys.seal(0, encode_message(message), nonce)

    def hello(
        self,
        nonce: bytes,
        *,
        software: str = "",
        features: list[str] | None = None,
        recv_next: int | None = None,
    ) -> bytes:
        """The Hello for a new link; ``recv_next`` (default: ours) is what the peer resends from."""
        upto = self.delivered_upto
        if recv_next is not None:
            if not 1 <= recv_next <= self.recv_next:
                raise ValueError(f"cannot ack {recv_next - 1}: delivered up to {self.delivered_upto}")
            upto = recv_next - 1
        return self.control(Hello(recv_next=upto + 1, software=software, features=features or []), nonce)

    def ack(self, nonce: bytes) -> bytes:
        """A cumulative ack of everything delivered."""
        return self.control(Ack(upto=self.delivered_upto), nonce)

    @property
    def delivered_upto(self) -> int:
        return self.recv_next - 1

    def unacked(self) -> list[tuple[int, bytes]]:
        """Everything to resend after a reconnect, oldest first."""
        return list(self._unacked.items())

    def _on_ack(self, upto: int, out: Received) -> None:
        if upto >= self.send_next:
            raise SessionError(f"peer acked sequence {upto}, but only {self.send_next - 1} were sent")
        if upto <= self.peer_acked:
            return
        for seq in range(self.peer_acked + 1, upto + 1):
            if self._unacked.pop(seq, None) is not None:
                out.newly_acked.append(seq)
        self.peer_acked = upto

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> Received:
        """Open one envelope from the peer. Raises EnvelopeError / InvalidMessage / SessionError
        without changing state when the envelope must be rejected."""
        header, plaintext = self.keys.open(data)
        seq = header.sequence
        if seq and (seq < self.recv_next or seq in self._held):
            # Authentic (it opened) and already delivered or held: a resend after a reconnect,
            # dropped without decoding it again.
            return Received(duplicate=True)
        message = decode_message(plaintext)
        out = Received()
        if seq == 0:
            if not is_control(message):
                raise InvalidMessage(f"{message.t} must be sequenced")
            if isinstance(message, Hello):
                self._on_ack(message.recv_next - 1, out)
            elif isinstance(message, Ack):
                self._on_ack(message.upto, out)
            out.control.append(message)
            return out
        if is_control(message):
            raise InvalidMessage(f"control message {message.t} must not be sequenced")
        if seq >= self.recv_next + self.window:
            raise WindowExceeded(f"sequence {seq} is more than {self.window} ahead of {self.recv_next}")
        self._on_ack(piggybacked_ack(message), out)
        self._held[seq] = (message, plaintext)
        while self.recv_next in self._held:
            held, text = self._held.pop(self.recv_next)
            out.delivered.append((self.recv_next, held))
            out.plaintexts.append(text)
            self.recv_next += 1
        return out

    def state(self) -> SessionState:
        return SessionState(self.send_next, self.recv_next, self.peer_acked)

    @property
    def held(self) -> int:
        return len(self._held)
