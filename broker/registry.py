"""Room registry: live rooms, their members, and when each goes away. Pure and clock-injected.

Every deadline here is "a fixed span after a recorded moment" (room TTL, member silence, empty
grace), so insertion order is deadline order: ordered dicts give O(1) expiry without a heap.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from schemas.relay import ErrorCode

MAX_ALUMNI = 64
"""Past members' nicks a room remembers (for re-claims into a locked room)."""


class RegistryError(Exception):
    """A request the registry refuses; `code` travels to the client in an `error` reply."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class Member:
    nick: str
    client: bytes
    host: str | None
    port: int | None


@dataclass(slots=True)
class Room:
    code: str
    source: str
    created_at: float
    expires_at: float
    members: dict[str, Member] = field(default_factory=dict)
    locked: bool = False
    """Closed to new joiners; its members stay."""
    nonce: bytes = b""
    """Tells this room from an earlier or later one with the same code (room tokens)."""
    events: int = 0
    """Room events published so far (their `room_seq`)."""
    alumni: dict[str, None] = field(default_factory=dict)
    """Nicks of members that left or timed out (the latest MAX_ALUMNI): the only ones a
    room token brings back into a locked room..."""
    reopened_until: float = 0.0
    """...except just after a restart, when it was re-made by a re-claim: until then its
    members come back with the token whatever their nicks (this relay never knew them)."""


@dataclass(frozen=True, slots=True)
class MemberGone:
    room: Room
    member: Member
    reason: Literal["left", "timeout"]


@dataclass(frozen=True, slots=True)
class RoomGone:
    room: Room
    """The room as it was when it went, members included (they are owed a notice)."""
    reason: Literal["expired", "closed"]


RegistryEvent = MemberGone | RoomGone


class RoomRegistry:
    def __init__(
        self,
        *,
        room_ttl: float,
        member_timeout: float,
        empty_room_grace: float,
        max_rooms: int,
        max_rooms_per_source: int,
        max_members_per_room: int,
    ) -> None:
        self.room_ttl = room_ttl
        self.member_timeout = member_timeout
        self.empty_room_grace = empty_room_grace
        self.max_rooms = max_rooms
        self.max_rooms_per_source = max_rooms_per_source
        self.max_members_per_room = max_members_per_room
        self._rooms: OrderedDict[str, Room] = OrderedDict()  # creation order == expiry order
        self._memberships: dict[bytes, dict[str, str]] = {}  # client -> {room code: nick}
        self._last_seen: OrderedDict[bytes, float] = OrderedDict()  # clients with memberships
        self._empty_since: OrderedDict[str, float] = OrderedDict()
        self._rooms_by_source: dict[str, int] = {}
        self._early: list[tuple[float, int, Room]] = []
        """Re-claimed rooms, which expire earlier than their place in `_rooms` says."""
        self._early_count = 0

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, code: object) -> bool:
        return code in self._rooms

    def get(self, code: str) -> Room | None:
        return self._rooms.get(code)

    def rooms(self) -> list[Room]:
        return list(self._rooms.values())

    def nick_of(self, client: bytes, code: str) -> str | None:
        """The nick `client` holds in room `code`, if it is a member."""
        return self._memberships.get(client, {}).get(code)

    def rooms_created_by(self, source: str) -> int:
        return self._rooms_by_source.get(source, 0)

    def client_count(self) -> int:
        return len(self._memberships)

    # ------------------------------------------------------------------ changes

    def create(
        self,
        code: str,
        source: str,
        now: float,
        *,
        nonce: bytes = b"",
        expires_at: float | None = None,
    ) -> Room:
        """A new room; `expires_at` earlier than the TTL gives (a re-claimed room keeps its
        original expiry)."""
        if code in self._rooms:
            raise ValueError(f"room code {code} is already live")
        if len(self._rooms) >= self.max_rooms:
            raise RegistryError(ErrorCode.RELAY_FULL, "the relay holds as many rooms as it can")
        if self._rooms_by_source.get(source, 0) >= self.max_rooms_per_source:
            raise RegistryError(
                ErrorCode.TOO_MANY_ROOMS,
                f"at most {self.max_rooms_per_source} live rooms per address",
            )
        ttl_end = now + self.room_ttl
        room = Room(
            code=code,
            source=source,
            created_at=now,
            expires_at=ttl_end if expires_at is None else min(expires_at, ttl_end),
            nonce=nonce,
        )
        self._rooms[code] = room
        if expires_at is not None:  # out of creation order: its deadline goes on the heap
            self._push_early(room)
        self._rooms_by_source[source] = self._rooms_by_source.get(source, 0) + 1
        self._empty_since[code] = now
        return room

    def register(
        self,
        code: str,
        nick: str,
        client: bytes,
        host: str | None,
        port: int | None,
        *,
        now: float,
        reclaim: bool = False,
    ) -> tuple[Member, bool]:
        """Add `client` to room `code` as `nick`; True if it joined, False if it updated itself.
        `reclaim`: a member proving its room token comes back even into a locked room, if it
        was a member before: a token seen on the wire does not let a stranger in."""
        room = self._rooms.get(code)
        if room is None:
            raise RegistryError(ErrorCode.ROOM_NOT_FOUND, f"no room {code}")
        holder = room.members.get(nick)
        if holder is not None:
            if holder.client != client:
                raise RegistryError(ErrorCode.NICK_TAKEN, f"nick {nick!r} is taken in {code}")
            holder.host, holder.port = host, port
            self.touch(client, now)
            return holder, False
        returning = nick in room.alumni or now < room.reopened_until
        if room.locked and not (reclaim and returning):
            raise RegistryError(ErrorCode.ROOM_LOCKED, f"{code} no longer accepts new members")
        current = self.nick_of(client, code)
        if current is not None:
            raise RegistryError(
                ErrorCode.BAD_REQUEST, f"this connection is already in {code} as {current!r}"
            )
        if len(room.members) >= self.max_members_per_room:
            raise RegistryError(
                ErrorCode.ROOM_FULL, f"{code} has {self.max_members_per_room} members already"
            )
        member = Member(nick=nick, client=client, host=host, port=port)
        room.members[nick] = member
        self._memberships.setdefault(client, {})[code] = nick
        self._last_seen[client] = now
        self._last_seen.move_to_end(client)
        self._empty_since.pop(code, None)
        return member, True

    def leave(self, code: str, client: bytes, now: float) -> MemberGone | None:
        """Remove `client` from room `code`; None if it was not a member."""
        room = self._rooms.get(code)
        if room is None or self.nick_of(client, code) is None:
            return None
        return MemberGone(room, self._remove_member(room, client, now), "left")

    def touch(self, client: bytes, now: float) -> None:
        """Any traffic from a member counts as a heartbeat for all its memberships."""
        if client in self._last_seen:
            self._last_seen[client] = now
            self._last_seen.move_to_end(client)

    def expire(self, now: float) -> list[RegistryEvent]:
        """Drop silent members, expired rooms and rooms empty past the grace period."""
        events: list[RegistryEvent] = []
        while self._last_seen:
            client, seen = next(iter(self._last_seen.items()))
            if seen + self.member_timeout > now:
                break
            for code in list(self._memberships.get(client, {})):
                room = self._rooms[code]
                events.append(MemberGone(room, self._remove_member(room, client, now), "timeout"))
        while self._rooms:
            room = next(iter(self._rooms.values()))
            if room.expires_at > now:
                break
            self._drop_room(room)
            events.append(RoomGone(room, "expired"))
        while self._early and self._early[0][0] <= now:
            room = heapq.heappop(self._early)[2]
            if self._rooms.get(room.code) is room:
                self._drop_room(room)
                events.append(RoomGone(room, "expired"))
        while self._empty_since:
            code, since = next(iter(self._empty_since.items()))
            if since + self.empty_room_grace > now:
                break
            room = self._rooms[code]
            self._drop_room(room)
            events.append(RoomGone(room, "closed"))
        return events

    def next_deadline(self) -> float | None:
        deadlines = []
        if self._last_seen:
            deadlines.append(next(iter(self._last_seen.values())) + self.member_timeout)
        if self._rooms:
            deadlines.append(next(iter(self._rooms.values())).expires_at)
        if self._early:
            deadlines.append(self._early[0][0])
        if self._empty_since:
            deadlines.append(next(iter(self._empty_since.values())) + self.empty_room_grace)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ internals

    def _remove_member(self, room: Room, client: bytes, now: float) -> Member:
        nick = self._forget_membership(client, room.code)
        member = room.members.pop(nick)
        room.alumni.pop(nick, None)  # the latest departures last: strangers who churned nicks
        room.alumni[nick] = None  # before the lock cannot push out one who left after it
        if len(room.alumni) > MAX_ALUMNI:
            del room.alumni[next(iter(room.alumni))]
        if not room.members:
            self._empty_since[room.code] = now
        return member

    def _forget_membership(self, client: bytes, code: str) -> str:
        rooms = self._memberships[client]
        nick = rooms.pop(code)
        if not rooms:
            del self._memberships[client]
            self._last_seen.pop(client, None)
        return nick

    def _push_early(self, room: Room) -> None:
        if len(self._early) > 2 * len(self._rooms) + 64:  # rooms closed before their expiry
            live = [entry for entry in self._early if self._rooms.get(entry[2].code) is entry[2]]
            heapq.heapify(live)
            self._early = live
        self._early_count += 1
        heapq.heappush(self._early, (room.expires_at, self._early_count, room))

    def _drop_room(self, room: Room) -> None:
        del self._rooms[room.code]
        self._empty_since.pop(room.code, None)
        for member in room.members.values():
            self._forget_membership(member.client, room.code)
        remaining = self._rooms_by_source[room.source] - 1
        if remaining:
            self._rooms_by_source[room.source] = remaining
        else:
            del self._rooms_by_source[room.source]
