"""A token bucket per key, in memory: enough for one API process to shield its database from
a runaway client. The clock is injected, so tests control time."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from engine.clock import Clock


@dataclass
class _Bucket:
    tokens: float
    at: float  # seconds since the epoch when `tokens` was counted


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()  # requests run on several worker threads

    def acquire(self, key: str) -> int | None:
        """Take one token for `key`: None when allowed, else the whole seconds to wait
        (what `Retry-After` says)."""
        now = self.clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
            # max(0, ...): a clock that steps back must not drain the bucket.
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))
