"""What the relay core is told about a connection, and the effects it answers with."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from schemas.base import WireModel
from schemas.events import AnyRoomEvent, RelayAlive


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Origin(Protocol):
    """Where a request's connection comes from, as the relay observes it."""

    @property
    def host(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class KnownOrigin:
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """A reply or a push to one client connection."""

    client: bytes
    message: WireModel | bytes
    """A model, or a reply the core already encoded (a cached one)."""


@dataclass(frozen=True, slots=True)
class Publish:
    """A room event (topic: its room code) or the relay's beat (topic `!relay`) for PUB."""

    event: AnyRoomEvent | RelayAlive


Effect = Send | Publish
