"""Peer-to-peer messages: what members send each other.

Two layers:
- `SignalBody`: the JSON inside a relay `signal` payload (base64 on the wire), relay-visible:
  the PAKE message, the key confirmation, and sealed records (opaque to the relay).
- `PeerMessage`: the plaintext inside a sealed record, seen only by the two members.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import WireModel
from schemas.fields import FallbackMemberId, FallbackRoomId, Host, Nick, Port, RoomToken, Z85Key

MAX_TEXT = 4000
"""Characters in one chat message."""

Base64 = Annotated[
    str, StringConstraints(min_length=1, max_length=4000, pattern=r"^[A-Za-z0-9+/=_-]+$")
]


# ------------------------------------------------------------------ inside relay signals


SessionId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
"""One key exchange between a pair, named by the side that starts it (the lower nick)."""


class PakeMessage(WireModel):
    kind: Literal["pake"] = "pake"
    sid: SessionId
    msg: Base64


class KeyConfirmation(WireModel):
    kind: Literal["confirm"] = "confirm"
    sid: SessionId
    mac: Base64


class SealedSignal(WireModel):
    """A record sealed with the pair's keys, carried by the relay it cannot read."""

    kind: Literal["sealed"] = "sealed"
    sid: SessionId
    record: Base64


class KeyRequest(WireModel):
    """From the answering side (the higher nick): please start a key exchange with me (I am
    new, or I lost the one we had)."""

    kind: Literal["key_request"] = "key_request"


SignalBody = Annotated[
    PakeMessage | KeyConfirmation | SealedSignal | KeyRequest, Field(discriminator="kind")
]


# ------------------------------------------------------------------ inside sealed records


class Endpoint(WireModel):
    host: Host
    port: Port


class Resume(WireModel):
    """After a new key exchange with a member we had one with before: how many of its
    messages from that session we showed, so it sends again only the ones we did not."""

    session: SessionId
    shown: Annotated[int, Field(ge=0)]


class Candidates(WireModel):
    """How to reach the sender directly, and the CurveZMQ key its listener will present."""

    kind: Literal["candidates"] = "candidates"
    lan: Annotated[list[Endpoint], Field(max_length=16)]
    reported: Endpoint | None = None
    """An address the member gives itself (`--advertise`, e.g. a forwarded port)."""
    observed: Endpoint | None = None
    """The address the relay saw, with the listener's port."""
    punch: Endpoint | None = None
    """The public mapping the relay saw our relay connection come from: hole punching
    connects from that connection's local port to this address."""
    port_preserving: bool = False
    """The mapping kept our local port; if not, the punch also tries the ports just above."""
    curve_key: Z85Key
    fallback_room: FallbackRoomId | None = None
    """The room's id on the fallback server: random, picked by whoever named it first (the
    creator), passed on sealed, so the server cannot test guesses of the secret against it."""
    fallback_member: FallbackMemberId | None = None
    """The sender's own id on the fallback server: random, so the server cannot link it to a
    nick (deliveries from it are the sender's)."""
    resume: Resume | None = None


class Chat(WireModel):
    """Message number `n` from the sender to this member (0, 1, 2, ... whatever the path)."""

    kind: Literal["chat"] = "chat"
    n: Annotated[int, Field(ge=0)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]


class Ack(WireModel):
    """Every message up to and including `n` arrived (-1: none yet)."""

    kind: Literal["ack"] = "ack"
    n: Annotated[int, Field(ge=-1)]


class Ping(WireModel):
    kind: Literal["ping"] = "ping"
    stamp: int


class Pong(WireModel):
    kind: Literal["pong"] = "pong"
    stamp: int


class Bye(WireModel):
    kind: Literal["bye"] = "bye"


class Token(WireModel):
    """The room's re-claim token (see `reclaim_room`), shared with members once they are
    reached, so that any of them can take the code back after a relay restart."""

    kind: Literal["room_token"] = "room_token"
    token: RoomToken


class Hello(WireModel):
    """First record on a direct link: proves the link carries the pair's keys."""

    kind: Literal["hello"] = "hello"
    nick: Nick


PeerMessage = Annotated[
    Candidates | Chat | Ack | Ping | Pong | Bye | Hello | Token, Field(discriminator="kind")
]


# ------------------------------------------------------------------ link control (inside CurveZMQ)

PathName = Literal["lan", "direct", "punched", "fallback"]


class LinkHello(WireModel):
    """The dialer's first frame on a direct link; `path` names the candidate it dialed."""

    kind: Literal["hello"] = "hello"
    path: PathName


class LinkHelloAck(WireModel):
    kind: Literal["hello_ack"] = "hello_ack"


class LinkReady(WireModel):
    """The dialer's third frame: it got the ack in time and will keep this link.

    Until it arrives the listener sends nothing on the link: a dialer that gave up on a slow
    attempt has closed it, and whatever went there would be lost.
    """

    kind: Literal["ready"] = "ready"
    path: PathName


LinkControl = Annotated[LinkHello | LinkHelloAck | LinkReady, Field(discriminator="kind")]
