"""Messages carried inside envelopes (compact JSON, discriminated by ``"t"``).

Sequenced messages (``seq >= 1``, delivered exactly once, in order, acked cumulatively):
    welcome   the inviter's confirmation that pairing succeeded
    replica   one entity's replica, as the sender's outgoing rules shaped it
    result    the receiver's outcome for replicas it processed (applied / failed / ignored)
    unlink    stop syncing one entity (the twin stays, the link goes)
    blob      a chunk of attachment content (sha256-verified by the receiver)
    blob_request  ask the peer for attachment content
    bye       the connection was deleted by the sender
    probe     a diagnostic message (``tandem connection test``, delivery tests, latency benchmarks)

Control messages (``seq == 0``; idempotent, never acked, safe to replay):
    hello     sent first on every link: where the sender's receive side stands (``recv_next``)
    ack       cumulative ack (``upto``), optionally carrying results
    ping/pong keepalive and latency

Every sequenced message also carries ``ack`` (piggybacked cumulative ack of the other direction).
Unknown ``t`` values from newer peers decode to :class:`UnknownMessage` so they can be acked and
skipped rather than break the link. The pairing request (``accept``) travels in a PAIR envelope and
is defined in :mod:`protocol.handshake`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from protocol import jsonbytes
from protocol.errors import InvalidMessage
from protocol.replica import EntityRef, Replica

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_NAME = 200  # display names shown to the other side's admin
MAX_REASON = 4000  # free-text reasons shown to the other side's admin


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Msg):
    t: Literal["hello"] = "hello"
    recv_next: int = Field(ge=1)
    software: str = ""
    features: list[str] = Field(default_factory=list)


class Welcome(_Msg):
    t: Literal["welcome"] = "welcome"
    ack: int = Field(default=0, ge=0)
    confirm: str = Field(max_length=200)  # base64url HMAC: the inviter knows the one-time secret
    name: str = Field(default="", max_length=MAX_NAME)


class ReplicaMessage(_Msg):
    t: Literal["replica"] = "replica"
    ack: int = Field(default=0, ge=0)
    replica: Replica
    version: int = Field(ge=1)  # per-entity counter on the sender's side, increases with each send
    reason: str = "update"  # "create" | "update" | "manual" | "bulk" | "reconcile"


Outcome = Literal["applied", "failed", "ignored"]


class ReplicaResult(_Msg):
    entity_id: str  # the sender's entity id (Replica.entity.id)
    version: int
    outcome: Outcome
    reason: str | None = Field(default=None, max_length=MAX_REASON)
    twin: EntityRef | None = None  # the receiver's entity, once it exists


class Result(_Msg):
    t: Literal["result"] = "result"
    ack: int = Field(default=0, ge=0)
    results: list[ReplicaResult]


class Unlink(_Msg):
    t: Literal["unlink"] = "unlink"
    ack: int = Field(default=0, ge=0)
    entity: EntityRef
    reason: str = Field(default="", max_length=MAX_REASON)


class BlobRequest(_Msg):
    t: Literal["blob_request"] = "blob_request"
    ack: int = Field(default=0, ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    entity_id: str
    attachment_id: str


class Blob(_Msg):
    t: Literal["blob"] = "blob"
    ack: int = Field(default=0, ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    offset: int = Field(ge=0)
    total: int = Field(ge=0)
    data: str  # base64url chunk
    error: str | None = Field(default=None, max_length=MAX_REASON)  # the sender cannot provide it


class Bye(_Msg):
    t: Literal["bye"] = "bye"
    ack: int = Field(default=0, ge=0)
    reason: str = Field(default="", max_length=MAX_REASON)


class Probe(_Msg):
    t: Literal["probe"] = "probe"
    ack: int = Field(default=0, ge=0)
    n: int = Field(ge=0)
    sent_ms: int = 0
    payload: str = ""


class Ack(_Msg):
    t: Literal["ack"] = "ack"
    upto: int = Field(ge=0)
    results: list[ReplicaResult] = Field(default_factory=list)


class Ping(_Msg):
    t: Literal["ping"] = "ping"
    sent_ms: int = 0


class Pong(_Msg):
    t: Literal["pong"] = "pong"
    sent_ms: int = 0


class UnknownMessage(_Msg):
    """A message type this node does not know (from a newer peer); acked and skipped."""

    t: str
    ack: int = 0


KnownMessage = Annotated[
    Hello | Welcome | ReplicaMessage | Result | Unlink | BlobRequest | Blob | Bye | Probe | Ack | Ping | Pong,
    Field(discriminator="t"),
]
Message = (
    Hello
    | Welcome
    | ReplicaMessage
    | Result
    | Unlink
    | BlobRequest
    | Blob
    | Bye
    | Probe
    | Ack
    | Ping
    | Pong
    | UnknownMessage
)

CONTROL_TYPES = frozenset({"hello", "ack", "ping", "pong"})
_KNOWN: TypeAdapter[Any] = TypeAdapter(KnownMessage)
_KNOWN_TYPES = frozenset(
    {
        "hello",
        "welcome",
        "replica",
        "result",
        "unlink",
        "blob_request",
        "blob",
        "bye",
        "probe",
        "ack",
        "ping",
        "pong",
    }
)


def is_control(message: Message) -> bool:
    return message.t in CONTROL_TYPES


def encode_message(message: Message) -> bytes:
    """Compact JSON, UTF-8, keys in field order: ``json.dumps(message.model_dump(mode="json"),
    separators=(",", ":"), ensure_ascii=False)`` byte for byte. pydantic's own serializer writes
    those bytes straight from the model, several times faster, except for the floats
    :func:`protocol.jsonbytes.differs` finds and what it refuses (a lone surrogate): those take the
    ``json`` path. ``tests/protocol/test_message_json.py`` pins the equivalence."""
    try:
        fast: bytes | None = type(message).__pydantic_serializer__.to_json(message)
    except (PydanticSerializationError, ValueError):
        fast = None
    if fast is not None and not jsonbytes.differs(fast):
        return fast
    return jsonbytes.dumps(message.model_dump(mode="json"))


def decode_message(data: bytes) -> Message:
    """Parse plaintext into a message; raises InvalidMessage naming the problem."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = jsonbytes.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidMessage(f"message is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise InvalidMessage("message must be a JSON object with a string 't'")
    if obj["t"] not in _KNOWN_TYPES:
        ack = obj.get("ack", 0)
        return UnknownMessage(t=obj["t"], ack=ack if isinstance(ack, int) and ack >= 0 else 0)
    try:
        message: Message = _KNOWN.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidMessage(f"invalid {obj['t']} message: {where}: {first['msg']}") from None
    return message


def piggybacked_ack(message: Message) -> int:
    """The cumulative ack a message carries (0 when none)."""
    if isinstance(message, Ack):
        return message.upto
    return int(getattr(message, "ack", 0) or 0)
