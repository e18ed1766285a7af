"""What the room core asks of its adapter: relay requests, dials, link frames, output, quitting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.base import WireModel
from schemas.peer import Endpoint


@dataclass(frozen=True, slots=True)
class OutLink:
    """Our dial `attempt` to a member's listener (a DEALER of ours)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class InLink:
    """A member's dial into our listener, known by its ROUTER routing id."""

    routing_id: bytes


Link = OutLink | InLink


@dataclass(frozen=True, slots=True)
class ToRelay:
    request: WireModel


@dataclass(frozen=True, slots=True)
class Dial:
    nick: str
    attempt: int
    endpoint: Endpoint
    server_key: str
    hello: bytes


@dataclass(frozen=True, slots=True)
class Punch:
    """Connect from the relay connection's local port to `endpoint`, a member's public
    mapping, retrying quickly, so both NATs see outbound traffic and let the other in.

    With `server_key` we are the CurveZMQ client and say `hello`; without, we are the server
    (our listener's key) and answer: one side of a punched connection must be each."""

    nick: str
    attempt: int
    endpoint: Endpoint
    server_key: str | None
    hello: bytes


@dataclass(frozen=True, slots=True)
class Hangup:
    attempt: int


@dataclass(frozen=True, slots=True)
class ToLink:
    link: Link
    frame: bytes


@dataclass(frozen=True, slots=True)
class Allow:
    """Let `nick`'s CurveZMQ client key into our listener (ZAP)."""

    nick: str
    client_key: str


@dataclass(frozen=True, slots=True)
class Disallow:
    nick: str


@dataclass(frozen=True, slots=True)
class Show:
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Quit:
    code: int


@dataclass(frozen=True, slots=True)
class ToFallback:
    """A request for the fallback server (attach, send, heartbeat)."""

    request: WireModel


Effect = ToRelay | ToFallback | Dial | Punch | Hangup | ToLink | Allow | Disallow | Show | Quit
