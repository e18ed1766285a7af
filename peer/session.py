"""One pair of members: PAKE, key confirmation, sealed candidates, and sealed record streams.

Pure. A session starts keyed by nothing; `seal` is impossible (raises) until the other side
has proven the same secret, so no plaintext can leave before a key is confirmed.

SPAKE2 keys once per exchange, so each exchange has one starter: the lower nick names it (a
random `sid`) and sends the first PAKE message; the other side answers with its own PAKE
message and its key confirmation, all under that sid. The answering side can ask for an
exchange (`KeyRequest`) but never starts one, so two sides that each lost the other cannot
start crossing exchanges forever; the room core routes each signal to its exchange by sid.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from peer.crypto import (
    CONFIRM_SIZE,
    CryptoError,
    Entropy,
    Opener,
    PairKeys,
    PakeExchange,
    Sealer,
    WrongSecret,
    check_confirmation,
    derive_pair_keys,
)
from schemas.codec import encode
from schemas.peer import (
    Candidates,
    KeyConfirmation,
    KeyRequest,
    PakeMessage,
    PeerMessage,
    SealedSignal,
    SignalBody,
)

_SIGNAL_BODY: TypeAdapter[SignalBody] = TypeAdapter(SignalBody)
_PEER_MESSAGE: TypeAdapter[PeerMessage] = TypeAdapter(PeerMessage)


class Phase(Enum):
    KEYING = "keying"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class NotConfirmed(Exception):
    """Sealing was asked of a session whose key is not confirmed (a bug, never input)."""


@dataclass(frozen=True, slots=True)
class SignalOut:
    """Send `payload` (already base64) to `to` through the relay."""

    to: str
    payload: str


@dataclass(frozen=True, slots=True)
class Verified:
    """The other side proved the secret and sent how to reach it."""

    nick: str
    candidates: Candidates


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The other side holds a different secret (wrong code or password, or a guesser)."""

    nick: str


SessionEffect = SignalOut | Verified | Mismatch


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.encode())
    except ValueError as exc:
        raise CryptoError("bad base64") from exc


def encode_signal(body: SignalBody) -> str:
    return b64(encode(body))


def decode_signal(payload: str) -> SignalBody:
    try:
        return _SIGNAL_BODY.validate_json(unb64(payload))
    except ValidationError as exc:
        raise CryptoError("malformed signal body") from exc


def decode_peer_message(plaintext: bytes) -> PeerMessage:
    try:
        # The validator itself: TypeAdapter.validate_json adds a layer on every chat message.
        message: PeerMessage = _PEER_MESSAGE.validator.validate_json(plaintext)
        return message
    except ValidationError as exc:
        raise CryptoError("malformed peer message") from exc


class PairSession:
    def __init__(
        self,
        me: str,
        them: str,
        room_code: str,
        password: bytes,
        candidates: Candidates,
        *,
        sid: str | None = None,
        entropy: Entropy = os.urandom,
    ) -> None:
        """`sid`: the exchange to answer (from the starter's PAKE message); the starting side
        names a new one, the answering side without one waits for the starter's."""
        self.me, self.them, self.room_code = me, them, room_code
        self.starts = me < them
        self.sid = sid if sid is not None or not self.starts else entropy(8).hex()
        self.phase = Phase.KEYING
        self.candidates = candidates
        """Ours, sent sealed once the key is confirmed (the room may update them until then)."""
        self._pake = PakeExchange(password, room_code, entropy=entropy)
        self._keys: PairKeys | None = None
        self._early_confirmation: bytes | None = None
        self._signal_out: Sealer | None = None
        self._signal_in: Opener | None = None
        self._link_out: Sealer | None = None
        self._link_in: Opener | None = None
        self._fallback_out: Sealer | None = None
        self._fallback_in: Opener | None = None
        self.remote_candidates: Candidates | None = None

    @property
    def confirmed(self) -> bool:
        return self.phase is Phase.CONFIRMED

    @property
    def keyed(self) -> bool:
        """A PAKE message was taken: this exchange can take no other."""
        return self._keys is not None

    def start(self) -> list[SessionEffect]:
        """The starter's PAKE message; the answering side asks for one, unless it was made
        to answer a given exchange."""
        if self.starts:
            return [self._pake_message()]
        return [] if self.sid is not None else [SignalOut(self.them, encode_signal(KeyRequest()))]

    def _pake_message(self) -> SignalOut:
        assert self.sid is not None  # the starter names it; the answerer adopts it first
        body = PakeMessage(sid=self.sid, msg=b64(self._pake.outbound))
        return SignalOut(self.them, encode_signal(body))

    def accepts(self, body: SignalBody) -> bool:
        """`body` belongs to this exchange (a waiting answerer adopts the first PAKE's)."""
        if isinstance(body, KeyRequest):
            return False
        if self.sid is None:
            return isinstance(body, PakeMessage) and not self.starts
        return body.sid == self.sid

    def on_signal(self, payload: str) -> list[SessionEffect]:
        """A relay `signal` from the other side; CryptoError for anything that does not fit."""
        body = decode_signal(payload)
        if isinstance(body, KeyRequest):
            return []  # the room core answers these: it starts exchanges
        if not self.accepts(body):
            raise CryptoError("a signal for another key exchange")
        return self.on_body(body)

    def on_body(self, body: SignalBody) -> list[SessionEffect]:
        """A decoded signal of this exchange (see `accepts`)."""
        if self.phase is Phase.FAILED or isinstance(body, KeyRequest):
            return []
        if isinstance(body, PakeMessage):
            self.sid = body.sid
            return self._on_pake(unb64(body.msg))
        if isinstance(body, KeyConfirmation):
            return self._on_confirmation(unb64(body.mac))
        return self._on_sealed(unb64(body.record))

    def _on_pake(self, message: bytes) -> list[SessionEffect]:
        if self._keys is not None:
            raise CryptoError("a second PAKE message in one session")
        shared = self._pake.finish(message)
        keys = self._keys = derive_pair_keys(shared, self.room_code, self.me, self.them)
        self.phase = Phase.CONFIRMING
        assert self.sid is not None
        confirmation = KeyConfirmation(sid=self.sid, mac=b64(keys.confirm_out))
        effects: list[SessionEffect] = [] if self.starts else [self._pake_message()]
        effects.append(SignalOut(self.them, encode_signal(confirmation)))
        if self._early_confirmation is not None:
            effects.extend(self._on_confirmation(self._early_confirmation))
        return effects

    def _on_confirmation(self, mac: bytes) -> list[SessionEffect]:
        if len(mac) != CONFIRM_SIZE:
            raise CryptoError("malformed key confirmation")
        if self._keys is None:
            # Signals from one sender arrive in order, so this only happens if the other side
            # misbehaves; keep it until our PAKE finishes rather than guess.
            self._early_confirmation = mac
            return []
        if self.phase is not Phase.CONFIRMING:
            raise CryptoError("a second key confirmation in one session")
        try:
            check_confirmation(self._keys, mac)
        except WrongSecret:
            self.phase = Phase.FAILED
            return [Mismatch(self.them)]
        keys = self._keys
        self.phase = Phase.CONFIRMED
        self._signal_out, self._signal_in = Sealer(keys.signal.send), Opener(keys.signal.receive)
        self._link_out, self._link_in = Sealer(keys.link.send), Opener(keys.link.receive)
        self._fallback_out = Sealer(keys.fallback.send)
        self._fallback_in = Opener(keys.fallback.receive)
        # The side that dials first (lower nick) sends its candidates at once; the other sends
        # its own only after it has the dialer's key, so the dialer is never refused by ZAP
        # (libzmq does not retry a connection its peer refused).
        return [self._send_candidates()] if self.dials_first else []

    @property
    def dials_first(self) -> bool:
        return self.starts

    def _send_candidates(self) -> SignalOut:
        assert self._signal_out is not None  # only called once confirmed
        assert self.sid is not None
        record = self._signal_out.seal(encode(self.candidates))
        return SignalOut(self.them, encode_signal(SealedSignal(sid=self.sid, record=b64(record))))

    def _on_sealed(self, record: bytes) -> list[SessionEffect]:
        if self._signal_in is None:
            raise CryptoError("a sealed signal before key confirmation")
        message = decode_peer_message(self._signal_in.open(record))
        if not isinstance(message, Candidates) or self.remote_candidates is not None:
            raise CryptoError("unexpected sealed signal")
        self.remote_candidates = message
        verified: list[SessionEffect] = [Verified(self.them, message)]
        return verified if self.dials_first else [*verified, self._send_candidates()]

    def seal(self, channel: Literal["link", "fallback"], message: PeerMessage) -> bytes:
        """One record for a direct link or the fallback server; NotConfirmed until confirmed."""
        sealer = self._link_out if channel == "link" else self._fallback_out
        if sealer is None:
            raise NotConfirmed(f"no confirmed key with {self.them}")
        return sealer.seal(encode(message))

    def open(self, channel: Literal["link", "fallback"], record: bytes) -> PeerMessage:
        """The message in a record; CryptoError for forgeries, replays and reordering."""
        opener = self._link_in if channel == "link" else self._fallback_in
        if opener is None:
            raise CryptoError("a record before key confirmation")
        return decode_peer_message(opener.open(record))
