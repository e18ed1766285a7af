"""Room events the relay publishes on its PUB socket (topic = room code).

They carry nicks and event types, never a host, a port or a payload. `seq` rises by one per
event across the whole relay, so a subscriber can tell when it missed some.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.base import WireModel
from schemas.fields import Nick, RoomCode, Sequence, UnixTime


class RoomOpened(WireModel):
    type: Literal["room_created"] = "room_created"
    code: RoomCode
    seq: Sequence
    at: UnixTime


class MemberJoined(WireModel):
    type: Literal["peer_joined"] = "peer_joined"
    code: RoomCode
    nick: Nick
    seq: Sequence
    at: UnixTime


class MemberLeft(WireModel):
    type: Literal["peer_left"] = "peer_left"
    code: RoomCode
    nick: Nick
    reason: Literal["left", "timeout", "expired"]
    seq: Sequence
    at: UnixTime


class RoomEnded(WireModel):
    """A room went away: at its expiry, or after staying empty for the grace period."""

    type: Literal["room_expired", "room_closed"]
    code: RoomCode
    seq: Sequence
    at: UnixTime


class RoomClosedToJoiners(WireModel):
    type: Literal["room_locked"] = "room_locked"
    code: RoomCode
    seq: Sequence
    at: UnixTime


RoomEvent = Annotated[
    RoomOpened | MemberJoined | MemberLeft | RoomEnded | RoomClosedToJoiners,
    Field(discriminator="type"),
]
