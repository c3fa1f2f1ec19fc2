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
