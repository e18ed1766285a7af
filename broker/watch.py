"""What a monitor makes of the relay's PUB stream: rooms and members now, recent events, and
the events it missed. Pure and clock-injected; bounded whatever the relay sends.

Missed events are found three ways: `seq` jumps (a monitor of every room), `room_seq` jumps
(a monitor of some rooms), and `relay_alive` beats naming a later `seq` than the last seen.
A new `relay` instance means the relay restarted: its rooms come back as their members
re-claim them, so the view starts again from what the new relay says.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from schemas.events import (
    AnyRoomEvent,
    MemberJoined,
    MemberLeft,
    RelayAlive,
    RoomClosedToJoiners,
    RoomEnded,
)

MAX_ROOMS = 10_000
MAX_MEMBERS = 64
RECENT = 200


@dataclass
class RoomView:
    code: str
    members: dict[str, float] = field(default_factory=dict)
    """nick -> when it joined (Unix time)."""
    locked: bool = False
    last_at: float = 0.0


class Watch:
    def __init__(self, codes: frozenset[str] = frozenset(), silence: float = 6.0) -> None:
        """`codes`: the rooms watched (empty: every room). `silence`: seconds without a beat
        after which the relay is reported silent."""
        self.codes = codes
        self.silence = silence
        self.rooms: OrderedDict[str, RoomView] = OrderedDict()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.relay: str | None = None
        self.seq: int | None = None
        self.events = 0
        self.missed = 0
        self.restarts = 0
        self._room_seq: OrderedDict[str, int] = OrderedDict()
        self._room_base: int | None = None
        """The count a room not seen yet is known to be at (0 after a restart)."""
        self._heard: float | None = None
        self._silent = False

    # ------------------------------------------------------------------ inputs

    def seed(self, code: str, nicks: list[str], at: float) -> None:
        """Members a lookup found before any event about them arrived."""
        room = self._room(code)
        for nick in nicks[:MAX_MEMBERS]:
            room.members.setdefault(nick, at)

    def on_event(self, event: AnyRoomEvent | RelayAlive, now: float) -> list[dict[str, Any]]:
        """Notices (and the event itself, as a dict) for the user, oldest first."""
        self._heard = now
        notices = self._back()
        notices += self._check_instance(event.relay)
        if isinstance(event, RelayAlive):
            if not self.codes and self.seq is not None and event.seq > self.seq:
                notices.append(self._gap(self.seq, event.seq - self.seq))
            if not self.codes or self.seq is None:
                self.seq = max(self.seq or 0, event.seq)
            return notices
        if self.codes and event.code not in self.codes:
            return notices
        notices += self._check_numbers(event)
        self.events += 1
        self._apply(event)
        shown = {"event": event.type, **event.model_dump(exclude={"type"})}
        self.recent.append(shown)
        return [*notices, shown]

    def tick(self, now: float) -> list[dict[str, Any]]:
        if self._heard is None or self._silent or now - self._heard < self.silence:
            return []
        self._silent = True
        return [{"event": "relay_silent", "seconds": round(now - self._heard, 1)}]

    def next_deadline(self) -> float | None:
        return None if self._heard is None or self._silent else self._heard + self.silence

    # ------------------------------------------------------------------ internals

    def _back(self) -> list[dict[str, Any]]:
        if not self._silent:
            return []
        self._silent = False
        return [{"event": "relay_back"}]

    def _check_instance(self, relay: str) -> list[dict[str, Any]]:
        if relay == self.relay:
            return []
        previous, self.relay = self.relay, relay
        if previous is None:
            return []
        self.restarts += 1
        notice = {
            "event": "gap",
            "reason": "relay_restarted",
            "after_seq": self.seq,
            "previous_relay": previous,
            "relay": relay,
        }
        # The new relay numbers from 1 and started after we subscribed: anything before what
        # we see next was missed.
        self.seq = 0
        self._room_base = 0
        self._room_seq.clear()
        self.rooms.clear()  # the new relay knows only what is re-claimed
        self.recent.append(notice)
        return [notice]

    def _check_numbers(self, event: AnyRoomEvent) -> list[dict[str, Any]]:
        notices = []
        if not self.codes:
            if self.seq is not None and event.seq > self.seq + 1:
                notices.append(self._gap(self.seq, event.seq - self.seq - 1))
            self.seq = event.seq
        else:
            last = self._room_seq.get(event.code, self._room_base)
            if last is not None and event.room_seq > last + 1:
                notices.append(self._gap(last, event.room_seq - last - 1, event.code))
            self._room_seq[event.code] = event.room_seq
            self._room_seq.move_to_end(event.code)
            if len(self._room_seq) > MAX_ROOMS:
                self._room_seq.popitem(last=False)
        return notices

    def _gap(self, after: int, missed: int, code: str | None = None) -> dict[str, Any]:
        self.missed += missed
        notice: dict[str, Any] = {
            "event": "gap",
            "reason": "missed",
            "after_seq": after,
            "missed": missed,
        }
        if code is not None:
            notice["code"] = code
        self.recent.append(notice)
        return notice

    def _apply(self, event: AnyRoomEvent) -> None:
        if isinstance(event, RoomEnded):
            self.rooms.pop(event.code, None)
            return
        room = self._room(event.code)
        room.last_at = event.at
        if isinstance(event, MemberJoined) and len(room.members) < MAX_MEMBERS:
            room.members[event.nick] = event.at
        elif isinstance(event, MemberLeft):
            room.members.pop(event.nick, None)
        elif isinstance(event, RoomClosedToJoiners):
            room.locked = True

    def _room(self, code: str) -> RoomView:
        room = self.rooms.get(code)
        if room is None:
            room = self.rooms[code] = RoomView(code)
            if len(self.rooms) > MAX_ROOMS:
                self.rooms.popitem(last=False)
        self.rooms.move_to_end(code)
        return room
