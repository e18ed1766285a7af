"""Room tokens: a relay's proof, checkable after a restart without any stored state, that the
holder was in a room when it was created. Pure.

A token is base64url(nonce || created || mac): `nonce` tells one room from a later room that
happens to get the same code, `created` (Unix seconds) keeps a re-claimed room's original
expiry, and `mac` is HMAC-SHA256 under the relay's persistent key over the code, nonce and
creation time (first 16 bytes). Without the key nobody can make a token for a code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

NONCE_BYTES = 8
_MAC_BYTES = 16
_TOKEN_BYTES = NONCE_BYTES + 4 + _MAC_BYTES
KEY_BYTES = 32


class RoomTokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a room-token key has at least {KEY_BYTES} bytes")
        self._key = key

    def mint(self, code: str, nonce: bytes, created: int) -> str:
        body = nonce + struct.pack(">I", created)
        raw = body + self._mac(code, body)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def open(self, code: str, token: str) -> tuple[bytes, int] | None:
        """(nonce, created) of a genuine token for `code`; None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _TOKEN_BYTES:
            return None
        body, mac = raw[: NONCE_BYTES + 4], raw[NONCE_BYTES + 4 :]
        if not hmac.compare_digest(mac, self._mac(code, body)):
            return None
        (created,) = struct.unpack(">I", body[NONCE_BYTES:])
        return body[:NONCE_BYTES], created

    def _mac(self, code: str, body: bytes) -> bytes:
        digest = hmac.new(self._key, code.encode() + b"\0" + body, hashlib.sha256).digest()
        return digest[:_MAC_BYTES]
