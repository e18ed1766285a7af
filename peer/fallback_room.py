"""The room's name on the fallback server, and its members' names there. Pure.

The name is random, never derived from the secret (the server would test guesses against
it): the creator names it, and members pass it on sealed with their candidates. Two members
who each named one (both joined an empty room at once) settle on the smaller.

Each member's id there is random too, picked once per run and passed on sealed with its
candidates, so the server cannot link ids to nicks by guessing. A hosted room (`fixed`) is
the exception: its members announce their nicks through the server, and an id derived from
the room and the nick is what binds the two.
"""

from __future__ import annotations

from peer.crypto import Entropy, fallback_member_id
from peer.effects import Effect, ToFallback
from peer.keying import Keying
from peer.members import Peer
from schemas.fallback import Attach
from schemas.peer import Candidates


class FallbackRoom:
    def __init__(
        self, me: str, used: bool, keying: Keying, peers: dict[str, Peer], entropy: Entropy
    ) -> None:
        """`used`: a fallback server is connected and the transport allows it."""
        self.me, self.used = me, used
        self.room: str | None = None
        self.fixed = False
        """A hosted room's: its name's, never replaced."""
        self.member = entropy(16).hex()
        """Our id on the server."""
        self._keying, self._peers = keying, peers
        self._nicks: dict[str, str] = {}
        self._share({"fallback_member": self.member})

    def name(self, room: str, *, fixed: bool = False) -> None:
        self.room, self.fixed = room, self.fixed or fixed
        if self.fixed:
            self.member = fallback_member_id(room, self.me)
            self._nicks.clear()
            for peer in self._peers.values():
                self.add(peer)
        self._share({"fallback_room": room, "fallback_member": self.member})

    def _share(self, update: dict[str, str]) -> None:
        """Into our candidates, also those of exchanges that have not sent them yet."""
        keying = self._keying
        keying.candidates = keying.candidates.model_copy(update=update)
        for peer in self._peers.values():
            for session in (peer.session, peer.pending):
                if session is not None:
                    session.candidates = session.candidates.model_copy(update=update)

    def adopt(self, peer: Peer, candidates: Candidates) -> list[Effect]:
        """A confirmed member told us its id, and the room's name: the smaller of two wins."""
        if not self.fixed and candidates.fallback_member is not None:
            self.remove(peer)
            peer.fallback_id = candidates.fallback_member
            self._nicks[peer.fallback_id] = peer.nick
        offered = candidates.fallback_room
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
        return [ToFallback(Attach(type="attach", room=self.room, member=self.member))]

    def add(self, peer: Peer) -> None:
        """A hosted room's member has its id from its nick; others tell us theirs (`adopt`)."""
        if self.fixed and self.room is not None:
            peer.fallback_id = fallback_member_id(self.room, peer.nick)
            self._nicks[peer.fallback_id] = peer.nick

    def remove(self, peer: Peer) -> None:
        if self._nicks.get(peer.fallback_id) == peer.nick:
            del self._nicks[peer.fallback_id]

    def nick(self, member: str) -> str | None:
        return self._nicks.get(member)
