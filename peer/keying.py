"""Key exchanges after the first: carrying the chat over to a new session without losing or
doubling a message. Pure.

A member can lose another and find it again (frozen laptop, a path down longer than the
timeouts, the relay forgetting it): the two then key a new session. Each side tells the other,
sealed in its candidates, how many messages of the previous session it showed (`Resume`); the
other sends again only the ones after those. What a side that gave the member up still had
unacknowledged waits in a `Departed` record until the member is back or gone for good.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from peer.crypto import Entropy
from peer.delivery import Delivery
from peer.members import Peer, PeerSettings
from peer.session import PairSession, SignalOut, encode_signal
from schemas.peer import Candidates, KeyRequest, PakeMessage, Resume, SignalBody

MAX_DEPARTED = 64
"""Members given up on whose unacknowledged messages are kept for their return."""


@dataclass(frozen=True)
class Departed:
    sid: str
    shown: int
    unacked: list[tuple[int, str]]


def departed(session: PairSession, delivery: Delivery) -> Departed | None:
    """What to keep of a member given up on: only a confirmed session has a chat to resume."""
    if not session.confirmed or session.sid is None:
        return None
    return Departed(session.sid, delivery.shown, list(delivery.unacked.items()))


def resume(previous: Departed | None) -> Resume | None:
    return None if previous is None else Resume(session=previous.sid, shown=previous.shown)


def carry_over(previous: Departed | None, theirs: Resume | None, queued: Delivery) -> Delivery:
    """A new session's delivery: the previous session's unacknowledged messages the other side
    did not show (all, if it does not know that session), then what was queued since."""
    delivery = Delivery()
    if previous is not None:
        known = theirs is not None and theirs.session == previous.sid
        for number, text in previous.unacked:
            if not known or number >= theirs.shown:  # type: ignore[union-attr]
                delivery.queue(text)
    for text in queued.unacked.values():
        delivery.queue(text)
    return delivery


def remember(book: OrderedDict[str, Departed], nick: str, record: Departed | None) -> None:
    """Keep `record` for `nick`, forgetting the oldest beyond MAX_DEPARTED."""
    if record is None:
        return
    book[nick] = record
    book.move_to_end(nick)
    while len(book) > MAX_DEPARTED:
        book.popitem(last=False)


class Keying:
    """Which key exchange a signal belongs to, and when to start a new one. The room core
    owns the members; this keeps what outlives them (`departed`) and makes their sessions."""

    def __init__(
        self,
        *,
        me: str,
        room_code: str,
        password: bytes,
        candidates: Candidates,
        settings: PeerSettings,
        entropy: Entropy,
    ) -> None:
        self.me, self.room_code, self.settings = me, room_code, settings
        self.candidates = candidates
        """Ours (the room core updates them until they are sent)."""
        self._password, self._entropy = password, entropy
        self.departed: OrderedDict[str, Departed] = OrderedDict()
        """Members given up on (silent too long), kept for their return."""
        self.closed = False
        """No new exchange with anyone, known members included: too many have failed."""

    def session(self, nick: str, sid: str | None = None) -> PairSession:
        """A new exchange with `nick`, telling it what we showed of the last, if any."""
        return self._session(nick, sid, self.departed.get(nick))

    def _session(self, nick: str, sid: str | None, previous: Departed | None) -> PairSession:
        candidates = self.candidates
        if previous is not None:
            candidates = candidates.model_copy(update={"resume": resume(previous)})
        room, password, entropy = self.room_code, self._password, self._entropy
        return PairSession(self.me, nick, room, password, candidates, sid=sid, entropy=entropy)

    def give_up(self, peer: Peer, reason: str) -> None:
        if reason == "timeout":
            remember(self.departed, peer.nick, departed(peer.session, peer.delivery))
        elif reason == "left":
            self.departed.pop(peer.nick, None)

    def route(self, peer: Peer, body: SignalBody, now: float) -> PairSession | None:
        """The session `body` belongs to; a new one if the member started a new exchange."""
        for session in (peer.session, peer.pending):
            if session is not None and session.accepts(body):
                return session
        if isinstance(body, PakeMessage) and not peer.session.starts and not self.closed:
            return self._begin(peer, body.sid, now)  # it lost the one we have
        return None

    def rekey(self, peer: Peer, now: float) -> list[SignalOut]:
        """Start a new exchange with `peer` (or, answering side, ask it to), at most once per
        `rekey_interval`."""
        if self.closed or now - peer.keyed_at < self.settings.rekey_interval:
            return []
        if not peer.session.starts:
            peer.keyed_at = now
            return [SignalOut(peer.nick, encode_signal(KeyRequest()))]
        return [out for out in self._begin(peer, None, now).start() if isinstance(out, SignalOut)]

    def _begin(self, peer: Peer, sid: str | None, now: float) -> PairSession:
        """A new exchange with `peer`: beside a working session, else instead of it. From now
        on the working session shows no more chat: what it would, the new one brings again."""
        peer.keyed_at = now
        live = departed(peer.session, peer.delivery)
        session = self._session(peer.nick, sid, live or self.departed.get(peer.nick))
        if live is not None:
            peer.pending = session
        else:
            peer.session, peer.pending = session, None
        return session

    def stalled_at(self, peer: Peer) -> float | None:
        """When the key exchange under way counts as stalled (None: none is, or none may run)."""
        if self.closed or (peer.session.confirmed and peer.pending is None):
            return None
        return peer.keyed_at + self.settings.handshake_timeout

    def close(self, peers: Iterable[Peer]) -> list[str]:
        """No exchange from now on: those under way end; the members never confirmed, whose
        nicks this returns, can no longer be reached."""
        self.closed = True
        unconfirmed = []
        for peer in peers:
            peer.pending = None
            if not peer.session.confirmed:
                unconfirmed.append(peer.nick)
        return unconfirmed

    def carry_over(self, peer: Peer, theirs: Candidates, swap: bool) -> None:
        """A session of `peer` was verified: what the last one left unacknowledged goes on in
        it. `swap`: it is the pending one, replacing a working session (whose paths go)."""
        if not swap or peer.pending is None:
            previous = self.departed.pop(peer.nick, None)
            if previous is not None:
                peer.delivery = carry_over(previous, theirs.resume, peer.delivery)
            return
        previous = departed(peer.session, peer.delivery)
        peer.session, peer.pending = peer.pending, None
        peer.link, peer.on_fallback, peer.retransmit_at, peer.ack_due = None, False, None, None
        peer.delivery = carry_over(previous, theirs.resume, Delivery())
