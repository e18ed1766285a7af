"""What a failed key confirmation means, and what it costs. Pure.

Sure of its secret (it created the room, or has confirmed it with some member:
`authoritative`), a member counts each failure: at `limit` the room locks (no new members);
at twice that no key exchange runs again, even with members it knows, whom a hostile relay
could pose as, so guessing ends there.

Not yet sure (a joiner), a failure may be its own fault (a mistyped code) or the other side's
(a stranger who registered with the room code and answered first). So it sets that member
aside, never keys with it again (each exchange would be one more guess for whoever is there),
and gives up once that is the likelier story: `limit` members failed, or none is left that
might still confirm (all gone, or silent past the handshake timeout).
"""

from __future__ import annotations

from collections.abc import Iterable

from peer.effects import Effect, Show, ToRelay
from peer.keying import Keying
from peer.members import Peer
from peer.presence import Presence
from schemas.relay import LockRoom


class Trust:
    def __init__(
        self, *, authoritative: bool, limit: int, presence: Presence, keying: Keying
    ) -> None:
        self.authoritative = authoritative
        self.limit = limit
        self.set_aside: set[str] = set()
        """Members a joiner failed with: never keyed with again while it is unsure."""
        self.failures = 0
        """Failed key exchanges counted while sure of the secret."""
        self._presence, self._keying = presence, keying

    def allows(self, nick: str) -> bool:
        """Whether to key with `nick` at all."""
        return self.authoritative or nick not in self.set_aside

    def failed(
        self, nick: str, replacing: bool, peers: Iterable[Peer]
    ) -> tuple[list[Effect], list[str]]:
        """`nick` proved a different secret (in a new exchange beside a working session, if
        `replacing`): what to show, and which members to give up."""
        if not self.authoritative:
            self.set_aside.add(nick)
            return [Show({"event": "unconfirmed", "nick": nick})], [nick]
        shown = self._count(nick)
        gone = [] if replacing else [nick]
        if self.failures >= 2 * self.limit and not self._keying.closed:
            gone += [other for other in self._keying.close(peers) if other not in gone]
        return shown, gone

    def _count(self, nick: str) -> list[Effect]:
        """Shown, and counted towards the lock, which the relay is told of."""
        self.failures += 1
        event = {
            "event": "wrong_secret",
            "nick": nick,
            "attempt": self.failures,
            "limit": self.limit,
        }
        effects: list[Effect] = [Show(event)]
        presence = self._presence
        if self.failures >= self.limit and not presence.locked:
            presence.locked = True
            effects.append(ToRelay(LockRoom(type="lock_room", code=presence.room_code)))
            effects.append(Show({"event": "room_locked", "code": presence.room_code}))
        return effects

    def hopeless(self, peers: Iterable[Peer], now: float) -> bool:
        """A joiner should give up: members failed, and none is left that might confirm."""
        if self.authoritative or not self.set_aside:
            return False
        if len(self.set_aside) >= self.limit:
            return True
        for peer in peers:
            stalled = self._keying.stalled_at(peer)
            if peer.session.confirmed or stalled is None or stalled > now:
                return False
        return True
