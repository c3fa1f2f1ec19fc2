"""Rate limits on /api/events shared by every appliance instance through Redis.

Each key's token bucket lives in Redis (ratelimit.lua, on Redis's clock). Asking Redis on
every request would put a round trip on the ingest path, so this process leases a slice
of tokens (5 % of a second's refill, at least what the request costs) and spends it from
memory; a lease not spent within a second is forgotten (its tokens are lost, which only
makes the limit stricter, by at most a slice per instance and second).

When Redis does not answer, this process falls back to its own buckets (the limit then
holds per instance) and lets one request try Redis again every few seconds (the others do
not wait on it): a Redis outage never turns into refused or slow events.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from redis import exceptions as redis_errors

from appliance.core.ratelimit import TokenBuckets
from plugins.store_redis.config import RedisSettings
from plugins.store_redis.connection import describe, make_client
from plugins.store_redis.scripts import LuaScript

log = logging.getLogger(__name__)

LEASE_SHARE = 0.05  # of a second's refill, leased at once
LEASE_S = 1.0  # an unspent lease is forgotten after this
RETRY_REDIS_S = 5.0  # after a failure, local buckets only for this long
MAX_LEASES = 100_000


class RedisRateLimiter:
    def __init__(self, settings: RedisSettings, scope: str, rate: float, burst: float) -> None:
        self.settings = settings
        self.rate, self.burst = rate, burst
        self.slice = max(1, math.ceil(rate * LEASE_SHARE))
        self.key_prefix = f"{settings.key_prefix}:ratelimit:{scope}:"
        self.script = LuaScript("ratelimit.lua")
        self.local = TokenBuckets(rate, burst, max_keys=MAX_LEASES)
        self._leases: dict[str, tuple[int, float]] = {}  # key -> (tokens, forgotten at)
        self._client: Any = None
        self._local_until = 0.0  # until then this process's own buckets decide
        self._failed = False  # the last attempt to reach Redis failed

    async def acquire(self, key: str, cost: int) -> float:
        now = time.monotonic()
        tokens, expires = self._leases.get(key, (0, 0.0))
        if tokens >= cost and now < expires:
            self._leases[key] = (tokens - cost, expires)
            return 0.0
        if now < self._local_until:
            return self.local.take(key, cost)
        probing = self._failed  # after a failure, one request asks; the others stay local
        if probing:
            self._local_until = now + RETRY_REDIS_S
        try:
            granted, wait = await self._lease(key, max(cost, self.slice), cost)
        except (redis_errors.RedisError, OSError) as error:
            if not probing:
                log.warning(
                    "%s; rate limits are per instance until it answers",
                    describe(error, self.settings),
                )
            self._failed = True
            self._local_until = time.monotonic() + RETRY_REDIS_S
            return self.local.take(key, cost)
        if self._failed:
            log.info("Redis answers again: rate limits are shared again")
            self._failed, self._local_until = False, 0.0
        if granted < cost:
            return wait
        now = time.monotonic()
        if len(self._leases) >= MAX_LEASES:
            self._forget_expired(now)
        # Other requests of this key may have leased meanwhile: add to what they left.
        left, expires = self._leases.get(key, (0, 0.0))
        self._leases[key] = ((left if now < expires else 0) + granted - cost, now + LEASE_S)
        return 0.0

    async def _lease(self, key: str, want: int, need: int) -> tuple[int, float]:
        if self._client is None:
            self._client = make_client(self.settings)  # in the serving loop, on first use
        if self.script.sha is None:
            self.script.sha = await self._client.script_load(self.script.text)
        arguments = (self.rate, self.burst, want, need)
        bucket = self.key_prefix + "{" + key + "}"
        try:
            granted, wait = await self._client.evalsha(self.script.sha, 1, bucket, *arguments)
        except redis_errors.NoScriptError:  # Redis restarted or failed over
            self.script.sha = await self._client.script_load(self.script.text)
            granted, wait = await self._client.evalsha(self.script.sha, 1, bucket, *arguments)
        return int(granted), float(wait)

    def _forget_expired(self, now: float) -> None:
        """Bound memory: drop expired leases, or every lease when that is not enough (their
        tokens are lost to Redis's buckets: only ever stricter, never more lenient)."""
        self._leases = {k: lease for k, lease in self._leases.items() if lease[1] > now}
        if len(self._leases) >= MAX_LEASES:
            self._leases.clear()

    async def close(self) -> None:
        """From now on this process's own buckets decide (a request still in flight at the
        stop must not open a new client that nobody closes)."""
        self._local_until = math.inf
        if self._client is not None:
            await self._client.aclose()
            self._client = None
