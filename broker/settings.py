"""Relay settings: limits, timeouts and defaults in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    pub_port: int = 8001
    room_ttl: float = 24 * 3600.0
    """Seconds from a room's creation to its expiry."""
    member_timeout: float = 15.0
    """Seconds of silence after which a member is reported gone."""
    empty_room_grace: float = 120.0
    """Seconds an empty room keeps its code before it is closed."""
    coordinate_lead: float = 1.0
    """Seconds between a `coordinate_connection` request and the start time it hands out."""
    max_rooms: int = 100_000
    max_rooms_per_source: int = 32
    max_members_per_room: int = 32
    create_burst: int = 10
    create_per_minute: float = 10.0
    miss_burst: int = 5
    """Lookups/registrations of codes that do not exist before a source is rate-limited."""
    miss_per_minute: float = 12.0
    signal_burst: int = 200
    signal_per_second: float = 50.0
    max_tracked_sources: int = 65_536
    """Rate-limit buckets kept at most (full buckets are forgotten first)."""
    max_message_bytes: int = 65_536
    send_hwm: int = 1_000
    """Frames queued per client connection before further pushes to it are dropped."""
    fallback: str | None = None
    """HOST:PORT of a fallback server to advertise to clients."""
    advertise: str | None = None
    """HOST:PORT clients reach this relay at (a tunnel): handed to room creators for the
    invite command, and it means a loopback source is the tunnel, not a client."""
    advertise_pub: str | None = None
    """HOST:PORT clients reach the PUB socket at, when not this host's `pub_port`."""
    alive_interval: float = 2.0
    """Seconds between `relay_alive` beats on the PUB socket."""

    def __post_init__(self) -> None:
        for name in ("room_ttl", "member_timeout", "empty_room_grace", "alive_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.coordinate_lead < 0:
            raise ValueError("coordinate_lead must not be negative")
        for name in (
            "max_rooms",
            "max_rooms_per_source",
            "max_members_per_room",
            "create_burst",
            "miss_burst",
            "signal_burst",
            "max_tracked_sources",
            "max_message_bytes",
            "send_hwm",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_tracked_sources < 2:  # one for addresses, one for a tunnel's shared one
            raise ValueError("max_tracked_sources must be at least 2")
        for name in ("create_per_minute", "miss_per_minute", "signal_per_second"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
