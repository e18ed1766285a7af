"""A member's view of its room: one PairSession per member, a path to each, the chat.

Pure and clock-injected. The adapter feeds relay and fallback-server messages, link frames,
typed lines and `now`; the core answers with effects. Each member is reached on one path at a
time: a direct link (dialed in candidate order) or, when none works in time, the fallback
server; the chat is numbered and acknowledged, so a change of path loses and doubles nothing.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from peer.crypto import CryptoError, Entropy
from peer.dialing import CONTROL, RECORD
from peer.effects import Disallow, Effect, Link, OutLink, Quit, Show, ToFallback, ToRelay
from peer.fallback_room import FallbackRoom
from peer.keying import Keying
from peer.members import Peer, PeerSettings, describe
from peer.paths import Paths
from peer.presence import REJOIN, Presence
from peer.records import resend, send
from peer.session import Mismatch, SignalOut, Verified, decode_signal, unb64
from peer.trust import Trust
from schemas.fallback import Attached, Deliver, FallbackError, FallbackHeartbeat
from schemas.peer import (
    MAX_TEXT,
    Ack,
    Bye,
    Candidates,
    Chat,
    KeyRequest,
    PakeMessage,
    Ping,
    Pong,
    Token,
)
from schemas.relay import (
    CoordinateConnection,
    Error,
    LeaveRoom,
    PeerJoined,
    PeerLeft,
    ReceivedSignal,
    RelayMessage,
    RoomExpired,
    RoomLocked,
    SendSignal,
)

MAX_PEERS = 64
"""Members one core keys with at most, whatever a relay announces (relays allow 32)."""
HELP = "/peers  members, paths and round trips   /quit  leave   /help  this text"
Channel = Literal["link", "fallback"]


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
        fallback: bool = False,
        fallback_room: str | None = None,
        entropy: Entropy = os.urandom,
        wall_offset: float = 0.0,
        room_token: str | None = None,
    ) -> None:
        """`authoritative`: we created the room, so a secret mismatch is the other side's.
        `fallback`: a fallback server is connected (transport permitting, it is used).
        `wall_offset`: wall-clock time minus the clock `now` is read from.
        `room_token`: the relay's token for re-claiming the room (the creator gets it)."""
        self.me, self.room_code = me, room_code
        self.settings = settings or PeerSettings()
        self._keying = Keying(
            me=me,
            room_code=room_code,
            password=password,
            candidates=candidates,
            settings=self.settings,
            entropy=entropy,
        )
        self._entropy = entropy
        self._fallback = fallback and self.settings.transport != "p2p"
        self.peers: dict[str, Peer] = {}
        self._room = FallbackRoom(me, self._fallback, self._keying, self.peers, entropy)
        if fallback_room is not None or authoritative:  # a hosted room's name is fixed
            self._room.name(fallback_room or entropy(32).hex(), fixed=fallback_room is not None)
        self._paths = Paths(
            me=me,
            room_code=room_code,
            settings=self.settings,
            candidates=candidates,
            fallback=self._fallback,
            wall_offset=wall_offset,
            reached=self._reached,
            drop=self._drop_peer,
        )
        self._backlog: list[str] = []
        self._done = False
        self.presence = Presence(me, room_code, self.settings.relay_heartbeat, room_token)
        limit, keying = self.settings.max_failures, self._keying
        self.trust = Trust(
            authoritative=authoritative, limit=limit, presence=self.presence, keying=keying
        )
        self._eof_deadline: float | None = None

    # ------------------------------------------------------------------ inputs

    def start(self, members: list[str], now: float) -> list[Effect]:
        """We are registered; `members` are the others the relay listed."""
        self.presence.start(now)
        if self.fallback_room is None and all(nick == self.me for nick in members):
            self._room.name(self._entropy(32).hex())  # alone: nobody named it
        effects: list[Effect] = self._room.attach()
        for nick in members:
            if nick != self.me:
                effects.extend(self._add_peer(nick, now))
        return effects

    def on_relay(self, message: RelayMessage, now: float) -> list[Effect]:
        effects, listed = self.presence.on_relay(message, now)
        for nick in listed:
            if nick not in self.peers:
                effects.extend(self._add_peer(nick, now))
        return [*effects, *self._on_relay(message, now)]

    def on_relay_connected(self, now: float) -> None:
        self.presence.connected(now)

    def _on_relay(self, message: RelayMessage, now: float) -> list[Effect]:
        if isinstance(message, PeerJoined):
            nick = message.peer.nick
            if nick == self.me:
                return []
            peer = self.peers.get(nick)
            if peer is None:
                return self._add_peer(nick, now)
            # Registered again while we cannot reach it: it lost us; key a new session.
            return [] if peer.reachable else self._signals(self._keying.rekey(peer, now))
        if isinstance(message, PeerLeft):
            peer = self.peers.get(message.nick)
            if peer is not None and peer.reachable and message.reason == "left":
                peer.leaving_at = now + self.settings.leave_grace  # its last words may follow
                return []
            return self._give_up_if_hopeless(self._drop_peer(message.nick, message.reason), now)
        if isinstance(message, ReceivedSignal):
            return self._on_signal(message.from_, message.payload, now)
        if isinstance(message, CoordinateConnection):
            others = [nick for nick in message.peers if nick != self.me]
            peer = self.peers.get(others[0]) if len(others) == 1 else None
            return [] if peer is None else self._paths.on_coordinate(peer, message, now)
        if isinstance(message, RoomLocked):
            self.presence.locked = True
            return [Show({"event": "room_locked", "code": self.room_code})]
        if isinstance(message, RoomExpired):
            return [Show({"event": "error", "message": "the room expired"}), *self.leave(now, 1)]
        if isinstance(message, Error) and message.req_id != REJOIN:
            return [Show({"event": "error", "message": f"relay: {message.message}"})]
        return []  # acknowledgements need no action

    def on_fallback(self, message: Any, now: float) -> list[Effect]:
        """A message from the fallback server."""
        if isinstance(message, Deliver):
            nick = self._room.nick(message.from_)
            peer = self.peers.get(nick or "")
            if peer is None:
                return []
            try:
                record = unb64(message.payload)
            except CryptoError:
                return []
            return self._on_record(peer, "fallback", record, now)
        if isinstance(message, FallbackError) and message.code == "not_attached":
            return self._room.attach()  # the server restarted: attach again; resends follow
        if isinstance(message, Attached):
            effects: list[Effect] = []
            for peer in self.peers.values():
                if peer.on_fallback and peer.delivery.unacked:
                    effects.extend(self._resend(peer, now))
            return effects
        return []

    def on_link_frame(self, link: Link, nick: str | None, frame: bytes, now: float) -> list[Effect]:
        """A frame from a direct link; `nick` is known for inbound links (CurveZMQ + ZAP)."""
        if isinstance(link, OutLink):
            nick = self._paths.dialer.nick_of(link.attempt)
        peer = self.peers.get(nick or "")
        if peer is None:
            return []
        kind = frame[:1]
        if kind == RECORD:
            peer.link_heard = now  # on whichever connection: the direct path works
            return self._on_record(peer, "link", frame[1:], now)
        if kind == CONTROL:
            return self._paths.on_control(peer, link, frame[1:], now)
        return []

    def on_input(self, line: str, now: float) -> list[Effect]:
        text = line.rstrip("\r\n")
        if text.lstrip()[:1] == "/":
            command = text.strip().lower()
            if command in ("/quit", "/exit"):
                return self.leave(now, 0)
            if command == "/help":
                return [Show({"event": "help", "text": HELP})]
            if command == "/peers":
                return [Show({"event": "peers", "peers": self.describe_peers()})]
        elif not text or text.isspace():
            return []
        pieces = [text[start : start + MAX_TEXT] for start in range(0, len(text), MAX_TEXT)]
        return [effect for piece in pieces for effect in self._say(piece, now)]

    def on_end_of_input(self, now: float) -> list[Effect]:
        if not self._pending():
            return self.leave(now, 0)
        self._eof_deadline = now + self.settings.eof_grace
        return []

    def leave(self, now: float, code: int) -> list[Effect]:
        if self._done:
            return []
        self._done = True
        effects: list[Effect] = []
        for peer in self.peers.values():
            effects.extend(send(peer, Bye()))
        return [*effects, ToRelay(LeaveRoom(type="leave_room", code=self.room_code)), Quit(code)]

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        beat = self.presence.tick(now)
        if beat:
            effects.extend(beat)
            if self._fallback:
                effects.append(ToFallback(FallbackHeartbeat(type="heartbeat")))
        effects = self._give_up_if_hopeless(effects, now)  # before stalled exchanges restart
        for peer in [] if self._done else list(self.peers.values()):
            effects.extend(self._tick_peer(peer, now))
        if self._eof_deadline is not None and not self._done:
            if not self._pending():
                effects.extend(self.leave(now, 0))
            elif now >= self._eof_deadline:
                message = f"{self._pending()} message(s) could not be delivered"
                effects += [Show({"event": "error", "message": message}), *self.leave(now, 1)]
        return effects

    def next_deadline(self) -> float | None:
        deadlines = [self.presence.next_deadline(), self._eof_deadline]
        for peer in self.peers.values():
            if peer.ack_due is not None:
                # At once, once the adapter has done what it is doing. Delaying acks by 20 ms
                # to share them made one-way latency ~30% worse in bench.peer_bench (likely
                # because the peers then sit idle longer between messages).
                return 0.0
            deadlines += [peer.leaving_at, peer.retransmit_at, *self._paths.deadlines(peer)]
            deadlines.append(self._keying.stalled_at(peer))
            if peer.reachable:
                deadlines.append(peer.next_ping)
        return min((d for d in deadlines if d is not None), default=None)

    @property
    def fallback_room(self) -> str | None:
        return self._room.room

    def describe_peers(self) -> list[dict[str, Any]]:
        return [describe(peer) for peer in self.peers.values()]

    # ------------------------------------------------------------------ time

    def _tick_peer(self, peer: Peer, now: float) -> list[Effect]:
        if peer.leaving_at is not None and now >= peer.leaving_at:
            return self._drop_peer(peer.nick, "left")
        effects: list[Effect] = []
        if peer.ack_due is not None:
            effects.extend(send(peer, Ack(n=peer.ack_due)))
            peer.ack_due = None
        effects.extend(self._paths.tick(peer, now))
        if peer.gone:
            return effects
        stalled = self._keying.stalled_at(peer)
        if stalled is not None and now >= stalled:
            effects.extend(self._signals(self._keying.rekey(peer, now)))  # stalled: again
        if peer.reachable and now >= peer.next_ping:
            peer.next_ping = now + self.settings.ping_interval
            effects.extend(send(peer, Ping(stamp=int(now * 1e6))))
        if peer.retransmit_at is not None and now >= peer.retransmit_at:
            effects.extend(self._resend(peer, now))
        return effects

    # ------------------------------------------------------------------ members

    def _add_peer(self, nick: str, now: float, *, quiet: bool = False) -> list[Effect]:
        if not self.trust.allows(nick):
            return []  # it failed with us once; another exchange would be another guess
        if self.presence.locked:  # we run no more key exchanges, whatever the relay says
            return [Show({"event": "join_refused", "nick": nick, "reason": "room_locked"})]
        if len(self.peers) >= MAX_PEERS:
            return []
        session = self._keying.session(nick)
        peer = self.peers[nick] = Peer(nick, session, last_heard=now, keyed_at=now, returning=quiet)
        self._room.add(peer)
        for text in self._backlog:
            peer.delivery.queue(text)
        shown = [] if quiet else [Show({"event": "peer_joined", "nick": nick})]
        return [*shown, *self._signals(session.start())]

    def _drop_peer(
        self, nick: str, reason: str, now: float | None = None, *, announce: bool = True
    ) -> list[Effect]:
        """`now` for a member given up on: it may come back, so it is keyed with again."""
        peer = self.peers.pop(nick, None)
        if peer is None:
            return []
        peer.gone = True
        self._room.remove(peer)
        self._keying.give_up(peer, reason)
        effects: list[Effect] = [Disallow(nick), *self._paths.dialer.hang_up_all(peer)]
        if announce and (not peer.returning or peer.session.confirmed):
            effects.append(Show({"event": "peer_left", "nick": nick, "reason": reason}))
        if now is not None:
            effects.extend(self._add_peer(nick, now, quiet=True))
        return effects

    def _on_signal(self, nick: str, payload: str, now: float) -> list[Effect]:
        try:
            body = decode_signal(payload)
        except CryptoError:
            return []
        effects: list[Effect] = []
        peer = self.peers.get(nick)
        if peer is None and (self.presence.locked or nick == self.me):
            return []  # locked: the relay was told, so was our user, once; never ourselves
        if peer is None:
            # It keys with us: a member we gave up on, or whose join we have not heard of.
            asked = isinstance(body, KeyRequest) and self.me < nick
            effects = self._add_peer(nick, now) if asked or isinstance(body, PakeMessage) else []
            peer = self.peers.get(nick)
            if peer is None:
                return effects
        if isinstance(body, KeyRequest):
            return [*effects, *self._signals(self._keying.rekey(peer, now))]
        session = self._keying.route(peer, body, now)
        try:
            results = [] if session is None else session.on_body(body)
        except CryptoError:
            return effects
        replacing = session is not None and session is peer.pending  # a working session
        for result in results:
            if isinstance(result, SignalOut):
                effects.extend(self._signals([result]))
            elif isinstance(result, Verified):
                self.trust.authoritative = True  # we share the secret with a member
                if replacing:  # the working session's paths go
                    effects.extend(self._paths.dialer.hang_up_all(peer))
                self._keying.carry_over(peer, result.candidates, replacing)
                effects.extend(self._room.adopt(peer, result.candidates))
                effects.extend(self._paths.on_verified(peer, result.candidates, now))
            elif isinstance(result, Mismatch):
                effects.extend(self._on_mismatch(peer, replacing, now))
        return effects

    def _signals(self, outs: list[Any]) -> list[Effect]:
        return [
            ToRelay(SendSignal(type="signal", code=self.room_code, to=out.to, payload=out.payload))
            for out in outs
            if isinstance(out, SignalOut)
        ]

    def _on_mismatch(self, peer: Peer, replacing: bool, now: float) -> list[Effect]:
        """A different secret: `Trust` says what it costs and whom we give up."""
        if replacing:
            peer.pending = None  # the working session goes on
        shown, gone = self.trust.failed(peer.nick, replacing, list(self.peers.values()))
        effects: list[Effect] = []
        for nick in gone:
            effects += self._drop_peer(nick, "wrong_secret", announce=False)
        return self._give_up_if_hopeless([*effects, *shown], now)

    def _give_up_if_hopeless(self, effects: list[Effect], now: float) -> list[Effect]:
        if not self.trust.hopeless(self.peers.values(), now):
            return effects
        message = "wrong code or password: no member of the room holds the same secret"
        error = Show({"event": "error", "message": message, "reason": "wrong_secret"})
        return [*effects, error, *self.leave(now, 1)]

    def _reached(self, peer: Peer, now: float) -> list[Effect]:
        """`peer` is reachable on a new path: what it has not acknowledged goes again, and
        the room token, so that it too can take the room back after a relay restart."""
        self._backlog.clear()
        token = self.presence.token
        shared = [] if token is None else send(peer, Token(token=token))
        return [*shared, *self._resend(peer, now)]

    # ------------------------------------------------------------------ records

    def _on_record(self, peer: Peer, channel: Channel, record: bytes, now: float) -> list[Effect]:
        try:
            message = peer.session.open(channel, record)
        except CryptoError:
            return []  # forged, replayed or reordered: dropped, never shown
        peer.last_heard = now
        if isinstance(message, Chat):
            if peer.pending is not None:
                return []  # a new session is being keyed: it will bring this again (`_begin`)
            text, peer.ack_due = peer.delivery.receive(message.n, message.text)
            # The ack goes on the next tick: after the message is shown, shared by a burst.
            if text is None:
                return []
            return [Show({"event": "message", "from": peer.nick, "text": text})]
        if isinstance(message, Ack):
            if peer.delivery.on_ack(message.n):
                peer.retransmit_at = (
                    now + self.settings.retransmit_interval if peer.delivery.unacked else None
                )
            return []
        if isinstance(message, Ping):
            return send(peer, Pong(stamp=message.stamp))
        if isinstance(message, Pong):
            peer.rtt = max(0.0, now - message.stamp / 1e6)
            return []
        if isinstance(message, Bye):
            return self._drop_peer(peer.nick, "left")
        if isinstance(message, Token) and self.presence.token is None:
            self.presence.token = message.token
        return []

    def _say(self, text: str, now: float) -> list[Effect]:
        if not self.peers:
            self._backlog.append(text)
            return []
        effects: list[Effect] = []
        for peer in self.peers.values():
            number = peer.delivery.queue(text)
            if peer.reachable:
                effects.extend(send(peer, Chat(n=number, text=text)))
                if peer.retransmit_at is None:
                    peer.retransmit_at = now + self.settings.retransmit_interval
        return effects

    def _resend(self, peer: Peer, now: float) -> list[Effect]:
        return resend(peer, now, self.settings.retransmit_interval)

    def _pending(self) -> int:
        return len(self._backlog) + sum(len(p.delivery.unacked) for p in self.peers.values())
