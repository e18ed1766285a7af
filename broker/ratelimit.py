"""Token buckets keyed by source, with a hard cap on how many keys are remembered."""

from __future__ import annotations

from collections import OrderedDict


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
