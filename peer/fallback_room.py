"""The room's name on the fallback server, and its members' names there. Pure.

The name is random, never derived from the secret (the server would test guesses against
it): the creator names it, and members pass it on sealed with their candidates. Two members
who each named one (both joined an empty room at once) settle on the smaller.
"""

from __future__ import annotations

from peer.crypto import fallback_member_id
from peer.effects import Effect, ToFallback
from peer.keying import Keying
from peer.members import Peer
from schemas.fallback import Attach


class FallbackRoom:
    def __init__(self, me: str, used: bool, keying: Keying, peers: dict[str, Peer]) -> None:
        """`used`: a fallback server is connected and the transport allows it."""
        self.me, self.used = me, used
        self.room: str | None = None
        self.fixed = False
        """A hosted room's: its name's, never replaced."""
        self._keying, self._peers = keying, peers
        self._nicks: dict[str, str] = {}

    def name(self, room: str, *, fixed: bool = False) -> None:
        self.room, self.fixed = room, self.fixed or fixed
        keying = self._keying
        keying.candidates = keying.candidates.model_copy(update={"fallback_room": room})
        self._nicks.clear()
        for peer in self._peers.values():
            for session in (peer.session, peer.pending):  # for those not yet sent
                if session is not None:
                    update = {"fallback_room": room}
                    session.candidates = session.candidates.model_copy(update=update)
            self.add(peer)

    def adopt(self, offered: str | None) -> list[Effect]:
        """A confirmed member told us the room's name; the smaller of two wins."""
        if offered is None or self.fixed:
            return []
        if self.room is not None and self.room <= offered:
            return []
        self.name(offered)
        return self.attach()

    def attach(self) -> list[Effect]:
        """Attach to the fallback server, if we use one and know the room's name there."""
        if not self.used or self.room is None:
            return []
        member = fallback_member_id(self.room, self.me)
        return [ToFallback(Attach(type="attach", room=self.room, member=member))]

    def add(self, peer: Peer) -> None:
        if self.room is not None:
            peer.fallback_id = fallback_member_id(self.room, peer.nick)
            self._nicks[peer.fallback_id] = peer.nick

    def remove(self, peer: Peer) -> None:
        self._nicks.pop(peer.fallback_id, None)

    def nick(self, member: str) -> str | None:
        return self._nicks.get(member)
