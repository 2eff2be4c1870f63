"""Per-token submit rate limits: an in-process token bucket per API token.

The buckets live in the web process's memory, so the limit holds per web process: behind N
processes (or replicas) a token may submit up to N times its rate. That is enough to stop one client
from flooding the queue by accident; it needs no database round trip per request and no shared
store. A bucket holds one minute's worth of submits (the burst) and refills continuously at the rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SubmitRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # token id -> (tokens left, at)
        self._lock = threading.Lock()

    def take(self, key: int, rate_per_min: int) -> float:
        """Take one submit for ``key``: 0.0 when allowed, else the seconds until one is available
        (nothing is taken then)."""
        capacity = float(rate_per_min)
        per_s = rate_per_min / 60.0
        now = self._clock()
        with self._lock:
            left, at = self._buckets.get(key, (capacity, now))
            left = min(capacity, left + (now - at) * per_s)
            if left >= 1.0:
                self._buckets[key] = (left - 1.0, now)
                return 0.0
            self._buckets[key] = (left, now)
            return (1.0 - left) / per_s
