"""Token buckets for /api/events: per client IP and per site, in this process's memory.

Each key refills at `rate` tokens per second up to `burst`; an event costs one token. The
number of keys is bounded (least recently used ones are forgotten, which only ever makes the
limiter more lenient), so a flood of distinct IPs cannot grow memory without end.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(f"rate limit: too many events from this {scope}, retry later")
        self.retry_after_s = retry_after_s


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: object, cost: int = 1) -> float:
        """Spend `cost` tokens; return 0 when allowed, else seconds until it would be."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait
