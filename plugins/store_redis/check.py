"""`appliance doctor` and `/readyz` for Redis: a PING with the configured credentials.

Not essential for readiness: without Redis the appliance answers from the persistent store
(degraded) and the processor catches Redis up later, so a Redis outage must not take every
app instance out of a load balancer.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from appliance.core.checks import Check, CheckFailed
from plugins.store_redis.config import RedisSettings
from plugins.store_redis.connection import check, describe, make_client

# describe() starts its line with the key to fix; what to do about each.
FIXES = {
    "REDIS.PASSWORD": "set APPLIANCE_REDIS__PASSWORD (and REDIS.USERNAME for an ACL user) to"
    " what Redis requires (requirepass)",
    "REDIS.TLS": "check REDIS.TLS, the rediss:// scheme and REDIS.TLS_CA_FILE",
    "REDIS.CLUSTER": "set REDIS.CLUSTER to what the server is",
    "REDIS.URL": "start Redis, or correct APPLIANCE_REDIS__URL; its port (6379) must be open"
    " to the app and processor hosts only",
}


class RedisCheck:
    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings

    async def run(self, timeout_s: float) -> str:
        client = make_client(self.settings)
        try:
            await asyncio.wait_for(check(client, self.settings), timeout_s)
        except Exception as error:
            line = describe(error, self.settings)
            key = line.split(":", 1)[0]
            raise CheckFailed(line, FIXES.get(key, FIXES["REDIS.URL"])) from None
        finally:
            await client.aclose()
        password = self.settings.password or urlsplit(self.settings.url).password
        authenticated = "with a password" if password else "without a password"
        return f"PING answered at {self.settings.where} ({authenticated})"


def redis_check(settings: RedisSettings) -> Check:
    return Check("redis", RedisCheck(settings).run, essential=False)
