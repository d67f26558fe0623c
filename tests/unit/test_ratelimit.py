"""The per-key token bucket of the ingestion API, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.ingest.ratelimit import RateLimiter

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class StepClock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


def test_a_burst_then_the_rate() -> None:
    clock = StepClock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("k") == 1  # half a second to a token: whole seconds for Retry-After
    clock.at += timedelta(seconds=0.5)
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == 1


def test_a_slow_rate_says_how_long_to_wait() -> None:
    clock = StepClock()
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") == 10
    clock.at += timedelta(seconds=4)
    assert limiter.acquire("k") == 6


def test_keys_have_their_own_buckets_and_idle_time_refills_only_to_the_burst() -> None:
    clock = StepClock()
    limiter = RateLimiter(rate=1, burst=2, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, 1]
    assert limiter.acquire("b") is None
    clock.at += timedelta(hours=1)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, 1]


def test_a_clock_that_steps_back_does_not_drain_the_bucket() -> None:
    clock = StepClock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.acquire("k") is None
    clock.at -= timedelta(minutes=5)
    assert limiter.acquire("k") == 1
    clock.at += timedelta(seconds=1)
    assert limiter.acquire("k") is None


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be > 0 and burst >= 1"):
        RateLimiter(rate, burst, StepClock())
