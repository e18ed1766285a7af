"""Direct links: dialing a member's candidates in order, and the hello / ack / ready exchange.

Pure. Returns effects; tells the room core when a link is established and on which path.
"""

from __future__ import annotations

import itertools

from pydantic import TypeAdapter, ValidationError

from peer.effects import Dial, Effect, Hangup, InLink, Link, Show, ToLink
from peer.members import Peer, PeerSettings
from schemas.codec import encode
from schemas.peer import (
    Candidates,
    Endpoint,
    LinkControl,
    LinkHello,
    LinkHelloAck,
    LinkReady,
    PathName,
)

CONTROL, RECORD = b"\x01", b"\x02"
_CONTROL: TypeAdapter[LinkControl] = TypeAdapter(LinkControl)


def dial_order(candidates: Candidates | None) -> list[tuple[PathName, Endpoint]]:
    """LAN addresses, then the reported one, then the one the relay saw; no repeats."""
    if candidates is None:
        return []
    order: list[tuple[PathName, Endpoint]] = [("lan", e) for e in candidates.lan]
    for public in (candidates.reported, candidates.observed):
        if public is not None and all(public != endpoint for _, endpoint in order):
            order.append(("direct", public))
    return order


class Dialer:
    def __init__(self, settings: PeerSettings) -> None:
        self.settings = settings
        self._attempts: dict[int, tuple[str, PathName]] = {}  # attempt -> (nick, path)
        self._ids = itertools.count(1)

    def nick_of(self, attempt: int) -> str | None:
        entry = self._attempts.get(attempt)
        return None if entry is None else entry[0]

    def start(self, peer: Peer, now: float) -> list[Effect]:
        """Try `peer`'s candidates again from the first."""
        peer.candidates = dial_order(peer.session.remote_candidates)
        return self.dial_next(peer, now)

    def dial_next(self, peer: Peer, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if peer.attempt is not None:  # it timed out
            effects.extend(self._hang_up(peer, peer.attempt))
            peer.attempt = peer.attempt_deadline = None
        if peer.link is not None:
            return effects
        if not peer.candidates:
            peer.redial_at = now + self.settings.redial_interval
            if self.settings.transport == "p2p" and not peer.on_fallback:
                message = f"cannot reach {peer.nick} directly yet; retrying"
                effects.append(Show({"event": "error", "message": message}))
            return effects
        path, endpoint = peer.candidates.pop(0)
        attempt = next(self._ids)
        self._attempts[attempt] = (peer.nick, path)
        peer.open_attempts.add(attempt)
        peer.attempt, peer.attempt_deadline = attempt, now + self.settings.connect_timeout
        hello = CONTROL + encode(LinkHello(path=path))
        return [*effects, Dial(peer.nick, attempt, endpoint, peer.server_key, hello)]

    def hang_up_all(self, peer: Peer) -> list[Effect]:
        effects: list[Effect] = []
        for attempt in sorted(peer.open_attempts):
            effects.extend(self._hang_up(peer, attempt))
        peer.attempt = peer.attempt_deadline = None
        return effects

    def _hang_up(self, peer: Peer, attempt: int) -> list[Effect]:
        self._attempts.pop(attempt, None)
        peer.open_attempts.discard(attempt)
        return [Hangup(attempt)]

    def on_control(
        self, peer: Peer, link: Link, body: bytes
    ) -> tuple[list[Effect], PathName | None]:
        """Hello -> ack -> ready: (effects, the path if this link may now carry records)."""
        try:
            control = _CONTROL.validate_json(body)
        except ValidationError:
            return [], None
        if isinstance(link, InLink):
            if isinstance(control, LinkHello):
                return [ToLink(link, CONTROL + encode(LinkHelloAck()))], None
            if isinstance(control, LinkReady):
                return [], control.path
            return [], None
        if not isinstance(control, LinkHelloAck) or link.attempt not in peer.open_attempts:
            return [], None
        path = self._attempts.get(link.attempt, (peer.nick, "direct"))[1]
        if peer.attempt == link.attempt:
            peer.attempt = peer.attempt_deadline = None  # answered: keep it open
        return [ToLink(link, CONTROL + encode(LinkReady(path=path)))], path
