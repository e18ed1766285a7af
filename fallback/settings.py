"""Fallback server settings: limits and timeouts in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FallbackSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    member_timeout: float = 15.0
    """Seconds of silence after which an attached member is detached."""
    max_rooms: int = 50_000
    max_members_per_room: int = 64
    max_message_bytes: int = 16_384
    send_hwm: int = 1_000
    """Frames queued per connection before further deliveries to it are dropped."""
    deliveries_burst: int = 50_000
    deliveries_per_second: float = 20_000.0
    """Deliveries one attached connection may cause (a record to the whole room counts once
    per recipient): this many at once, refilled at this rate; beyond, `rate_limited`."""

    def __post_init__(self) -> None:
        if self.member_timeout <= 0:
            raise ValueError("member_timeout must be positive")
        if self.deliveries_burst < self.max_members_per_room:
            raise ValueError("deliveries_burst must allow a record to the whole room")
        if self.deliveries_per_second <= 0:
            raise ValueError("deliveries_per_second must be positive")
        names = ("max_rooms", "max_members_per_room", "max_message_bytes", "send_hwm")
        for name in (*names, "deliveries_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
