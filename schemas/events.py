"""Room events the relay publishes on its PUB socket (topic = room code).

They carry nicks and event types, never a host, a port or a payload. `seq` rises by one per
event across the whole relay and `room_seq` by one per event of the room, so a subscriber to
every room or to some rooms can tell when it missed events; `relay` changes when the relay
restarts (both counts start again). `relay_alive` (topic `!relay`) goes out every few seconds
with the latest `seq`, so a quiet relay is told from a lost one and a tail gap is seen.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import WireModel
from schemas.fields import Nick, RelayInstance, RoomCode, Sequence, UnixTime


class RoomOpened(WireModel):
    type: Literal["room_created"] = "room_created"
    code: RoomCode
    seq: Sequence
    room_seq: Sequence
    relay: RelayInstance
    at: UnixTime


class MemberJoined(WireModel):
    type: Literal["peer_joined"] = "peer_joined"
    code: RoomCode
    nick: Nick
    seq: Sequence
    room_seq: Sequence
    relay: RelayInstance
    at: UnixTime


class MemberLeft(WireModel):
    type: Literal["peer_left"] = "peer_left"
    code: RoomCode
    nick: Nick
    reason: Literal["left", "timeout", "expired"]
    seq: Sequence
    room_seq: Sequence
    relay: RelayInstance
    at: UnixTime


class RoomEnded(WireModel):
    """A room went away: at its expiry, or after staying empty for the grace period."""

    type: Literal["room_expired", "room_closed"]
    code: RoomCode
    seq: Sequence
    room_seq: Sequence
    relay: RelayInstance
    at: UnixTime


class RoomClosedToJoiners(WireModel):
    type: Literal["room_locked"] = "room_locked"
    code: RoomCode
    seq: Sequence
    room_seq: Sequence
    relay: RelayInstance
    at: UnixTime


ALIVE_TOPIC = "!relay"


class RelayAlive(WireModel):
    """The relay's periodic beat on topic `!relay` (not a room event)."""

    type: Literal["relay_alive"] = "relay_alive"
    relay: RelayInstance
    seq: Annotated[int, Field(ge=0)]
    """The `seq` of the latest room event (0: none yet)."""
    started_at: UnixTime
    at: UnixTime


AnyRoomEvent = RoomOpened | MemberJoined | MemberLeft | RoomEnded | RoomClosedToJoiners
"""Any room event, as a plain union (for type hints); `RoomEvent` is what decodes one."""
RoomEvent = Annotated[AnyRoomEvent, Field(discriminator="type")]
PubMessage = Annotated[AnyRoomEvent | RelayAlive, Field(discriminator="type")]
"""Anything on the PUB socket."""
