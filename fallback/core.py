"""The fallback server's forwarding core: attachments by opaque ids, sealed records forwarded.

Pure: no sockets, no clock. It stores nothing but who is attached where, never reads a payload
(they are sealed end to end), and answers every bad frame with an error, never an exception.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter

from fallback.settings import FallbackSettings
from schemas.base import WireModel
from schemas.codec import WireError, decode_with, encode
from schemas.fallback import (
    FALLBACK_REQUEST_TYPES,
    Attach,
    Attached,
    Deliver,
    Detach,
    Detached,
    FallbackError,
    FallbackErrorCode,
    FallbackHeartbeatAck,
    FallbackRequest,
    Forward,
    MemberAttached,
    MemberDetached,
    Sent,
)

_REQUESTS: TypeAdapter[FallbackRequest] = TypeAdapter(FallbackRequest)
MAX_BUDGETS = 65_536
"""Connections whose delivery budgets are remembered (least recently used go first)."""


@dataclass(frozen=True, slots=True)
class Send:
    client: bytes
    message: WireModel | bytes


@dataclass(frozen=True, slots=True)
class Place:
    room: str
    member: str


class FallbackCore:
    def __init__(self, settings: FallbackSettings) -> None:
        self.settings = settings
        self.rooms: dict[str, dict[str, bytes]] = {}  # room -> member -> client
        self.places: dict[bytes, Place] = {}  # client -> where it is attached
        self._last_seen: OrderedDict[bytes, float] = OrderedDict()
        self._budgets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        """Client -> (tokens, when): kept across detach and re-attach, the latest MAX_BUDGETS."""

    def handle(self, client: bytes, frames: Sequence[bytes], now: float) -> list[Send]:
        if client in self._last_seen:
            self._last_seen[client] = now
            self._last_seen.move_to_end(client)
        if len(frames) != 1:
            return [_error(client, FallbackErrorCode.MULTIPART, "a request is exactly one frame")]
        try:
            request = decode_with(_REQUESTS, frames[0], FALLBACK_REQUEST_TYPES)
        except WireError as exc:
            return [_error(client, FallbackErrorCode(exc.code.value), exc.message)]
        if isinstance(request, Forward):
            return self._forward(client, request, now)
        if isinstance(request, Attach):
            return self._attach(client, request, now)
        if isinstance(request, Detach):
            effects = self._detach(client, "detached")
            return [Send(client, Detached(req_id=request.req_id)), *effects]
        return [Send(client, FallbackHeartbeatAck(req_id=request.req_id))]

    def tick(self, now: float) -> list[Send]:
        effects: list[Send] = []
        while self._last_seen:
            client, seen = next(iter(self._last_seen.items()))
            if seen + self.settings.member_timeout > now:
                break
            effects.extend(self._detach(client, "timeout"))
        return effects

    def next_deadline(self) -> float | None:
        if not self._last_seen:
            return None
        return next(iter(self._last_seen.values())) + self.settings.member_timeout

    # ------------------------------------------------------------------ requests

    def _attach(self, client: bytes, request: Attach, now: float) -> list[Send]:
        effects: list[Send] = []
        current = self.places.get(client)
        if current is not None and current != Place(request.room, request.member):
            effects.extend(self._detach(client, "detached"))
        members = self.rooms.get(request.room)
        if members is None:
            if len(self.rooms) >= self.settings.max_rooms:
                full = _error(
                    client, FallbackErrorCode.SERVER_FULL, "no room for more rooms", request.req_id
                )
                return [*effects, full]  # it did leave its old room: that room is told
            members = self.rooms[request.room] = {}
        holder = members.get(request.member)
        if holder is None and len(members) >= self.settings.max_members_per_room:
            full = _error(client, FallbackErrorCode.ROOM_FULL, "the room is full", request.req_id)
            return [*effects, full]
        if holder is not None and holder != client:
            # The member reconnected (or restarted): its new connection takes over.
            self.places.pop(holder, None)
            self._last_seen.pop(holder, None)

            effects.append(Send(holder, MemberDetached(member=request.member, reason="replaced")))
        members[request.member] = client
        self.places[client] = Place(request.room, request.member)
        self._last_seen[client] = now
        self._last_seen.move_to_end(client)
        others = [member for member in members if member != request.member]
        effects.append(
            Send(
                client,
                Attached(
                    members=others,
                    heartbeat_timeout=self.settings.member_timeout,
                    req_id=request.req_id,
                ),
            )
        )
        if holder is None:
            notice = MemberAttached(member=request.member)
            effects.extend(Send(members[other], notice) for other in others)
        return effects

    def _forward(self, client: bytes, request: Forward, now: float) -> list[Send]:
        place = self.places.get(client)
        if place is None:
            return [
                _error(
                    client, FallbackErrorCode.NOT_ATTACHED, "attach to a room first", request.req_id
                )
            ]
        members = self.rooms[place.room]
        if request.to is None:
            targets = [c for member, c in members.items() if member != place.member]
        else:
            target = members.get(request.to)
            if target is None or request.to == place.member:
                return [
                    _error(
                        client,
                        FallbackErrorCode.MEMBER_NOT_FOUND,
                        "that member is not attached",
                        request.req_id,
                    )
                ]
            targets = [target]
        if not self._spend(client, len(targets), now):
            return [
                _error(client, FallbackErrorCode.RATE_LIMITED, "too many records", request.req_id)
            ]
        delivery = encode(Deliver(from_=place.member, payload=request.payload))
        effects = [Send(target, delivery) for target in targets]
        if request.req_id is not None:
            effects.append(Send(client, Sent(delivered=len(targets), req_id=request.req_id)))
        return effects

    def _spend(self, client: bytes, deliveries: int, now: float) -> bool:
        """Take `deliveries` from the client's budget, if it has them."""
        settings = self.settings
        tokens, at = self._budgets.get(client, (float(settings.deliveries_burst), now))
        tokens = min(
            float(settings.deliveries_burst),
            tokens + max(0.0, now - at) * settings.deliveries_per_second,
        )
        spent = tokens >= deliveries
        self._budgets[client] = (tokens - deliveries if spent else tokens, now)
        self._budgets.move_to_end(client)
        if len(self._budgets) > MAX_BUDGETS:
            self._budgets.popitem(last=False)
        return spent

    def _detach(self, client: bytes, reason: Literal["detached", "timeout"]) -> list[Send]:
        place = self.places.pop(client, None)
        self._last_seen.pop(client, None)

        if place is None:
            return []
        members = self.rooms[place.room]
        del members[place.member]
        if not members:
            del self.rooms[place.room]
            return []
        notice = MemberDetached(member=place.member, reason=reason)
        return [Send(other, notice) for other in members.values()]


def _error(
    client: bytes, code: FallbackErrorCode, message: str, req_id: str | int | None = None
) -> Send:
    return Send(client, FallbackError(code=code, message=message, req_id=req_id))
