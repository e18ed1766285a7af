"""Constrained field types shared by every Sandpiper wire model."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

MAX_NICK_LENGTH = 32
MAX_HOST_LENGTH = 253
MAX_REQ_ID_LENGTH = 64
MAX_SIGNAL_PAYLOAD = 4096
"""Characters of base64 text a `signal` may carry (about 3 KiB of binary)."""

ROOM_CODE_PATTERN = r"^[a-z]{2,16}-[a-z]{2,16}-[1-9][0-9]$"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def _check_nick(value: str) -> str:
    if value != value.strip():
        raise ValueError("nick must not start or end with whitespace")
    # str.isprintable() is False exactly for Unicode's "Other" (controls, format characters
    # such as bidi overrides, surrogates, private use, unassigned) and "Separator" categories,
    # ASCII space excepted: the characters that can disguise or garble a terminal line.
    if not value.isprintable():
        culprit = next(char for char in value if not char.isprintable())
        raise ValueError(
            f"nick must not contain control or formatting characters (U+{ord(culprit):04X})"
        )
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError("host must be an IP address or a DNS name") from None
    return value


Nick = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NICK_LENGTH),
    AfterValidator(_check_nick),
]
RoomCode = Annotated[str, StringConstraints(pattern=ROOM_CODE_PATTERN)]
Host = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_HOST_LENGTH), AfterValidator(_check_host)
]
Port = Annotated[int, Field(ge=1, le=65535)]
ReqId = (
    Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_REQ_ID_LENGTH, pattern=r"^[\x21-\x7e]+$"),
    ]
    | Annotated[int, Field(ge=0, le=2**53 - 1)]
)
SignalPayload = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SIGNAL_PAYLOAD, pattern=r"^[A-Za-z0-9+/=_-]+$"),
]
UnixTime = Annotated[float, Field(ge=0)]
Sequence = Annotated[int, Field(ge=1)]

RoomToken = Annotated[
    str, StringConstraints(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
"""Proof of the right to re-claim a room code after a relay restart (base64url)."""
RelayInstance = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
"""Random per relay process: a subscriber that sees it change knows the relay restarted."""
Z85Key = Annotated[
    str,
    StringConstraints(
        min_length=40, max_length=40, pattern=r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$"
    ),
]
"""A CurveZMQ public key in Z85 (40 characters)."""

ServiceAddress = Annotated[
    str, StringConstraints(max_length=260, pattern=r"^[A-Za-z0-9.\-\[\]:]{1,253}:[0-9]{1,5}$")
]
"""HOST:PORT of a service clients should use (the fallback server a relay advertises)."""

FallbackMemberId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A member's id on the fallback server: 16 random bytes in hex, passed on only sealed (a
hosted room member's: derived from the room and its nick; see docs/protocol.md)."""

FallbackRoomId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A room's id on the fallback server: 32 random bytes in hex, known only to its members
(a hosted room's: sha256 of its name; see docs/protocol.md)."""
