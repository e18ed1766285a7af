"""Direct links: dialing a member's candidates in order, and the hello / ack / ready exchange.

Pure. Returns effects; tells the room core when a link is established and on which path.
"""

from __future__ import annotations

import itertools

from pydantic import TypeAdapter, ValidationError

from peer.effects import Dial, Effect, Hangup, InLink, Link, Punch, Show, ToLink
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
    """LAN addresses, then the reported one, then the one the relay saw; no repeats.

    A LAN address the relay saw as the member's public one is not behind a NAT: `direct`."""
    if candidates is None:
        return []
    public_host = None if candidates.observed is None else candidates.observed.host
    order: list[tuple[PathName, Endpoint]] = [
        ("direct" if e.host == public_host else "lan", e) for e in candidates.lan
    ]
    for public in (candidates.reported, candidates.observed):
        if public is not None and all(public != endpoint for _, endpoint in order):
            order.append(("direct", public))
    return order


def publicly_reachable(candidates: Candidates) -> bool:
    """The member reports an address of its own (`--advertise`), or the relay saw it at one
    of its LAN addresses: no NAT in front of it."""
    observed = candidates.observed
    return candidates.reported is not None or (
        observed is not None and any(e.host == observed.host for e in candidates.lan)
    )


class Dialer:
    def __init__(self, settings: PeerSettings) -> None:
        self.settings = settings
        self._attempts: dict[int, tuple[str, PathName]] = {}  # attempt -> (nick, path)
        self._answering: set[int] = set()
        """Punch attempts on which we are the CurveZMQ server: we answer as a listener does."""
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

    def punch(self, peer: Peer, now: float) -> list[Effect]:
        """Connect to the member's public mapping (and the ports above it, if its NAT does
        not keep ports) from our relay connection's port, for `punch_window` seconds."""
        remote = peer.session.remote_candidates
        if remote is None or remote.punch is None:
            return []
        span = 1 if remote.port_preserving else self.settings.punch_port_span
        answering = not peer.session.dials_first
        hello = b"" if answering else CONTROL + encode(LinkHello(path="punched"))
        effects: list[Effect] = []
        for port in range(remote.punch.port, min(remote.punch.port + span, 65536)):
            attempt = next(self._ids)
            self._attempts[attempt] = (peer.nick, "punched")
            if answering:
                self._answering.add(attempt)
            peer.open_attempts.add(attempt)
            peer.punch_attempts.add(attempt)
            target = Endpoint(host=remote.punch.host, port=port)
            key = None if answering else peer.server_key
            effects.append(Punch(peer.nick, attempt, target, key, hello))
        peer.punch_until = now + self.settings.punch_window
        return effects

    def end_punch(self, peer: Peer) -> list[Effect]:
        """Close the punch attempts that did not become the member's link."""
        effects: list[Effect] = []
        used = getattr(peer.link, "attempt", None)
        for attempt in sorted(peer.punch_attempts - {used}):
            effects.extend(self._hang_up(peer, attempt))
        peer.punch_attempts &= {used}
        peer.punch_until = None
        return effects

    def hang_up_all(self, peer: Peer) -> list[Effect]:
        effects: list[Effect] = []
        for attempt in sorted(peer.open_attempts):
            effects.extend(self._hang_up(peer, attempt))
        peer.attempt = peer.attempt_deadline = peer.punch_until = None
        return effects

    def _hang_up(self, peer: Peer, attempt: int) -> list[Effect]:
        self._attempts.pop(attempt, None)
        self._answering.discard(attempt)
        peer.open_attempts.discard(attempt)
        peer.punch_attempts.discard(attempt)
        return [Hangup(attempt)]

    def on_control(
        self, peer: Peer, link: Link, body: bytes
    ) -> tuple[list[Effect], PathName | None]:
        """Hello -> ack -> ready: (effects, the path if this link may now carry records)."""
        try:
            control = _CONTROL.validate_json(body)
        except ValidationError:
            return [], None
        if isinstance(link, InLink) or link.attempt in self._answering:
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
