"""Room codes in the design's `adjective-noun-NN` format."""

from __future__ import annotations

import random
import re

from broker.words import ADJECTIVES, NOUNS
from schemas.fields import ROOM_CODE_PATTERN

_CODE = re.compile(ROOM_CODE_PATTERN)
CODE_SPACE = len(ADJECTIVES) * len(NOUNS) * 90


def generate_code(rng: random.Random) -> str:
    code = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{rng.randint(10, 99)}"
    if not _CODE.match(code):  # a word list edit that breaks the wire format must fail loudly
        raise RuntimeError(f"generated code {code!r} does not match the room-code format")
    return code
