"""Token buckets keyed by source, with a hard cap on how many keys are remembered."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from broker.effects import is_loopback


class RateLimiter:
    """`burst` tokens per key, refilled at `rate` tokens per second.

    Memory is bounded by `max_keys`: a key whose bucket has refilled completely is the same
    as an unknown key and is forgotten; past the cap the least recently used keys go first.
    """

    def __init__(self, *, burst: int, rate: float, max_keys: int) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self._burst
        tokens, stamp = entry
        return min(self._burst, tokens + max(0.0, now - stamp) * self._rate)

    def has_token(self, key: str, now: float) -> bool:
        return self._tokens(key, now) >= 1.0

    def try_take(self, key: str, now: float) -> bool:
        """Take one token if there is one; say whether there was."""
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            return False
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._shrink(now)
        return True

    def _shrink(self, now: float) -> None:
        # Shrink to 90% of the cap so the full scan happens once per many insertions.
        target = self._max_keys * 9 // 10
        full = [key for key in self._buckets if self._tokens(key, now) >= self._burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > target:
            self._buckets.popitem(last=False)


SHARED_FACTOR = 50
"""How much larger the limits of an address many clients share (a tunnel's agent) are."""


@dataclass(frozen=True, slots=True)
class Source:
    """Whom a request counts against: `key`, an address, or behind a tunnel one connection;
    and `shared`, the address those connections share, if any."""

    key: str
    shared: str | None = None


def source_of(client: bytes, host: str | None, behind_tunnel: bool) -> Source:
    """Behind a tunnel (ngrok TCP) every client arrives from the tunnel agent's loopback
    address: limits per address would be limits for all users together, so each connection
    counts alone, and all of them together against SHARED_FACTOR times the limits."""
    address = host or "unknown"
    if behind_tunnel and is_loopback(address):
        return Source(f"{address}/{client.hex()}", address)
    return Source(address)


class SourceLimiter:
    """A RateLimiter per source, plus one SHARED_FACTOR times as large per shared address;
    `max_keys` bounds both together (a 64th of them for shared addresses, at least one)."""

    def __init__(self, *, burst: int, rate: float, max_keys: int) -> None:
        shared_keys = max(1, max_keys // 64)
        self._own = RateLimiter(burst=burst, rate=rate, max_keys=max(1, max_keys - shared_keys))
        self._shared = RateLimiter(
            burst=burst * SHARED_FACTOR, rate=rate * SHARED_FACTOR, max_keys=shared_keys
        )

    def __len__(self) -> int:
        return len(self._own) + len(self._shared)

    def has_token(self, source: Source, now: float) -> bool:
        if source.shared is not None and not self._shared.has_token(source.shared, now):
            return False
        return self._own.has_token(source.key, now)

    def try_take(self, source: Source, now: float) -> bool:
        if not self.has_token(source, now):
            return False
        if source.shared is not None:
            self._shared.try_take(source.shared, now)
        return self._own.try_take(source.key, now)
