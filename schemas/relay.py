"""Wire models of the discovery relay protocol: requests, replies and pushes on the ROUTER.

`type` values and field names follow docs/protocol.md (and the original design's JSON examples).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from schemas.base import WireModel
from schemas.fields import (
    Host,
    Nick,
    Port,
    RelayInstance,
    ReqId,
    RoomCode,
    RoomToken,
    ServiceAddress,
    SignalPayload,
    UnixTime,
    Z85Key,
)


class ErrorCode(StrEnum):
    """Stable machine codes carried by `error` replies."""

    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    MULTIPART = "multipart"
    ROOM_NOT_FOUND = "room_not_found"
    NICK_TAKEN = "nick_taken"
    NOT_MEMBER = "not_member"
    PEER_NOT_FOUND = "peer_not_found"
    ROOM_FULL = "room_full"
    TOO_MANY_ROOMS = "too_many_rooms"
    RELAY_FULL = "relay_full"
    RATE_LIMITED = "rate_limited"
    ROOM_LOCKED = "room_locked"
    BAD_TOKEN = "bad_token"  # noqa: S105 - an error code, not a secret
    ROOM_TAKEN = "room_taken"
    INTERNAL_ERROR = "internal_error"


class PeerInfo(WireModel):
    """A room member as it registered; `host`/`port` are absent when it published no address."""

    nick: Nick
    host: Host | None = None
    port: Port | None = None


# ---------------------------------------------------------------- client -> relay requests


class CreateRoom(WireModel):
    """Ask for a new room code. With `nick`, the sender also becomes the room's first member."""

    type: Literal["create_room"]
    nick: Nick | None = None
    listen_port: Port | None = None
    req_id: ReqId | None = None


class RegisterPeer(WireModel):
    """Join a room as `nick` (or update this connection's own registration)."""

    type: Literal["register_peer"]
    code: RoomCode
    nick: Nick
    host: Host | None = None
    port: Port | None = None
    req_id: ReqId | None = None


class LookupRoom(WireModel):
    type: Literal["lookup_room"]
    code: RoomCode
    nick: Nick | None = None
    req_id: ReqId | None = None


class LeaveRoom(WireModel):
    type: Literal["leave_room"]
    code: RoomCode
    req_id: ReqId | None = None


class LockRoom(WireModel):
    """A member closes the room to new joiners (after repeated wrong-secret attempts)."""

    type: Literal["lock_room"]
    code: RoomCode
    req_id: ReqId | None = None


class Heartbeat(WireModel):
    """Keeps every membership of this connection alive (any request does too). With `code`,
    the acknowledgement says whether this connection is still a member of that room."""

    type: Literal["heartbeat"]
    code: RoomCode | None = None
    req_id: ReqId | None = None


class ReclaimRoom(WireModel):
    """After a relay restart (or a long silence), a member takes its room code back: `token`,
    handed out at the room's creation, proves the right. Answered with `peer_registered`."""

    type: Literal["reclaim_room"]
    code: RoomCode
    nick: Nick
    token: RoomToken
    req_id: ReqId | None = None


class GetRelayInfo(WireModel):
    """Where this relay publishes room events, and whether that needs a CurveZMQ key."""

    type: Literal["relay_info"]
    req_id: ReqId | None = None


class SendSignal(WireModel):
    """An opaque payload for one other member of the same room."""

    type: Literal["signal"]
    code: RoomCode
    to: Nick
    payload: SignalPayload
    req_id: ReqId | None = None


class RequestCoordination(WireModel):
    """Ask the relay to give two members (the sender and one other) a common start time."""

    type: Literal["coordinate_connection"]
    code: RoomCode
    peers: Annotated[list[Nick], Field(min_length=2, max_length=2)]
    req_id: ReqId | None = None


class ObserveAddress(WireModel):
    """Ask which address and port the relay sees this connection come from (netcheck)."""

    type: Literal["observe_address"]
    req_id: ReqId | None = None


RelayRequest = Annotated[
    CreateRoom
    | RegisterPeer
    | LookupRoom
    | LeaveRoom
    | LockRoom
    | Heartbeat
    | SendSignal
    | RequestCoordination
    | ObserveAddress
    | ReclaimRoom
    | GetRelayInfo,
    Field(discriminator="type"),
]
MEMBER_HEARTBEAT = 5.0
"""Seconds between a member's heartbeats to the relay (a relay's member timeout should be
well above it)."""

REQUEST_TYPES = frozenset(
    {
        "create_room",
        "register_peer",
        "lookup_room",
        "leave_room",
        "lock_room",
        "heartbeat",
        "signal",
        "coordinate_connection",
        "observe_address",
        "reclaim_room",
        "relay_info",
    }
)


# ---------------------------------------------------------------- relay -> client replies


class RoomCreated(WireModel):
    type: Literal["room_created"] = "room_created"
    code: RoomCode
    expires_at: int
    observed_host: Host | None = None
    observed_port: Port | None = None
    fallback: ServiceAddress | None = None
    """The fallback server this relay advertises, if any."""
    token: RoomToken | None = None
    """Proves the right to re-claim this code after a relay restart: share it only sealed."""
    relay: ServiceAddress | None = None
    """HOST:PORT others reach this relay at, when it advertises one (for the invite command)."""
    req_id: ReqId | None = None


class PeerRegistered(WireModel):
    type: Literal["peer_registered"] = "peer_registered"
    success: Literal[True] = True
    code: RoomCode
    nick: Nick
    expires_at: int
    heartbeat_timeout: float
    observed_host: Host | None = None
    observed_port: Port | None = None
    fallback: ServiceAddress | None = None
    req_id: ReqId | None = None


class RoomInfo(WireModel):
    type: Literal["room_info"] = "room_info"
    code: RoomCode
    expires_at: int
    peers: list[PeerInfo]
    req_id: ReqId | None = None


class RoomLeft(WireModel):
    type: Literal["room_left"] = "room_left"
    code: RoomCode
    req_id: ReqId | None = None


class RoomLocked(WireModel):
    """The reply to `lock_room`, and the push its other members get."""

    type: Literal["room_locked"] = "room_locked"
    code: RoomCode
    req_id: ReqId | None = None


class HeartbeatAck(WireModel):
    type: Literal["heartbeat_ack"] = "heartbeat_ack"
    code: RoomCode | None = None
    member: bool | None = None
    """For a heartbeat that named a room: whether this connection is a member of it."""
    req_id: ReqId | None = None


class RelayInfo(WireModel):
    """The reply to `relay_info`."""

    type: Literal["relay_info"] = "relay_info"
    relay: RelayInstance
    pub: ServiceAddress | None = None
    """HOST:PORT of the room-event PUB socket when the relay advertises one."""
    pub_port: Port | None = None
    """Otherwise its port, on the host the client reached the relay at."""
    pub_key: Z85Key | None = None
    """The PUB socket is a CurveZMQ server with this key; only allow-listed monitors get in."""
    req_id: ReqId | None = None


class SignalSent(WireModel):
    type: Literal["signal_sent"] = "signal_sent"
    code: RoomCode
    to: Nick
    req_id: ReqId | None = None


class ObservedAddress(WireModel):
    """The reply to `observe_address`: where this connection comes from, as the relay sees it."""

    type: Literal["observed_address"] = "observed_address"
    host: Host | None = None
    port: Port | None = None
    fallback: ServiceAddress | None = None
    """The fallback server this relay advertises, if any."""
    req_id: ReqId | None = None


class Error(WireModel):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    req_id: ReqId | None = None


# ---------------------------------------------------------------- relay -> client pushes


class PeerJoined(WireModel):
    type: Literal["peer_joined"] = "peer_joined"
    code: RoomCode
    peer: PeerInfo


class PeerLeft(WireModel):
    type: Literal["peer_left"] = "peer_left"
    code: RoomCode
    nick: Nick
    reason: Literal["left", "timeout"]


class ReceivedSignal(WireModel):
    type: Literal["signal"] = "signal"
    code: RoomCode
    from_: Nick = Field(alias="from")
    payload: SignalPayload


class CoordinateConnection(WireModel):
    """Pushed to both members (and the reply to the one who asked): connect at `timestamp`."""

    type: Literal["coordinate_connection"] = "coordinate_connection"
    code: RoomCode
    peers: Annotated[list[Nick], Field(min_length=2, max_length=2)]
    timestamp: UnixTime
    req_id: ReqId | None = None


class RoomExpired(WireModel):
    type: Literal["room_expired"] = "room_expired"
    code: RoomCode


RelayMessage = Annotated[
    RoomCreated
    | PeerRegistered
    | RoomInfo
    | RoomLeft
    | RoomLocked
    | HeartbeatAck
    | SignalSent
    | ObservedAddress
    | RelayInfo
    | Error
    | PeerJoined
    | PeerLeft
    | ReceivedSignal
    | CoordinateConnection
    | RoomExpired,
    Field(discriminator="type"),
]
