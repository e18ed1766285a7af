"""The relay's protocol core: one request in, effects (sends and publications) out.

Pure: no sockets, no clock, no threads. The adapter passes the routing id of the connection,
the raw frames, where the connection comes from, and `now` (monotonic seconds).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

from broker.codes import generate_code
from broker.effects import Effect, Origin, Publish, Send, is_loopback
from broker.events import EventNumbers
from broker.ratelimit import RateLimiter, Source, SourceLimiter, source_of
from broker.registry import Member, MemberGone, RegistryError, Room, RoomGone, RoomRegistry
from broker.settings import RelaySettings
from broker.tokens import NONCE_BYTES, RoomTokens
from schemas.codec import WireError, decode_request, encode, with_req_id
from schemas.relay import (
    CoordinateConnection,
    CreateRoom,
    Error,
    ErrorCode,
    GetRelayInfo,
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
    ReclaimRoom,
    RegisterPeer,
    RelayInfo,
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


class RelayCore:
    def __init__(
        self,
        settings: RelaySettings,
        *,
        rng: random.Random,
        tokens: RoomTokens,
        instance: str = "0" * 16,
        wall_offset: float = 0.0,
        now: float = 0.0,
    ) -> None:
        """`wall_offset` turns a monotonic `now` into Unix time for timestamps on the wire;
        `tokens` mints and checks room tokens; `instance` names this relay process."""
        self.settings = settings
        self.tokens = tokens
        self.events = EventNumbers(instance, wall_offset, now)
        self._next_alive = now  # the first beat at once: monitors see a restart without delay
        self.pub_port: int | None = None
        """The PUB socket's port and CurveZMQ key, set by the adapter once bound."""
        self.pub_key: str | None = None
        self.registry = RoomRegistry(
            room_ttl=settings.room_ttl,
            member_timeout=settings.member_timeout,
            empty_room_grace=settings.empty_room_grace,
            max_rooms=settings.max_rooms,
            max_rooms_per_source=settings.max_rooms_per_source,
            max_members_per_room=settings.max_members_per_room,
        )
        self._rng = rng
        # Lookups outnumber membership changes: each room's `room_info` is encoded once per change.
        self._room_infos: dict[str, bytes] = {}
        self._create_limit = SourceLimiter(
            burst=settings.create_burst,
            rate=settings.create_per_minute / 60.0,
            max_keys=settings.max_tracked_sources,
        )
        self._miss_limit = SourceLimiter(
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
            ReclaimRoom: self._reclaim,
            GetRelayInfo: self._relay_info,
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
        if now >= self._next_alive:
            self._next_alive = now + self.settings.alive_interval
            effects.append(Publish(self.events.alive(now)))
        for event in self.registry.expire(now):
            if isinstance(event, MemberGone):
                effects.extend(self._member_gone(event, now))
            else:
                effects.extend(self._room_gone(event, now))
        return effects

    def next_deadline(self) -> float:
        deadline = self.registry.next_deadline()
        return self._next_alive if deadline is None else min(deadline, self._next_alive)

    # ------------------------------------------------------------------ requests

    def _create_room(
        self, client: bytes, request: CreateRoom, origin: Origin, now: float
    ) -> list[Effect]:
        source = self._source(client, origin)
        if not self._create_limit.try_take(source, now):
            raise RegistryError(ErrorCode.RATE_LIMITED, "too many rooms created; try again later")
        nonce = self._rng.randbytes(NONCE_BYTES)
        room = self.registry.create(self._fresh_code(), source.key, now, nonce=nonce)
        effects: list[Effect] = [Publish(self.events.opened(room, now))]
        if request.nick is not None:
            member, _ = self.registry.register(
                room.code, request.nick, client, None, request.listen_port, now=now
            )
            self._room_infos.pop(room.code, None)
            effects.extend(self._member_joined(room, member.nick, now))
        host, port = self._observed(origin)
        reply = RoomCreated(
            code=room.code,
            expires_at=round(self._wall(room.expires_at)),
            observed_host=host,
            observed_port=port,
            fallback=self.settings.fallback,
            token=self.tokens.mint(room.code, nonce, int(self._wall(now))),
            relay=self.settings.advertise,
            req_id=request.req_id,
        )
        return [Send(client, reply), *effects]

    def _register_peer(
        self, client: bytes, request: RegisterPeer, origin: Origin, now: float
    ) -> list[Effect]:
        room = self._find_room(request.code, self._source(client, origin), now)
        return self._register(client, room, request, origin, now, reclaim=False)

    def _reclaim(
        self, client: bytes, request: ReclaimRoom, origin: Origin, now: float
    ) -> list[Effect]:
        """A member takes its room code back after a restart: the token must be this relay's,
        for this code, and for the room now under it if there is one."""
        source = self._guesses_allowed(self._source(client, origin), now)
        opened = self.tokens.open(request.code, request.token)
        if opened is None:
            self._miss_limit.try_take(source, now)
            raise RegistryError(ErrorCode.BAD_TOKEN, f"that is not the token of {request.code}")
        nonce, created = opened
        room = self.registry.get(request.code)
        effects: list[Effect] = []
        if room is None:
            expires_at = created + self.settings.room_ttl - self.events.wall_offset
            if expires_at <= now:
                raise RegistryError(ErrorCode.ROOM_NOT_FOUND, f"{request.code} has expired")
            room = self.registry.create(
                request.code, source.key, now, nonce=nonce, expires_at=expires_at
            )
            room.reopened_until = now + self.settings.member_timeout
            effects.append(Publish(self.events.opened(room, now)))
        elif room.nonce != nonce:
            raise RegistryError(ErrorCode.ROOM_TAKEN, f"{request.code} is another room now")
        reply, *joined = self._register(client, room, request, origin, now, reclaim=True)
        return [reply, *effects, *joined]  # events in the order of their numbers

    def _register(
        self,
        client: bytes,
        room: Room,
        request: RegisterPeer | ReclaimRoom,
        origin: Origin,
        now: float,
        *,
        reclaim: bool,
    ) -> list[Effect]:
        host = request.host if isinstance(request, RegisterPeer) else None
        port = request.port if isinstance(request, RegisterPeer) else None
        member, joined = self.registry.register(
            room.code, request.nick, client, host, port, now=now, reclaim=reclaim
        )
        self._room_infos.pop(room.code, None)
        observed_host, observed_port = self._observed(origin)
        reply = PeerRegistered(
            code=room.code,
            nick=member.nick,
            expires_at=round(self._wall(room.expires_at)),
            heartbeat_timeout=self.settings.member_timeout,
            observed_host=observed_host,
            observed_port=observed_port,
            fallback=self.settings.fallback,
            req_id=request.req_id,
        )
        effects: list[Effect] = [Send(client, reply)]
        if joined:
            effects.extend(self._member_joined(room, member.nick, now))
        return effects

    def _relay_info(
        self, client: bytes, request: GetRelayInfo, origin: Origin, now: float
    ) -> list[Effect]:
        advertised = self.settings.advertise_pub
        reply = RelayInfo(
            relay=self.events.instance,
            pub=advertised,
            pub_port=None if advertised else self.pub_port,
            pub_key=self.pub_key,
            req_id=request.req_id,
        )
        return [Send(client, reply)]

    def _lookup_room(
        self, client: bytes, request: LookupRoom, origin: Origin, now: float
    ) -> list[Effect]:
        room = self._find_room(request.code, self._source(client, origin), now)
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
            effects.append(Publish(self.events.locked(room, now)))
        return effects

    def _heartbeat(
        self, client: bytes, request: Heartbeat, origin: Origin, now: float
    ) -> list[Effect]:
        if request.code is None:
            return [Send(client, HeartbeatAck(req_id=request.req_id))]
        member = self.registry.nick_of(client, request.code) is not None
        return [Send(client, HeartbeatAck(code=request.code, member=member, req_id=request.req_id))]

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
        host, port = self._observed(origin)
        reply = ObservedAddress(
            host=host,
            port=port,
            fallback=self.settings.fallback,
            req_id=request.req_id,
        )
        return [Send(client, reply)]

    # ------------------------------------------------------------------ helpers

    def _find_room(self, code: str, source: Source, now: float) -> Room:
        """A room by code, with the code-guessing defence in front of it.

        A source out of misses is refused outright, even for codes that exist, so that the
        refusal itself tells a guesser nothing.
        """
        self._guesses_allowed(source, now)
        room = self.registry.get(code)
        if room is None:
            self._miss_limit.try_take(source, now)
            raise RegistryError(ErrorCode.ROOM_NOT_FOUND, f"no room {code}")
        return room

    def _guesses_allowed(self, source: Source, now: float) -> Source:
        """The source, if it has unknown-code tries left (a miss then takes one); else
        refused outright, whether the code or token would have been right or not."""
        if not self._miss_limit.has_token(source, now):
            raise RegistryError(ErrorCode.RATE_LIMITED, "too many unknown room codes; slow down")
        return source

    def _source(self, client: bytes, origin: Origin) -> Source:
        return source_of(client, origin.host, behind_tunnel=bool(self.settings.advertise))

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
        effects.append(Publish(self.events.joined(room, nick, now)))
        return effects

    def _member_gone(self, gone: MemberGone, now: float) -> list[Effect]:
        room, nick = gone.room, gone.member.nick
        self._room_infos.pop(room.code, None)
        push = PeerLeft(code=room.code, nick=nick, reason=gone.reason)
        effects: list[Effect] = [Send(other.client, push) for other in room.members.values()]
        effects.append(Publish(self.events.left(room, nick, gone.reason, now)))
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
        effects.append(Publish(self.events.ended(room, kind, now)))
        return effects

    def _observed(self, origin: Origin) -> tuple[str | None, int | None]:
        """Where the client comes from, unless that is not the client: behind a tunnel
        (`advertise` set), a loopback source is the tunnel's agent, not the client."""
        if self.settings.advertise and origin.host and is_loopback(origin.host):
            return None, None
        return origin.host, origin.port

    def _wall(self, monotonic: float) -> float:
        return monotonic + self.events.wall_offset


def _error(client: bytes, code: ErrorCode, message: str, req_id: str | int | None = None) -> Send:
    return Send(client, Error(code=code, message=message, req_id=req_id))
