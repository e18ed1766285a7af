"""Per-member state the room core keeps, and the core's tunable timings."""

from __future__ import annotations

from dataclasses import dataclass, field

from peer.effects import Link
from peer.session import PairSession
from schemas.peer import Endpoint, PathName


@dataclass(frozen=True)
class PeerSettings:
    connect_timeout: float = 1.5
    """Seconds one candidate address gets to answer before the next is tried."""
    ping_interval: float = 1.0
    peer_timeout: float = 5.0
    """Seconds of silence on a direct link after which a member is reported gone."""
    relay_heartbeat: float = 5.0
    redial_interval: float = 10.0
    eof_grace: float = 60.0
    """After end of input, how long undelivered lines wait for someone to deliver them to."""
    leave_grace: float = 2.0
    """After the relay reports a member left, how long its direct link may still deliver."""
    max_failures: int = 3
    """Wrong-secret attempts before the room is locked against new joiners."""


@dataclass
class Peer:
    nick: str
    session: PairSession
    outbox: list[str] = field(default_factory=list)
    candidates: list[tuple[PathName, Endpoint]] = field(default_factory=list)
    server_key: str = ""
    attempt: int | None = None
    """The dial we are waiting on; others may stay open (see `open_attempts`)."""
    attempt_deadline: float | None = None
    open_attempts: set[int] = field(default_factory=set)
    """Every dial of ours to this member still open: the member may be using any of them."""
    redial_at: float | None = None
    link: Link | None = None
    path: PathName | None = None
    last_heard: float = 0.0
    next_ping: float = 0.0
    rtt: float | None = None
    leaving_at: float | None = None
    """The relay says it left; its direct link gets until then to deliver what it sent."""
