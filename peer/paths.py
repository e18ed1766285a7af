"""Which path reaches each member: direct dials, relay-coordinated hole punching, fallback.

Pure and clock-injected. Once a member is verified both sides dial its candidates; the one
that dials first also asks the relay to coordinate a hole punch, which starts at the relay's
common time unless a dial has connected by then. Whatever answers first carries the chat;
with no direct path in `direct_timeout`, the fallback server does, and the dials go on in the
background so the chat moves back to a direct path when one appears.
"""

from __future__ import annotations

from collections.abc import Callable

from peer.dialing import Dialer, dial_order, publicly_reachable
from peer.effects import Allow, Effect, Link, Show, ToRelay
from peer.members import Peer, PeerSettings
from schemas.peer import Candidates, PathName
from schemas.relay import CoordinateConnection, RequestCoordination

Reached = Callable[[Peer, float], list[Effect]]
"""What the room does when a member becomes reachable (or changes path): resend."""
Drop = Callable[[str, str, float], list[Effect]]


class Paths:
    def __init__(
        self,
        *,
        me: str,
        room_code: str,
        settings: PeerSettings,
        candidates: Candidates,
        fallback: bool,
        wall_offset: float,
        reached: Reached,
        drop: Drop,
    ) -> None:
        """`fallback`: a fallback server is usable. `wall_offset`: the relay's wall clock
        minus our monotonic clock (the relay's start times are wall-clock times)."""
        self.me, self.room_code, self.settings = me, room_code, settings
        self.fallback = fallback
        self.dialer = Dialer(settings)
        self._candidates, self._wall_offset = candidates, wall_offset
        self._reached, self._drop = reached, drop

    # ------------------------------------------------------------------ events

    def on_verified(self, peer: Peer, candidates: Candidates, now: float) -> list[Effect]:
        peer.server_key = candidates.curve_key
        if self.settings.transport == "fallback":
            if self.fallback:
                return self.use_fallback(peer, now)
            return [Show({"event": "error", "message": "no fallback server to reach members"})]
        peer.fallback_at = now + self.settings.direct_timeout if self.fallback else None
        allow: list[Effect] = [Allow(peer.nick, candidates.curve_key)]
        if peer.session.dials_first:
            # Our Allow is performed before the request leaves, so by the time the relay's
            # push reaches the other side it may dial us too (ZAP will not refuse it).
            return [*allow, *self.dialer.start(peer, now), self._coordinate(peer)]
        # Until the other side's coordination tells us it has our key, dialing it could be
        # refused for good (libzmq does not retry a CurveZMQ connection ZAP refused); if the
        # relay never says, dial once the other side could have tried all our addresses.
        ours = len(dial_order(self._candidates))
        peer.redial_at = now + self.settings.connect_timeout * (ours + 1)
        return allow

    def on_coordinate(self, peer: Peer, message: CoordinateConnection, now: float) -> list[Effect]:
        """The relay's common start time for a hole punch with `peer`."""
        if not peer.session.confirmed or self.settings.transport == "fallback":
            return []
        start = message.timestamp - self._wall_offset
        peer.punch_at = min(max(now, start), now + self.settings.punch_lead_max)
        # Now the other side has our key: dial it at once if it has a public address (it may
        # be unable to reach us behind our NAT); else its own dials will do, or the punch.
        remote = peer.session.remote_candidates
        if (
            peer.link is None
            and peer.attempt is None
            and not peer.session.dials_first
            and remote is not None
            and publicly_reachable(remote)
        ):
            peer.redial_at = None
            return self.dialer.start(peer, now)
        return []

    def on_control(self, peer: Peer, link: Link, body: bytes, now: float) -> list[Effect]:
        effects, path = self.dialer.on_control(peer, link, body)
        if path is not None and peer.session.confirmed and peer.link is None:
            effects.extend(self.use_link(peer, link, path, now))
        return effects

    # ------------------------------------------------------------------ time

    def tick(self, peer: Peer, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if peer.attempt_deadline is not None and now >= peer.attempt_deadline:
            effects.extend(self.dialer.dial_next(peer, now))
        if peer.link is not None and now - peer.link_heard > self.settings.peer_timeout:
            effects.extend(self._lose_link(peer, now))
            if peer.gone:
                return effects
        if peer.on_fallback and now - peer.last_heard > self.settings.fallback_timeout:
            return [*effects, *self._drop(peer.nick, "timeout", now)]
        if peer.fallback_at is not None and now >= peer.fallback_at and peer.link is None:
            peer.fallback_at = None
            if self.fallback:
                effects.extend(self.use_fallback(peer, now))
        if peer.redial_at is not None and now >= peer.redial_at and peer.link is None:
            peer.redial_at = None
            if peer.attempt is None:
                effects.extend(self.dialer.start(peer, now))
                if peer.session.dials_first:
                    effects.append(self._coordinate(peer))
        if peer.punch_at is not None and now >= peer.punch_at:
            peer.punch_at = None
            if peer.link is None and self._candidates.punch is not None:
                effects.extend(self.dialer.punch(peer, now))
        if peer.punch_until is not None and now >= peer.punch_until:
            effects.extend(self.dialer.end_punch(peer))
        return effects

    def deadlines(self, peer: Peer) -> list[float | None]:
        found = [
            peer.attempt_deadline,
            peer.redial_at,
            peer.fallback_at,
            peer.punch_at,
            peer.punch_until,
        ]
        if peer.reachable:
            heard = peer.link_heard if peer.link is not None else peer.last_heard
            limit = self.settings.peer_timeout if peer.link else self.settings.fallback_timeout
            found.append(heard + limit)
        return found

    # ------------------------------------------------------------------ paths

    def use_link(self, peer: Peer, link: Link, path: PathName, now: float) -> list[Effect]:
        peer.link, peer.on_fallback = link, False
        peer.fallback_at = peer.redial_at = peer.punch_at = None
        peer.link_heard = peer.last_heard = peer.next_ping = now
        return [self._announce(peer, path), *self._reached(peer, now)]

    def use_fallback(self, peer: Peer, now: float) -> list[Effect]:
        peer.on_fallback, peer.last_heard, peer.next_ping = True, now, now
        if self.settings.transport == "auto" and peer.redial_at is None and peer.attempt is None:
            # Keep trying to go direct; the side that dials first tries first.
            later = 1.0 if peer.session.dials_first else 1.5
            peer.redial_at = now + self.settings.redial_interval * later
        return [self._announce(peer, "fallback"), *self._reached(peer, now)]

    def _lose_link(self, peer: Peer, now: float) -> list[Effect]:
        """The direct link went silent: through the fallback server if we may, else gone."""
        peer.link = None
        effects = self.dialer.hang_up_all(peer)
        if not self.fallback:
            return [*effects, *self._drop(peer.nick, "timeout", now)]
        return [*effects, *self.use_fallback(peer, now)]

    def _announce(self, peer: Peer, path: PathName) -> Show:
        kind = "path_changed" if peer.announced else "connected"
        peer.announced, peer.path = True, path
        return Show({"event": kind, "nick": peer.nick, "path": path})

    def _coordinate(self, peer: Peer) -> ToRelay:
        peers = [self.me, peer.nick]
        return ToRelay(
            RequestCoordination(type="coordinate_connection", code=self.room_code, peers=peers)
        )
