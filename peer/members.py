"""Per-member state the room core keeps, and the core's tunable timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from peer.delivery import Delivery
from peer.effects import Link
from peer.session import PairSession
from schemas.peer import Endpoint, PathName
from schemas.relay import MEMBER_HEARTBEAT

Transport = Literal["auto", "p2p", "fallback"]


@dataclass(frozen=True)
class PeerSettings:
    connect_timeout: float = 1.5
    """Seconds one candidate address gets to answer before the next is tried."""
    direct_timeout: float = 3.0
    """With transport auto: seconds without a direct path before a member goes via fallback."""
    ping_interval: float = 1.0
    peer_timeout: float = 5.0
    """Seconds of silence on a direct link after which it is given up."""
    fallback_timeout: float = 15.0
    """Seconds of silence through the fallback server after which a member is reported gone."""
    retransmit_interval: float = 2.0
    handshake_timeout: float = 10.0
    """Seconds a key exchange may take before it is started (or asked for) again."""
    rekey_interval: float = 2.0
    """The least time between two key exchanges this side starts with one member."""
    relay_heartbeat: float = MEMBER_HEARTBEAT
    redial_interval: float = 10.0
    eof_grace: float = 60.0
    """After end of input, how long undelivered lines wait for someone to deliver them to."""
    leave_grace: float = 2.0
    """After the relay reports a member left, how long its paths may still deliver."""
    max_failures: int = 3
    """Wrong-secret attempts before the room is locked against new joiners."""
    punch_lead_max: float = 3.0
    """The latest a hole punch starts after the relay's coordination arrives (clock skew)."""
    punch_window: float = 4.0
    """Seconds a hole punch keeps retrying before its sockets are closed."""
    punch_port_span: int = 4
    """Ports tried from a member's public mapping up, when its NAT does not keep ports."""
    transport: Transport = "auto"


@dataclass
class Peer:
    nick: str
    session: PairSession
    keyed_at: float = 0.0
    """When the newest key exchange with this member began."""
    pending: PairSession | None = None
    """A new key exchange the member started while the current session still works."""
    fallback_id: str = ""
    delivery: Delivery = field(default_factory=Delivery)
    candidates: list[tuple[PathName, Endpoint]] = field(default_factory=list)
    server_key: str = ""
    attempt: int | None = None
    """The dial we are waiting on; others may stay open (see `open_attempts`)."""
    attempt_deadline: float | None = None
    open_attempts: set[int] = field(default_factory=set)
    """Every dial of ours to this member still open: the member may be using any of them."""
    redial_at: float | None = None
    fallback_at: float | None = None
    """When to give up waiting for a direct path and go through the fallback server."""
    link: Link | None = None
    on_fallback: bool = False
    path: PathName | None = None
    announced: bool = False
    last_heard: float = 0.0
    """Anything authenticated from this member, on any path."""
    link_heard: float = 0.0
    """Anything on the direct link: only this proves the link alive."""
    next_ping: float = 0.0
    retransmit_at: float | None = None
    ack_due: int | None = None
    """An acknowledgement to send on the next tick (several arrivals share one)."""
    rtt: float | None = None
    leaving_at: float | None = None
    """The relay says it left; its paths get until then to deliver what it sent."""
    punch_at: float | None = None
    """When the relay-coordinated hole punch starts."""
    punch_until: float | None = None
    punch_attempts: set[int] = field(default_factory=set)
    returning: bool = False
    """Keyed with again after it went silent: its leaving was already shown."""
    gone: bool = False
    """Dropped from the room (a stale reference must not act)."""

    @property
    def reachable(self) -> bool:
        return self.link is not None or self.on_fallback


def describe(peer: Peer) -> dict[str, Any]:
    """What `/peers` shows of a member."""
    return {
        "nick": peer.nick,
        "state": "connected" if peer.reachable else peer.session.phase.value,
        "path": peer.path,
        "rtt_ms": None if peer.rtt is None else round(peer.rtt * 1000, 2),
    }
