"""A member's view of its room: one PairSession per other member, direct links, the chat.

Pure and clock-injected. The adapter feeds relay messages, link frames, typed lines and `now`;
the core answers with effects: relay requests, dials, link frames, things to show, quitting.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from pydantic import TypeAdapter, ValidationError

from peer.crypto import CryptoError, Entropy
from peer.effects import (
    Allow,
    Dial,
    Disallow,
    Effect,
    Hangup,
    InLink,
    Link,
    OutLink,
    Quit,
    Show,
    ToLink,
    ToRelay,
)
from peer.members import Peer, PeerSettings
from peer.session import Mismatch, PairSession, SignalOut, Verified
from schemas.codec import encode
from schemas.peer import (
    MAX_TEXT,
    Bye,
    Candidates,
    Chat,
    Endpoint,
    LinkControl,
    LinkHello,
    LinkHelloAck,
    LinkReady,
    PathName,
    Ping,
    Pong,
)
from schemas.relay import (
    Error,
    Heartbeat,
    LeaveRoom,
    LockRoom,
    PeerJoined,
    PeerLeft,
    ReceivedSignal,
    RelayMessage,
    RoomExpired,
    RoomLocked,
    SendSignal,
)

CONTROL, RECORD = b"\x01", b"\x02"
_CONTROL: TypeAdapter[LinkControl] = TypeAdapter(LinkControl)
HELP = "/peers  members, paths and round trips   /quit  leave   /help  this text"


class RoomCore:
    def __init__(
        self,
        *,
        me: str,
        room_code: str,
        password: bytes,
        candidates: Candidates,
        authoritative: bool,
        settings: PeerSettings | None = None,
        entropy: Entropy = os.urandom,
    ) -> None:
        """`authoritative`: we created the room, so a secret mismatch is the other side's."""
        self.me, self.room_code = me, room_code
        self.settings = settings or PeerSettings()
        self._password = password
        self._candidates = candidates
        self._authoritative = authoritative
        self._entropy = entropy
        self.peers: dict[str, Peer] = {}
        self._attempts: dict[int, tuple[str, PathName]] = {}  # attempt -> (nick, path)
        self._attempt_ids = itertools.count(1)
        self._backlog: list[str] = []
        self._failures = 0
        self._locked = False
        self._next_relay_heartbeat: float | None = None
        self._eof_deadline: float | None = None
        self._done = False

    # ------------------------------------------------------------------ inputs

    def start(self, members: list[str], now: float) -> list[Effect]:
        """We are registered; `members` are the others the relay listed."""
        self._next_relay_heartbeat = now + self.settings.relay_heartbeat
        effects: list[Effect] = []
        for nick in members:
            if nick != self.me:
                effects.extend(self._add_peer(nick, now))
        return effects

    def on_relay(self, message: RelayMessage, now: float) -> list[Effect]:
        if isinstance(message, PeerJoined):
            if message.peer.nick == self.me or message.peer.nick in self.peers:
                return []
            return self._add_peer(message.peer.nick, now)
        if isinstance(message, PeerLeft):
            peer = self.peers.get(message.nick)
            if peer is not None and peer.link is not None and message.reason == "left":
                # Its goodbye on the direct link may still be behind its last messages there.
                peer.leaving_at = now + self.settings.leave_grace
                return []
            return self._drop_peer(message.nick, "left" if message.reason == "left" else "timeout")
        if isinstance(message, ReceivedSignal):
            return self._on_signal(message.from_, message.payload, now)
        if isinstance(message, RoomLocked):
            self._locked = True
            return [Show({"event": "room_locked", "code": self.room_code})]
        if isinstance(message, RoomExpired):
            return [Show({"event": "error", "message": "the room expired"}), *self.leave(now, 1)]
        if isinstance(message, Error):
            return [Show({"event": "error", "message": f"relay: {message.message}"})]
        return []  # acknowledgements need no action

    def on_link_frame(self, link: Link, nick: str | None, frame: bytes, now: float) -> list[Effect]:
        """A frame from a direct link; `nick` is known for inbound links (CurveZMQ + ZAP)."""
        if isinstance(link, OutLink):
            nick = self._attempts.get(link.attempt, ("", "lan"))[0]
        peer = self.peers.get(nick or "")
        if peer is None or not frame:
            return []
        peer.last_heard = now
        if frame[:1] == CONTROL:
            return self._on_control(peer, link, frame[1:], now)
        if frame[:1] != RECORD:
            return []
        try:
            message = peer.session.open_link(frame[1:])
        except CryptoError:
            return []  # forged, replayed or reordered: dropped, never shown
        if isinstance(message, Chat):
            return [Show({"event": "message", "from": peer.nick, "text": message.text})]
        if isinstance(message, Ping) and peer.link is not None:
            return [self._record(peer, Pong(stamp=message.stamp))]
        if isinstance(message, Pong):
            peer.rtt = max(0.0, now - message.stamp / 1e6)
            return []
        if isinstance(message, Bye):
            return self._drop_peer(peer.nick, "left")
        return []

    def on_input(self, line: str, now: float) -> list[Effect]:
        text = line.rstrip("\r\n")
        if not text.strip():
            return []
        command = text.strip().lower()
        if command in ("/quit", "/exit"):
            return self.leave(now, 0)
        if command == "/help":
            return [Show({"event": "help", "text": HELP})]
        if command == "/peers":
            return [Show({"event": "peers", "peers": self.describe_peers()})]
        effects: list[Effect] = []
        for start in range(0, len(text), MAX_TEXT):
            effects.extend(self._say(text[start : start + MAX_TEXT]))
        return effects

    def on_end_of_input(self, now: float) -> list[Effect]:
        if not self._pending():
            return self.leave(now, 0)
        self._eof_deadline = now + self.settings.eof_grace
        return []

    def leave(self, now: float, code: int) -> list[Effect]:
        if self._done:
            return []
        self._done = True
        effects: list[Effect] = [
            self._record(peer, Bye()) for peer in self.peers.values() if peer.link is not None
        ]
        effects += [ToRelay(LeaveRoom(type="leave_room", code=self.room_code)), Quit(code)]
        return effects

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if self._next_relay_heartbeat is not None and now >= self._next_relay_heartbeat:
            self._next_relay_heartbeat = now + self.settings.relay_heartbeat
            effects.append(ToRelay(Heartbeat(type="heartbeat")))
        for peer in list(self.peers.values()):
            effects.extend(self._tick_peer(peer, now))
        if self._eof_deadline is not None and not self._done:
            if not self._pending():
                effects.extend(self.leave(now, 0))
            elif now >= self._eof_deadline:
                lost = len(self._backlog) + sum(len(p.outbox) for p in self.peers.values())
                message = f"{lost} message(s) could not be delivered: nobody connected"
                effects += [Show({"event": "error", "message": message}), *self.leave(now, 1)]
        return effects

    def _tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        settings = self.settings
        if peer.leaving_at is not None and now >= peer.leaving_at:
            return self._drop_peer(peer.nick, "left")
        effects: list[Effect] = []
        if peer.attempt_deadline is not None and now >= peer.attempt_deadline:
            effects.extend(self._dial_next(peer, now))  # the next address, or just hang up
        if peer.link is not None:
            if now - peer.last_heard > settings.peer_timeout:
                return [*effects, *self._drop_peer(peer.nick, "timeout")]
            if now >= peer.next_ping:
                peer.next_ping = now + settings.ping_interval
                effects.append(self._record(peer, Ping(stamp=int(now * 1e6))))
        elif peer.redial_at is not None and now >= peer.redial_at:
            peer.redial_at = None
            if peer.attempt is None:
                peer.candidates = self._dial_order(peer.session.remote_candidates)
                effects.extend(self._dial_next(peer, now))
        return effects

    def next_deadline(self) -> float | None:
        deadlines = [self._next_relay_heartbeat, self._eof_deadline]
        for peer in self.peers.values():
            deadlines.append(peer.leaving_at)
            deadlines.append(peer.attempt_deadline)
            if peer.link is not None:
                deadlines += [peer.next_ping, peer.last_heard + self.settings.peer_timeout]
            else:
                deadlines.append(peer.redial_at)
        return min((d for d in deadlines if d is not None), default=None)

    def describe_peers(self) -> list[dict[str, Any]]:
        return [
            {
                "nick": peer.nick,
                "state": "connected" if peer.link else peer.session.phase.value,
                "path": peer.path,
                "rtt_ms": None if peer.rtt is None else round(peer.rtt * 1000, 2),
            }
            for peer in self.peers.values()
        ]

    # ------------------------------------------------------------------ internals

    def _add_peer(self, nick: str, now: float) -> list[Effect]:
        session = PairSession(
            self.me, nick, self.room_code, self._password, self._candidates, entropy=self._entropy
        )
        peer = self.peers[nick] = Peer(nick, session, outbox=list(self._backlog))
        peer.last_heard = now
        return [Show({"event": "peer_joined", "nick": nick}), *self._signals(session.start())]

    def _drop_peer(self, nick: str, reason: str) -> list[Effect]:
        peer = self.peers.pop(nick, None)
        if peer is None:
            return []
        effects: list[Effect] = [Disallow(nick)]
        for attempt in sorted(peer.open_attempts):
            self._attempts.pop(attempt, None)
            effects.append(Hangup(attempt))
        effects.append(Show({"event": "peer_left", "nick": nick, "reason": reason}))
        return effects

    def _on_signal(self, nick: str, payload: str, now: float) -> list[Effect]:
        peer = self.peers.get(nick)
        if peer is None:
            return []
        try:
            results = peer.session.on_signal(payload)
        except CryptoError:
            return []
        effects: list[Effect] = []
        for result in results:
            if isinstance(result, SignalOut):
                effects.extend(self._signals([result]))
            elif isinstance(result, Verified):
                effects.extend(self._on_verified(peer, result.candidates, now))
            elif isinstance(result, Mismatch):
                effects.extend(self._on_mismatch(peer, now))
        return effects

    def _signals(self, outs: list[Any]) -> list[Effect]:
        return [
            ToRelay(SendSignal(type="signal", code=self.room_code, to=out.to, payload=out.payload))
            for out in outs
            if isinstance(out, SignalOut)
        ]

    def _on_verified(self, peer: Peer, candidates: Candidates, now: float) -> list[Effect]:
        self._authoritative = True  # we share the secret with a member: it is the room's
        peer.server_key = candidates.curve_key
        peer.candidates = self._dial_order(candidates)
        allow: list[Effect] = [Allow(peer.nick, candidates.curve_key)]
        if peer.session.dials_first:
            return [*allow, *self._dial_next(peer, now)]
        # One side dials first so that both end up on one connection; the other dials only if
        # nothing has come in by the time the first side has tried all our addresses.
        ours = len(self._dial_order(self._candidates))
        peer.redial_at = now + self.settings.connect_timeout * (ours + 1)
        return allow

    @staticmethod
    def _dial_order(candidates: Candidates | None) -> list[tuple[PathName, Endpoint]]:
        if candidates is None:
            return []
        order: list[tuple[PathName, Endpoint]] = [("lan", e) for e in candidates.lan]
        for public in (candidates.reported, candidates.observed):
            if public is not None and all(public != endpoint for _, endpoint in order):
                order.append(("direct", public))
        return order

    def _on_mismatch(self, peer: Peer, now: float) -> list[Effect]:
        if not self._authoritative:
            self.peers.pop(peer.nick, None)
            message = "wrong code or password: the room's members hold a different secret"
            return [
                Show({"event": "error", "message": message, "reason": "wrong_secret"}),
                *self.leave(now, 1),
            ]
        self._failures += 1
        effects: list[Effect] = [
            *self._drop_peer(peer.nick, "wrong_secret")[:-1],
            Show(
                {
                    "event": "wrong_secret",
                    "nick": peer.nick,
                    "attempt": self._failures,
                    "limit": self.settings.max_failures,
                }
            ),
        ]
        if self._failures >= self.settings.max_failures and not self._locked:
            self._locked = True
            effects.append(ToRelay(LockRoom(type="lock_room", code=self.room_code)))
            effects.append(Show({"event": "room_locked", "code": self.room_code}))
        return effects

    def _dial_next(self, peer: Peer, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if peer.attempt is not None:  # it timed out
            self._attempts.pop(peer.attempt, None)
            peer.open_attempts.discard(peer.attempt)
            effects.append(Hangup(peer.attempt))
            peer.attempt = peer.attempt_deadline = None
        if peer.link is not None:
            return effects
        if not peer.candidates:
            peer.redial_at = now + self.settings.redial_interval
            message = f"no direct path to {peer.nick} yet; retrying"
            return [*effects, Show({"event": "error", "message": message})]
        path, endpoint = peer.candidates.pop(0)
        attempt = next(self._attempt_ids)
        self._attempts[attempt] = (peer.nick, path)
        peer.open_attempts.add(attempt)
        peer.attempt, peer.attempt_deadline = attempt, now + self.settings.connect_timeout
        hello = CONTROL + encode(LinkHello(path=path))
        return [*effects, Dial(peer.nick, attempt, endpoint, peer.server_key, hello)]

    def _on_control(self, peer: Peer, link: Link, body: bytes, now: float) -> list[Effect]:
        """Hello -> ack -> ready: a link carries records only once both ends have kept it."""
        try:
            control = _CONTROL.validate_json(body)
        except ValidationError:
            return []
        if isinstance(link, InLink):
            if isinstance(control, LinkHello):
                return [ToLink(link, CONTROL + encode(LinkHelloAck()))]
            if isinstance(control, LinkReady) and peer.link is None and peer.session.confirmed:
                return self._connected(peer, link, control.path, now)
            return []
        if not isinstance(control, LinkHelloAck) or link.attempt not in peer.open_attempts:
            return []
        path = self._attempts.get(link.attempt, (peer.nick, "direct"))[1]
        if peer.attempt == link.attempt:
            peer.attempt = peer.attempt_deadline = None  # answered: keep it open
        effects: list[Effect] = [ToLink(link, CONTROL + encode(LinkReady(path=path)))]
        if peer.link is None and peer.session.confirmed:
            effects.extend(self._connected(peer, link, path, now))
        return effects

    def _connected(self, peer: Peer, link: Link, path: PathName, now: float) -> list[Effect]:
        peer.link, peer.path = link, path
        peer.last_heard, peer.next_ping = now, now
        peer.redial_at = None
        # A dial still pending stays open until answered or timed out: the member may pick it
        # as its own sending link, and closing it would drop what it sends.
        effects: list[Effect] = [Show({"event": "connected", "nick": peer.nick, "path": path})]
        self._backlog.clear()
        outbox, peer.outbox = peer.outbox, []
        effects.extend(self._record(peer, Chat(text=text)) for text in outbox)
        return effects

    def _say(self, text: str) -> list[Effect]:
        if not self.peers:
            self._backlog.append(text)
            return []
        effects: list[Effect] = []
        for peer in self.peers.values():
            if peer.link is None:
                peer.outbox.append(text)
            else:
                effects.append(self._record(peer, Chat(text=text)))
        return effects

    def _record(self, peer: Peer, message: Chat | Ping | Pong | Bye) -> ToLink:
        assert peer.link is not None  # callers send only on chosen links
        return ToLink(peer.link, RECORD + peer.session.seal_link(message))

    def _pending(self) -> bool:
        return bool(self._backlog) or any(peer.outbox for peer in self.peers.values())
