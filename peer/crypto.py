"""Pairwise key exchange and sealing: SPAKE2 -> HKDF key schedule -> confirmation -> AEAD.

Pure: no sockets, no clock. Randomness is injectable (`entropy`) so tests can pin vectors.
Every pair of room members runs its own exchange; all of them share the invite secret.
"""

from __future__ import annotations

import hmac
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_Symmetric
from spake2.ed25519_basic import NotOnCurve
from spake2.spake2 import SPAKEError

PROTOCOL = b"sandpiper/v1"
PAKE_MESSAGE_SIZE = 33  # one side byte and an Ed25519 point
CONFIRM_SIZE = 32
_RECORD_VERSION = 1
_HEADER_SIZE = 9  # version byte + 64-bit sequence number
_VERSION_BYTE = bytes([_RECORD_VERSION])
_NONCE_PAD = bytes(4)
"""A nonce is this and the 64-bit sequence number: one key per direction, so the sequence
number alone makes every nonce unique."""
MAX_SEQUENCE = 2**64 - 1

Entropy = Callable[[int], bytes]


class CryptoError(Exception):
    """Input that fails authentication or is malformed; the caller drops it."""


class WrongSecret(CryptoError):
    """The other side proved a different secret: wrong code or password (or an attacker)."""


def pake_password(secret: str, password: str = "") -> bytes:
    """The PAKE input: invite secret words and optional room password, normalised.

    Words are case-folded (people retype them); the password is kept as typed, NFC-normalised.
    Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    """
    words = secret.strip().lower().encode()
    typed = unicodedata.normalize("NFC", password).encode()
    return b"".join(
        [
            PROTOCOL,
            b"/secret",
            len(words).to_bytes(2, "big"),
            words,
            len(typed).to_bytes(2, "big"),
            typed,
        ]
    )


def pake_identity(room_code: str) -> bytes:
    """Binds the exchange to one room: a transcript from another room does not fit."""
    return PROTOCOL + b"/room/" + room_code.encode()


class PakeExchange:
    """One SPAKE2 (symmetric) run with one other member."""

    def __init__(self, password: bytes, room_code: str, *, entropy: Entropy = os.urandom) -> None:
        self._spake = SPAKE2_Symmetric(
            password, idSymmetric=pake_identity(room_code), entropy_f=entropy
        )
        self.outbound = self._spake.start()

    def finish(self, inbound: bytes) -> bytes:
        """The 32-byte shared key; CryptoError for a malformed or reflected message."""
        if len(inbound) != PAKE_MESSAGE_SIZE or inbound[:1] != b"S":
            raise CryptoError("malformed PAKE message")
        if hmac.compare_digest(inbound, self.outbound):
            raise CryptoError("our own PAKE message came back (reflection)")
        try:
            key: bytes = self._spake.finish(inbound)
        # The library asserts on some bad points and raises a bare Exception subclass for
        # points off the curve (found by tests/fuzz: it crashed members).
        except (SPAKEError, NotOnCurve, AssertionError, ValueError) as exc:
            raise CryptoError("invalid PAKE message") from exc
        return key


@dataclass(frozen=True, repr=False)
class Channel:
    """Keys of one channel, seen from one side: each channel has its own sequence space."""

    send: bytes
    receive: bytes


@dataclass(frozen=True, repr=False)
class PairKeys:
    """Keys for one pair, seen from `me`. repr is suppressed: keys never reach a log.

    Records travel on two channels that do not keep order with each other (relay signals and
    direct links), so each channel has its own keys and its own sequence numbers.
    """

    signal: Channel
    link: Channel
    fallback: Channel
    confirm_out: bytes
    """What we send to prove we hold the key."""
    confirm_in: bytes
    """What the other side must send us."""


def _expand(shared: bytes, label: bytes, room_code: str, sender: str, receiver: str) -> bytes:
    info = b"\x00".join([PROTOCOL, label, room_code.encode(), sender.encode(), receiver.encode()])
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def derive_pair_keys(shared: bytes, room_code: str, me: str, them: str) -> PairKeys:
    """Per-direction, per-channel AEAD keys and key confirmations for `me` talking to `them`."""
    if me == them:
        raise ValueError("a member does not key a session with itself")

    def channel(label: bytes) -> Channel:
        return Channel(
            send=_expand(shared, label, room_code, me, them),
            receive=_expand(shared, label, room_code, them, me),
        )

    return PairKeys(
        signal=channel(b"signal"),
        link=channel(b"link"),
        fallback=channel(b"fallback"),
        confirm_out=_expand(shared, b"confirm", room_code, me, them),
        confirm_in=_expand(shared, b"confirm", room_code, them, me),
    )


def fallback_member_id(room_id: str, nick: str) -> str:
    """A hosted room member's id on the fallback server, derived from the room's and its nick
    (which it announces there). Relay rooms' members use random ids (`peer/fallback_room.py`)."""
    return sha256(
        PROTOCOL + b"/fallback-member\x00" + room_id.encode() + b"\x00" + nick.encode()
    ).hexdigest()[:32]


def check_confirmation(keys: PairKeys, received: bytes) -> None:
    if not hmac.compare_digest(keys.confirm_in, received):
        raise WrongSecret("key confirmation failed")


class Sealer:
    """Seals records for one direction; sequence numbers start at 0 and never repeat."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.next_sequence = 0

    def seal(self, plaintext: bytes) -> bytes:
        sequence = self.next_sequence
        if sequence > MAX_SEQUENCE:
            raise CryptoError("sequence numbers exhausted; rekey")
        self.next_sequence += 1
        counter = sequence.to_bytes(8, "big")
        header = _VERSION_BYTE + counter
        return header + self._aead.encrypt(_NONCE_PAD + counter, plaintext, header)


class Opener:
    """Opens records for one direction: each at most once, never an older after a newer.

    A gap is allowed (a path can lose records: a server restart, a link that died); the chat
    above numbers and acknowledges messages, and resends what was lost on another path.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.expected_sequence = 0

    def peek_sequence(self, record: bytes) -> int:
        if len(record) < _HEADER_SIZE + 16 or record[0] != _RECORD_VERSION:
            raise CryptoError("malformed record")
        return int.from_bytes(record[1:_HEADER_SIZE], "big")

    def open(self, record: bytes) -> bytes:
        """The plaintext; CryptoError for forgeries, replays, gaps and anything malformed."""
        sequence = self.peek_sequence(record)
        if sequence < self.expected_sequence:
            raise CryptoError(f"replayed or reordered record {sequence}")
        header = record[:_HEADER_SIZE]
        try:
            plaintext = self._aead.decrypt(_NONCE_PAD + header[1:], record[_HEADER_SIZE:], header)
        except InvalidTag:
            raise CryptoError("record failed authentication") from None
        self.expected_sequence = sequence + 1
        return plaintext
