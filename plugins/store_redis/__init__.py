"""Real-time store in Redis: live minute and hour buckets, exactly once, degrades gracefully.

Used when `stores` names "redis" (the `local` and production profiles); the embedded
profile never imports the client. Settings: the `redis` section (config.py lists every key;
the README's "Redis" section shows them). Keys: keys.py. Reads: reads.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import hookimpl
from plugins.store_redis.config import DEFAULTS, NAME, RedisSettings, problems

if TYPE_CHECKING:
    from appliance.core.checks import Check
    from plugins.store_redis.ratelimit import RedisRateLimiter
    from plugins.store_redis.store import RedisStore


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {"redis": dict(DEFAULTS)}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    return problems(settings)


@hookimpl
def register_stores(appliance: Any) -> list[RedisStore]:
    if NAME not in appliance.settings.stores:
        return []
    from plugins.store_redis.store import RedisStore

    return [RedisStore(RedisSettings.from_settings(appliance.settings))]


@hookimpl
def register_checks(appliance: Any) -> list[Check]:
    if NAME not in appliance.settings.stores:
        return []
    from plugins.store_redis.check import redis_check

    return [redis_check(RedisSettings.from_settings(appliance.settings))]


@hookimpl
def register_rate_limiter(
    appliance: Any, scope: str, rate: float, burst: float
) -> RedisRateLimiter | None:
    """With Redis in use, every instance spends from the same buckets."""
    if NAME not in appliance.settings.stores:
        return None
    from plugins.store_redis.ratelimit import RedisRateLimiter

    return RedisRateLimiter(RedisSettings.from_settings(appliance.settings), scope, rate, burst)


@hookimpl
async def shutdown(appliance: Any) -> None:
    from plugins.store_redis.ratelimit import RedisRateLimiter

    for limiter in (appliance.ingest.per_ip, appliance.ingest.per_site):
        if isinstance(limiter, RedisRateLimiter):
            await limiter.close()
