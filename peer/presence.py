"""A member's standing with the relay: heartbeats, noticing the relay lost or restarted, and
taking the room back with its token. Pure and clock-injected.

Direct links do not need the relay, so losing it only stops joins: the chat goes on. Every
heartbeat names the room; an acknowledgement that says "not a member" means the relay forgot
us (it restarted, or we were silent too long), so we re-claim the code with the room token
(anyone who has it) or register again (the room may have been re-claimed by someone who has).
Then a lookup tells us who else is there now.
"""

from __future__ import annotations

from dataclasses import dataclass

from peer.effects import Effect, Show, ToRelay
from schemas.relay import (
    Error,
    Heartbeat,
    HeartbeatAck,
    LockRoom,
    LookupRoom,
    PeerRegistered,
    ReclaimRoom,
    RegisterPeer,
    RelayMessage,
    RoomInfo,
)

REJOIN = "rejoin"
"""The req_id of re-claims and re-registrations, and of the lookup that follows them."""


@dataclass
class Presence:
    me: str
    room_code: str
    interval: float
    token: str | None = None
    """The room token: ours if we created the room, else a member's (sealed)."""
    lost_after: float = 0.0
    """Seconds without any answer before the relay counts as lost (default: 2.5 intervals)."""
    locked: bool = False
    _next_heartbeat: float | None = None
    _heard: float = 0.0
    _lost: bool = False
    _rejoining: bool = False
    _announced_rejoin: bool = False

    def start(self, now: float) -> None:
        self._next_heartbeat = now + self.interval
        self._heard = now
        if not self.lost_after:
            self.lost_after = 2.5 * self.interval

    def next_deadline(self) -> float | None:
        return self._next_heartbeat

    def connected(self, now: float) -> None:
        """The connection to the relay was (re)made: heartbeat now, not at the next turn."""
        if self._next_heartbeat is not None:
            self._next_heartbeat = now

    def tick(self, now: float) -> list[Effect]:
        if self._next_heartbeat is None or now < self._next_heartbeat:
            return []
        self._next_heartbeat = now + self.interval
        self._rejoining = False  # one try per heartbeat: a lost answer is tried again
        effects: list[Effect] = [ToRelay(Heartbeat(type="heartbeat", code=self.room_code))]
        if not self._lost and now - self._heard >= self.lost_after:
            self._lost = True
            message = "lost the relay: chats already connected go on; new members cannot join"
            effects.append(Show({"event": "relay_lost", "message": message}))
        return effects

    def on_relay(self, message: RelayMessage, now: float) -> tuple[list[Effect], list[str]]:
        """Effects, and members the relay lists that may be new to us."""
        self._heard = now
        effects: list[Effect] = []
        if self._lost:
            self._lost = False
            effects.append(Show({"event": "relay_back"}))
        if isinstance(message, HeartbeatAck):
            if message.code == self.room_code and message.member is False:
                effects.extend(self._rejoin())
            return effects, []
        rejoin = getattr(message, "req_id", None) == REJOIN
        if isinstance(message, PeerRegistered) and rejoin:
            self._rejoining = False
            effects.append(Show({"event": "rejoined", "code": self.room_code}))
            effects.append(
                ToRelay(LookupRoom(type="lookup_room", code=self.room_code, req_id=REJOIN))
            )
            if self.locked:
                effects.append(ToRelay(LockRoom(type="lock_room", code=self.room_code)))
            return effects, []
        if isinstance(message, RoomInfo) and rejoin and message.code == self.room_code:
            return effects, [peer.nick for peer in message.peers if peer.nick != self.me]
        if isinstance(message, Error) and rejoin:
            self._rejoining = False  # the next heartbeat tries again
            if not self._announced_rejoin:
                self._announced_rejoin = True
                text = f"the relay lost this room and could not give it back: {message.message}"
                effects.append(Show({"event": "error", "message": text, "code": str(message.code)}))
        return effects, []

    def _rejoin(self) -> list[Effect]:
        if self._rejoining:
            return []
        self._rejoining = True
        if self.token is not None:
            request: ReclaimRoom | RegisterPeer = ReclaimRoom(
                type="reclaim_room",
                code=self.room_code,
                nick=self.me,
                token=self.token,
                req_id=REJOIN,
            )
        else:
            request = RegisterPeer(
                type="register_peer", code=self.room_code, nick=self.me, req_id=REJOIN
            )
        return [ToRelay(request)]
