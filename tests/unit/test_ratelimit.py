"""Token buckets per access key, on a fake clock."""

from __future__ import annotations

import pytest

from cachefleet.model.ratelimit import TokenBuckets


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_calls_are_refused_until_tokens_come_back() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=5, clock=clock)
    assert [buckets.take("AKIA1") for _ in range(6)] == [True] * 5 + [False]
    assert buckets.retry_after("AKIA1") == pytest.approx(0.5)
    clock.now += 0.49
    assert not buckets.take("AKIA1")
    clock.now += 0.02
    assert buckets.take("AKIA1")
    assert not buckets.take("AKIA1")


def test_the_sustained_rate_is_the_configured_one() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=16.0, burst=1, clock=clock)
    allowed = 0
    for _ in range(1000):  # a call every 1/64 s (exact in binary): a quarter token each
        clock.now += 1 / 64
        allowed += buckets.take("k")
    assert allowed == 1 + 249  # the first from the full bucket, then one per four calls


def test_keys_have_separate_buckets() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock)
    assert buckets.take("alice")
    assert not buckets.take("alice")
    assert buckets.take("bob")


def test_tokens_never_exceed_the_burst() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=100.0, burst=3, clock=clock)
    buckets.take("k")
    clock.now += 3600
    assert [buckets.take("k") for _ in range(4)] == [True, True, True, False]


def test_the_table_stays_bounded_and_forgets_idle_keys_first() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key)
    clock.now += 10  # all three are full again: they can be dropped
    buckets.take("d")
    assert len(buckets) == 1
    busy = TokenBuckets(rate=0.001, burst=1, clock=clock, max_keys=2)
    busy.take("x")
    clock.now += 1
    busy.take("y")
    busy.take("z")  # both busy: the one idle longest ("x") goes
    assert len(busy) == 2
    assert not busy.take("y")


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBuckets(rate=0, burst=1, clock=FakeClock())
