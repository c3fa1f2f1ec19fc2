"""Token buckets for /api/events: per client address and per site.

Each key refills at `rate` tokens per second up to `burst`; an event costs one token.
`TokenBuckets` keeps them in this process's memory: the number of keys is bounded (least
recently used ones are forgotten, which only ever makes the limiter more lenient), so a
flood of distinct addresses cannot grow memory without end. A plugin may share the buckets
between instances instead (the `register_rate_limiter` hook; the Redis plugin does).
Addresses reach any limiter only as keyed pseudonyms (`appliance.core.privacy`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class RateLimited(Exception):
    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(f"rate limit: too many events from this {scope}, retry later")
        self.retry_after_s = retry_after_s


class RateLimiter(Protocol):
    """What ingest needs of a limiter, local or shared."""

    async def acquire(self, key: str, cost: int) -> float:
        """Spend `cost` tokens of `key`'s bucket: 0 when allowed, else seconds to wait."""
        ...


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

    async def acquire(self, key: str, cost: int) -> float:
        return self.take(key, cost)
