"""The relay's room events for its PUB socket, numbered. Pure.

`seq` counts every event of this relay process, `room_seq` the events of one room; `relay` is
this process's random instance id, so subscribers can tell missed events from a restart.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from broker.registry import Room
from schemas.events import (
    MemberJoined,
    MemberLeft,
    RelayAlive,
    RoomClosedToJoiners,
    RoomEnded,
    RoomOpened,
)


class _Numbers(TypedDict):
    seq: int
    room_seq: int
    relay: str
    at: float


class EventNumbers:
    def __init__(self, instance: str, wall_offset: float, started: float) -> None:
        self.instance = instance
        self.seq = 0
        self.wall_offset = wall_offset
        self._started = started

    def opened(self, room: Room, now: float) -> RoomOpened:
        return RoomOpened(code=room.code, **self._numbers(room, now))

    def joined(self, room: Room, nick: str, now: float) -> MemberJoined:
        return MemberJoined(code=room.code, nick=nick, **self._numbers(room, now))

    def left(
        self, room: Room, nick: str, reason: Literal["left", "timeout", "expired"], now: float
    ) -> MemberLeft:
        return MemberLeft(code=room.code, nick=nick, reason=reason, **self._numbers(room, now))

    def ended(
        self, room: Room, kind: Literal["room_expired", "room_closed"], now: float
    ) -> RoomEnded:
        return RoomEnded(type=kind, code=room.code, **self._numbers(room, now))

    def locked(self, room: Room, now: float) -> RoomClosedToJoiners:
        return RoomClosedToJoiners(code=room.code, **self._numbers(room, now))

    def alive(self, now: float) -> RelayAlive:
        return RelayAlive(
            relay=self.instance,
            seq=self.seq,
            started_at=self._started + self.wall_offset,
            at=now + self.wall_offset,
        )

    def _numbers(self, room: Room, now: float) -> _Numbers:
        self.seq += 1
        room.events += 1
        return {
            "seq": self.seq,
            "room_seq": room.events,
            "relay": self.instance,
            "at": now + self.wall_offset,
        }
