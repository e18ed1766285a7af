"""Traditional server mode: a room hosted on a fallback server, with no relay and no direct links.

Pure. Wraps a RoomCore (transport `fallback`) and plays the relay's part through the fallback
server: members announce their nicks to each other there, and PAKE signals travel there too,
so with a room password the chat is end-to-end encrypted even though the server carries all.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import ValidationError

from peer.crypto import PROTOCOL, fallback_member_id
from peer.effects import Effect, ToFallback, ToRelay
from peer.room import RoomCore
from peer.session import b64, unb64
from schemas.fallback import Attached, Deliver, Detach, Forward, MemberAttached, MemberDetached
from schemas.relay import LeaveRoom, PeerInfo, PeerJoined, PeerLeft, ReceivedSignal, SendSignal

HOSTED_ROOM_CODE = "hosted-room-10"
"""RoomCore needs a relay-style code; hosted rooms are told apart by name (and password)."""


def hosted_room_id(name: str) -> str:
    """The room's id on the server: from its name only, so a wrong password meets the room
    and fails the key exchange (and is told so) instead of waiting alone."""
    return hashlib.sha256(
        PROTOCOL + b"/hosted-room\x00" + name.strip().lower().encode()
    ).hexdigest()


class HostedRoom:
    def __init__(self, core: RoomCore) -> None:
        if core.fallback_room is None:
            raise ValueError("a hosted room's core needs the room's id on the server")
        self.core = core
        self._room = core.fallback_room
        core.presence.lost_after = float("inf")  # there is no relay to lose
        self.me = core.me
        self._nicks: dict[str, str] = {}  # member id -> nick, once announced and checked

    # The node calls the same methods it calls on a RoomCore.

    def start(self, members: list[str], now: float) -> list[Effect]:
        return self._translate(self.core.start([], now))

    def on_relay(self, message: Any, now: float) -> list[Effect]:
        return []

    def on_link_frame(self, *args: Any) -> list[Effect]:
        return []

    def on_input(self, line: str, now: float) -> list[Effect]:
        return self._translate(self.core.on_input(line, now))

    def on_end_of_input(self, now: float) -> list[Effect]:
        return self._translate(self.core.on_end_of_input(now))

    def leave(self, now: float, code: int) -> list[Effect]:
        return self._translate(self.core.leave(now, code))

    def tick(self, now: float) -> list[Effect]:
        return self._translate(self.core.tick(now))

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def on_fallback(self, message: Any, now: float) -> list[Effect]:
        if isinstance(message, Attached):
            if not message.members:
                # first in the room: a mismatch is the joiner's
                self.core.trust.authoritative = True
            announce = [self._announce(member) for member in message.members]
            return [*announce, *self._translate(self.core.on_fallback(message, now))]
        if isinstance(message, MemberAttached):
            return [self._announce(message.member)]
        if isinstance(message, MemberDetached):
            nick = self._nicks.pop(message.member, None)
            if nick is None or message.reason == "replaced":
                return []
            left = PeerLeft(
                code=HOSTED_ROOM_CODE,
                nick=nick,
                reason="timeout" if message.reason == "timeout" else "left",
            )
            return self._translate(self.core.on_relay(left, now))
        if isinstance(message, Deliver):
            try:
                data = unb64(message.payload)
            except ValueError:
                return []
            if data[:1] == b"{":
                return self._on_control(message.from_, data, now)
        return self._translate(self.core.on_fallback(message, now))

    def _on_control(self, member: str, data: bytes, now: float) -> list[Effect]:
        try:
            control = json.loads(data)
            kind, value = control["kind"], control["value"]
        except (ValueError, KeyError, TypeError):
            return []
        if not isinstance(value, str):
            return []
        try:  # anyone who knows the room's name can send these: invalid ones are ignored
            if kind == "nick" and member not in self._nicks:
                if fallback_member_id(self._room, value) != member or value == self.me:
                    return []  # an id that does not belong to that nick
                joined = PeerJoined(code=HOSTED_ROOM_CODE, peer=PeerInfo(nick=value))
                self._nicks[member] = value
                return self._translate(self.core.on_relay(joined, now))
            nick = self._nicks.get(member)
            if kind == "signal" and nick is not None:
                signal = ReceivedSignal(code=HOSTED_ROOM_CODE, from_=nick, payload=value)
                return self._translate(self.core.on_relay(signal, now))
        except ValidationError:
            return []
        return []

    def _announce(self, member: str) -> ToFallback:
        return self._control(member, "nick", self.me)

    def _control(self, member: str, kind: str, value: str) -> ToFallback:
        body = json.dumps({"kind": kind, "value": value}).encode()
        return ToFallback(Forward(type="send", to=member, payload=b64(body)))

    def _translate(self, effects: list[Effect]) -> list[Effect]:
        """Relay requests become fallback traffic; everything else passes through."""
        out: list[Effect] = []
        for effect in effects:
            if not isinstance(effect, ToRelay):
                out.append(effect)
            elif isinstance(effect.request, SendSignal):
                member = fallback_member_id(self._room, effect.request.to)
                out.append(self._control(member, "signal", effect.request.payload))
            elif isinstance(effect.request, LeaveRoom):
                out.append(ToFallback(Detach(type="detach")))
        return out
