"""The relay's protocol core: one request in, effects (sends and publications) out.

Pure: no sockets, no clock, no threads. The adapter passes the routing id of the connection,
the raw frames, where the connection comes from, and `now` (monotonic seconds).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from broker.codes import generate_code
from broker.ratelimit import RateLimiter
from broker.registry import Member, MemberGone, RegistryError, Room, RoomGone, RoomRegistry
from broker.settings import RelaySettings
from schemas.base import WireModel
from schemas.codec import WireError, decode_request, encode, with_req_id
from schemas.events import MemberJoined, MemberLeft, RoomClosedToJoiners, RoomEnded, RoomOpened
from schemas.relay import (
    CoordinateConnection,
    CreateRoom,
    Error,
    ErrorCode,
    Heartbeat,
    HeartbeatAck,
    LeaveRoom,
    LockRoom,
    LookupRoom,
    ObserveAddress,
    ObservedAddress,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    PeerRegistered,
    ReceivedSignal,
    RegisterPeer,
    RequestCoordination,
    RoomCreated,
    RoomExpired,
    RoomInfo,
    RoomLeft,
    RoomLocked,
    SendSignal,
    SignalSent,
)

_CODE_ATTEMPTS = 64
UNKNOWN_SOURCE = "unknown"


class Origin(Protocol):
    """Where a request's connection comes from, as the relay observes it."""

    @property
    def host(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class KnownOrigin:
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """A reply or a push to one client connection."""

    client: bytes
    message: WireModel | bytes
    """A model, or a reply the core already encoded (a cached one)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """A room event for the PUB socket; `event.code` is the topic."""

    event: MemberJoined | MemberLeft | RoomOpened | RoomEnded | RoomClosedToJoiners


Effect = Send | Publish


class RelayCore:
    def __init__(
        self, settings: RelaySettings, *, rng: random.Random, wall_offset: float = 0.0
    ) -> None:
        """`wall_offset` turns a monotonic `now` into Unix time for timestamps on the wire."""
        self.settings = settings
        self.registry = RoomRegistry(
            room_ttl=settings.room_ttl,
            member_timeout=settings.member_timeout,
            empty_room_grace=settings.empty_room_grace,
            max_rooms=settings.max_rooms,
            max_rooms_per_source=settings.max_rooms_per_source,
            max_members_per_room=settings.max_members_per_room,
        )
        self._rng = rng
        self._wall_offset = wall_offset
        self._seq = 0
        # Lookups outnumber membership changes: each room's `room_info` is encoded once per change.
        self._room_infos: dict[str, bytes] = {}
        self._create_limit = RateLimiter(
            burst=settings.create_burst,
            rate=settings.create_per_minute / 60.0,
            max_keys=settings.max_tracked_sources,
        )
        self._miss_limit = RateLimiter(
            burst=settings.miss_burst,
            rate=settings.miss_per_minute / 60.0,
            max_keys=settings.max_tracked_sources,
        )
        self._signal_limit = RateLimiter(
            burst=settings.signal_burst,
            rate=settings.signal_per_second,
            max_keys=settings.max_tracked_sources,
        )
        self._handlers: dict[type[Any], Callable[[bytes, Any, Origin, float], list[Effect]]] = {
            CreateRoom: self._create_room,
            RegisterPeer: self._register_peer,
            LookupRoom: self._lookup_room,
            LeaveRoom: self._leave_room,
            LockRoom: self._lock_room,
            Heartbeat: self._heartbeat,
            SendSignal: self._signal,
            RequestCoordination: self._coordinate,
            ObserveAddress: self._observe,
        }

    # ------------------------------------------------------------------ entry points

    def handle(
        self, client: bytes, frames: Sequence[bytes], origin: Origin, now: float
    ) -> list[Effect]:
        """One inbound ZMQ message (routing id stripped) -> the effects it causes."""
        self.registry.touch(client, now)
        if len(frames) != 1:
            return [_error(client, ErrorCode.MULTIPART, "a request is exactly one frame")]
        try:
            request = decode_request(frames[0])
        except WireError as exc:
            return [_error(client, exc.code, exc.message)]
        try:
            return self._handlers[type(request)](client, request, origin, now)
        except RegistryError as exc:
            return [_error(client, exc.code, exc.message, request.req_id)]

    def tick(self, now: float) -> list[Effect]:
        """Time passes: silent members, expired rooms and long-empty rooms go."""
        effects: list[Effect] = []
        for event in self.registry.expire(now):
            if isinstance(event, MemberGone):
                effects.extend(self._member_gone(event, now))
            else:
                effects.extend(self._room_gone(event, now))
        return effects

    def next_deadline(self) -> float | None:
        return self.registry.next_deadline()

    # ------------------------------------------------------------------ requests

    def _create_room(
        self, client: bytes, request: CreateRoom, origin: Origin, now: float
    ) -> list[Effect]:
        source = origin.host or UNKNOWN_SOURCE
        if not self._create_limit.try_take(source, now):
            raise RegistryError(ErrorCode.RATE_LIMITED, "too many rooms created; try again later")
        room = self.registry.create(self._fresh_code(), source, now)
        effects: list[Effect] = [
            Publish(RoomOpened(code=room.code, seq=self._next_seq(), at=self._wall(now)))
        ]
        if request.nick is not None:
            member, _ = self.registry.register(
                room.code, request.nick, client, None, request.listen_port, now=now
            )
            self._room_infos.pop(room.code, None)
            effects.extend(self._member_joined(room, member.nick, now))
        reply = RoomCreated(
            code=room.code,
            expires_at=round(self._wall(room.expires_at)),
            observed_host=origin.host,
            observed_port=origin.port,
            fallback=self.settings.fallback,
            req_id=request.req_id,
        )
        return [Send(client, reply), *effects]

    def _register_peer(
        self, client: bytes, request: RegisterPeer, origin: Origin, now: float
    ) -> list[Effect]:
        room = self._find_room(request.code, origin, now)
        member, joined = self.registry.register(
            room.code, request.nick, client, request.host, request.port, now=now
        )
        self._room_infos.pop(room.code, None)
        reply = PeerRegistered(
            code=room.code,
            nick=member.nick,
            expires_at=round(self._wall(room.expires_at)),
            heartbeat_timeout=self.settings.member_timeout,
            observed_host=origin.host,
            observed_port=origin.port,
            fallback=self.settings.fallback,
            req_id=request.req_id,
        )
        effects: list[Effect] = [Send(client, reply)]
        if joined:
            effects.extend(self._member_joined(room, member.nick, now))
        return effects

    def _lookup_room(
        self, client: bytes, request: LookupRoom, origin: Origin, now: float
    ) -> list[Effect]:
        room = self._find_room(request.code, origin, now)
        body = self._room_infos.get(room.code)
        if body is None:
            peers = [PeerInfo(nick=m.nick, host=m.host, port=m.port) for m in room.members.values()]
            info = RoomInfo(
                code=room.code, expires_at=round(self._wall(room.expires_at)), peers=peers
            )
            body = self._room_infos[room.code] = encode(info)
        return [Send(client, with_req_id(body, request.req_id))]

    def _leave_room(
        self, client: bytes, request: LeaveRoom, origin: Origin, now: float
    ) -> list[Effect]:
        gone = self.registry.leave(request.code, client, now)
        if gone is None:
            raise RegistryError(ErrorCode.NOT_MEMBER, f"not a member of {request.code}")
        return [
            Send(client, RoomLeft(code=request.code, req_id=request.req_id)),
            *self._member_gone(gone, now),
        ]

    def _lock_room(
        self, client: bytes, request: LockRoom, origin: Origin, now: float
    ) -> list[Effect]:
        nick = self._member_nick(client, request.code)
        room = self.registry.get(request.code)
        if room is None:  # a member's room always exists; keep mypy and readers sure
            raise RegistryError(ErrorCode.ROOM_NOT_FOUND, f"no room {request.code}")
        effects: list[Effect] = [Send(client, RoomLocked(code=room.code, req_id=request.req_id))]
        if not room.locked:
            room.locked = True
            push = RoomLocked(code=room.code)
            effects.extend(Send(m.client, push) for m in room.members.values() if m.nick != nick)
            event = RoomClosedToJoiners(code=room.code, seq=self._next_seq(), at=self._wall(now))
            effects.append(Publish(event))
        return effects

    def _heartbeat(
        self, client: bytes, request: Heartbeat, origin: Origin, now: float
    ) -> list[Effect]:
        return [Send(client, HeartbeatAck(req_id=request.req_id))]

    def _signal(
        self, client: bytes, request: SendSignal, origin: Origin, now: float
    ) -> list[Effect]:
        sender = self._member_nick(client, request.code)
        target = self._other_member(request.code, sender, request.to)
        self._take_signal_token(client, now)
        push = ReceivedSignal(code=request.code, from_=sender, payload=request.payload)
        reply = SignalSent(code=request.code, to=target.nick, req_id=request.req_id)
        return [Send(client, reply), Send(target.client, push)]

    def _coordinate(
        self, client: bytes, request: RequestCoordination, origin: Origin, now: float
    ) -> list[Effect]:
        sender = self._member_nick(client, request.code)
        first, second = request.peers
        if sender not in (first, second):
            raise RegistryError(ErrorCode.BAD_REQUEST, "the sender must be one of the two peers")
        other = self._other_member(request.code, sender, second if sender == first else first)
        self._take_signal_token(client, now)
        timestamp = self._wall(now + self.settings.coordinate_lead)
        peers = [first, second]
        reply = CoordinateConnection(
            code=request.code, peers=peers, timestamp=timestamp, req_id=request.req_id
        )
        push = CoordinateConnection(code=request.code, peers=peers, timestamp=timestamp)
        return [Send(client, reply), Send(other.client, push)]

    def _observe(
        self, client: bytes, request: ObserveAddress, origin: Origin, now: float
    ) -> list[Effect]:
        self._take_signal_token(client, now)
        reply = ObservedAddress(
            host=origin.host,
            port=origin.port,
            fallback=self.settings.fallback,
            req_id=request.req_id,
        )
        return [Send(client, reply)]

    # ------------------------------------------------------------------ helpers

    def _find_room(self, code: str, origin: Origin, now: float) -> Room:
        """A room by code, with the code-guessing defence in front of it.

        A source out of misses is refused outright, even for codes that exist, so that the
        refusal itself tells a guesser nothing.
        """
        source = origin.host or UNKNOWN_SOURCE
        if not self._miss_limit.has_token(source, now):
            raise RegistryError(ErrorCode.RATE_LIMITED, "too many unknown room codes; slow down")
        room = self.registry.get(code)
        if room is None:
            self._miss_limit.try_take(source, now)
            raise RegistryError(ErrorCode.ROOM_NOT_FOUND, f"no room {code}")
        return room

    def _member_nick(self, client: bytes, code: str) -> str:
        nick = self.registry.nick_of(client, code)
        if nick is None:
            raise RegistryError(ErrorCode.NOT_MEMBER, f"not a member of {code}")
        return nick

    def _other_member(self, code: str, sender: str, nick: str) -> Member:
        if nick == sender:
            raise RegistryError(ErrorCode.BAD_REQUEST, "a member cannot address itself")
        room = self.registry.get(code)
        member = None if room is None else room.members.get(nick)
        if member is None:
            raise RegistryError(ErrorCode.PEER_NOT_FOUND, f"no member {nick!r} in {code}")
        return member

    def _take_signal_token(self, client: bytes, now: float) -> None:
        if not self._signal_limit.try_take(client.hex(), now):
            raise RegistryError(ErrorCode.RATE_LIMITED, "too many signals; slow down")

    def _fresh_code(self) -> str:
        for _ in range(_CODE_ATTEMPTS):
            code = generate_code(self._rng)
            if code not in self.registry:
                return code
        raise RegistryError(ErrorCode.RELAY_FULL, "no free room code found; try again")

    def _member_joined(self, room: Room, nick: str, now: float) -> list[Effect]:
        member = room.members[nick]
        push = PeerJoined(
            code=room.code, peer=PeerInfo(nick=nick, host=member.host, port=member.port)
        )
        effects: list[Effect] = [
            Send(other.client, push) for other in room.members.values() if other.nick != nick
        ]
        effects.append(
            Publish(
                MemberJoined(code=room.code, nick=nick, seq=self._next_seq(), at=self._wall(now))
            )
        )
        return effects

    def _member_gone(self, gone: MemberGone, now: float) -> list[Effect]:
        room, nick = gone.room, gone.member.nick
        self._room_infos.pop(room.code, None)
        push = PeerLeft(code=room.code, nick=nick, reason=gone.reason)
        effects: list[Effect] = [Send(other.client, push) for other in room.members.values()]
        effects.append(
            Publish(
                MemberLeft(
                    code=room.code,
                    nick=nick,
                    reason=gone.reason,
                    seq=self._next_seq(),
                    at=self._wall(now),
                )
            )
        )
        return effects

    def _room_gone(self, gone: RoomGone, now: float) -> list[Effect]:
        room = gone.room
        self._room_infos.pop(room.code, None)
        effects: list[Effect] = []
        kind: Literal["room_expired", "room_closed"] = (
            "room_expired" if gone.reason == "expired" else "room_closed"
        )
        if gone.reason == "expired":
            notice = RoomExpired(code=room.code)
            effects.extend(Send(member.client, notice) for member in room.members.values())
        effects.append(
            Publish(RoomEnded(type=kind, code=room.code, seq=self._next_seq(), at=self._wall(now)))
        )
        return effects

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _wall(self, monotonic: float) -> float:
        return monotonic + self._wall_offset


def _error(client: bytes, code: ErrorCode, message: str, req_id: str | int | None = None) -> Send:
    return Send(client, Error(code=code, message=message, req_id=req_id))
