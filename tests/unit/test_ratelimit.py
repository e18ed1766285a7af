"""Token buckets per source, and the bound on how many sources are remembered."""

from __future__ import annotations

from broker.ratelimit import RateLimiter


def test_burst_then_refill_at_the_configured_rate() -> None:
    limiter = RateLimiter(burst=3, rate=0.5, max_keys=10)
    assert [limiter.try_take("a", now=0) for _ in range(4)] == [True, True, True, False]
    assert not limiter.has_token("a", now=1.9)
    assert limiter.has_token("a", now=2.0)
    assert limiter.try_take("a", now=2.0)
    assert not limiter.try_take("a", now=2.0)


def test_sources_are_limited_independently() -> None:
    limiter = RateLimiter(burst=1, rate=0.001, max_keys=10)
    assert limiter.try_take("a", now=0)
    assert not limiter.try_take("a", now=0)
    assert limiter.try_take("b", now=0)


def test_remembered_sources_never_exceed_the_cap() -> None:
    limiter = RateLimiter(burst=2, rate=0.001, max_keys=100)
    for index in range(10_000):
        limiter.try_take(f"10.0.{index // 256}.{index % 256}", now=0)
        assert len(limiter) <= 100


def test_refilled_buckets_are_forgotten_before_drained_ones() -> None:
    limiter = RateLimiter(burst=2, rate=1.0, max_keys=10)
    limiter.try_take("drained", now=0)
    limiter.try_take("drained", now=0)  # least recently used, and still short at t=1.6
    for index in range(9):
        limiter.try_take(f"k{index}", now=0.5)  # full again by t=1.5
    limiter.try_take("newcomer", now=1.6)
    assert len(limiter) == 2
    # Still remembered with 1.6 tokens: one more take leaves it short (a fresh key would not be).
    assert limiter.try_take("drained", now=1.6)
    assert not limiter.has_token("drained", now=1.6)
