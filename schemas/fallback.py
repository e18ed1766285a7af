"""Wire models of the fallback server: members attach under opaque ids and forward sealed
records to each other. The server never sees a room code, a nick, a key or a plaintext.

Same transport rules as the relay: a client is a DEALER; each request, reply and push is one
frame holding one JSON object; any request may carry a `req_id` its reply echoes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import WireModel
from schemas.fields import FallbackMemberId, FallbackRoomId, ReqId

MAX_FORWARD_PAYLOAD = 8192
"""Characters of base64 in one forwarded record (about 6 KiB of binary)."""

MemberId = FallbackMemberId
Payload = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_FORWARD_PAYLOAD, pattern=r"^[A-Za-z0-9+/=_-]+$"),
]


class FallbackErrorCode(StrEnum):
    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    MULTIPART = "multipart"
    NOT_ATTACHED = "not_attached"
    MEMBER_NOT_FOUND = "member_not_found"
    ROOM_FULL = "room_full"
    SERVER_FULL = "server_full"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"


# ------------------------------------------------------------------ client -> server


class Attach(WireModel):
    """Join `room` as `member`; a second attach of the same member moves it to this connection."""

    type: Literal["attach"]
    room: FallbackRoomId
    member: MemberId
    req_id: ReqId | None = None


class Detach(WireModel):
    type: Literal["detach"]
    req_id: ReqId | None = None


class Forward(WireModel):
    """A sealed record for one member of the sender's room, or for all others (`to` absent)."""

    type: Literal["send"]
    to: MemberId | None = None
    payload: Payload
    req_id: ReqId | None = None


class FallbackHeartbeat(WireModel):
    type: Literal["heartbeat"]
    req_id: ReqId | None = None


FallbackRequest = Annotated[
    Attach | Detach | Forward | FallbackHeartbeat, Field(discriminator="type")
]
FALLBACK_REQUEST_TYPES = frozenset({"attach", "detach", "send", "heartbeat"})


# ------------------------------------------------------------------ server -> client


class Attached(WireModel):
    type: Literal["attached"] = "attached"
    members: list[MemberId]
    """The other members attached to the room now."""
    heartbeat_timeout: float
    req_id: ReqId | None = None


class Detached(WireModel):
    type: Literal["detached"] = "detached"
    req_id: ReqId | None = None


class Sent(WireModel):
    """Only for a `send` that carried a req_id: how many members it went to."""

    type: Literal["sent"] = "sent"
    delivered: int
    req_id: ReqId | None = None


class FallbackHeartbeatAck(WireModel):
    type: Literal["heartbeat_ack"] = "heartbeat_ack"
    req_id: ReqId | None = None


class Deliver(WireModel):
    type: Literal["deliver"] = "deliver"
    from_: MemberId = Field(alias="from")
    payload: Payload


class MemberAttached(WireModel):
    type: Literal["member_attached"] = "member_attached"
    member: MemberId


class MemberDetached(WireModel):
    type: Literal["member_detached"] = "member_detached"
    member: MemberId
    reason: Literal["detached", "timeout", "replaced"]


class FallbackError(WireModel):
    type: Literal["error"] = "error"
    code: FallbackErrorCode
    message: str
    req_id: ReqId | None = None


FallbackMessage = Annotated[
    Attached
    | Detached
    | Sent
    | FallbackHeartbeatAck
    | Deliver
    | MemberAttached
    | MemberDetached
    | FallbackError,
    Field(discriminator="type"),
]
