"""Invite codes: the relay's room code followed by secret words that never leave the clients.

pine-ocean-42-amber-falcon   ->   room code "pine-ocean-42", secret "amber-falcon"
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from peer.words import SECRET_WORDS
from schemas.fields import ROOM_CODE_PATTERN

SECRET_WORD_COUNT = 2
_ROOM_CODE = re.compile(ROOM_CODE_PATTERN)
_WORDS = frozenset(SECRET_WORDS)


class InviteError(ValueError):
    """An invite that cannot be right; the message says what to fix."""


@dataclass(frozen=True, repr=False)
class Invite:
    room_code: str
    secret: str
    """Secret words joined by '-', or '' for an open room the relay operator can read."""

    @property
    def is_open(self) -> bool:
        return not self.secret

    def __str__(self) -> str:
        return f"{self.room_code}-{self.secret}" if self.secret else self.room_code

    def __repr__(self) -> str:  # never print the secret by accident
        shown = "<open>" if self.is_open else "<hidden>"
        return f"Invite(room_code={self.room_code!r}, secret={shown})"


def generate_secret(rng: random.Random) -> str:
    """Secret words for a new invite; pass `secrets.SystemRandom()` outside tests."""
    return "-".join(rng.choice(SECRET_WORDS) for _ in range(SECRET_WORD_COUNT))


def parse_invite(text: str) -> Invite:
    """Accepts what people paste or type: spaces or dashes, any case, stray whitespace."""
    tokens = [token for token in re.split(r"[\s\-]+", text.strip().lower()) if token]
    if len(tokens) < 3:
        raise InviteError("an invite looks like pine-ocean-42-amber-falcon")
    room_code = "-".join(tokens[:3])
    if not _ROOM_CODE.match(room_code):
        raise InviteError(f"{room_code!r} is not a room code (like pine-ocean-42)")
    secret_words = tokens[3:]
    if secret_words and len(secret_words) != SECRET_WORD_COUNT:
        raise InviteError(
            f"an invite has {SECRET_WORD_COUNT} secret words after the room code, "
            f"not {len(secret_words)}"
        )
    unknown = [word for word in secret_words if word not in _WORDS]
    if unknown:
        # Saying which position is wrong is safe: the word list is public, the choice is not.
        positions = ", ".join(str(3 + secret_words.index(word) + 1) for word in unknown)
        raise InviteError(f"word {positions} of the invite is not an invite word; check spelling")
    return Invite(room_code, "-".join(secret_words))
