"""Connect to Redis (one node or a cluster) and turn its failures into one-line messages that
name the setting to fix.

A wrong password, TLS trouble or a cluster/non-cluster mismatch will not heal by waiting: they
stop start-up. A Redis that is merely not answering is not fatal: the appliance starts with
the real-time window degraded and the processor catches Redis up once it answers.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from plugins.store_redis.config import RedisSettings


def make_client(settings: RedisSettings) -> Redis | RedisCluster:
    options = settings.client_options()
    if settings.cluster:
        return RedisCluster.from_url(settings.connect_url, **options)
    return Redis.from_url(settings.connect_url, **options)


def describe(error: BaseException, settings: RedisSettings) -> str:
    """One line naming the key behind `error` (never the password)."""
    where = settings.where
    text = " ".join(str(error).split()) or type(error).__name__
    lowered = text.lower()
    if _is_auth_problem(error, lowered):
        if not (settings.password or urlsplit(settings.url).password):
            return (
                f"REDIS.PASSWORD: Redis at {where} requires a password"
                " (set APPLIANCE_REDIS__PASSWORD or put it in .secrets.toml)"
            )
        if "without any password configured" in lowered or "no password is set" in lowered:
            return f"REDIS.PASSWORD: set, but Redis at {where} has no password ({text})"
        return f"REDIS.PASSWORD: Redis at {where} refused the credentials ({text})"
    if _is_tls_problem(error, lowered):
        return f"REDIS.TLS: TLS with Redis at {where} failed ({text})"
    if "cluster mode is not enabled" in lowered or "cluster support disabled" in lowered:
        return (
            f"REDIS.CLUSTER: Redis at {where} is not a cluster (set APPLIANCE_REDIS__CLUSTER=false)"
        )
    if "runs in cluster mode" in lowered:
        return f"REDIS.CLUSTER: Redis at {where} {text}"
    if is_unreachable(error):
        return f"REDIS.URL: cannot reach Redis at {where} ({text})"
    return f"REDIS.URL: Redis at {where} answered with an error ({text})"


def is_unreachable(error: BaseException) -> bool:
    """True for failures that waiting may fix (as opposed to wrong settings)."""
    lowered = str(error).lower()
    if _is_auth_problem(error, lowered):
        return False
    if _is_tls_problem(error, lowered) or "cluster" in lowered and "not enabled" in lowered:
        return False
    return (
        isinstance(
            error,
            redis_errors.ConnectionError | redis_errors.TimeoutError | TimeoutError | OSError,
        )
        or isinstance(error, redis_errors.RedisClusterException)
        and "connect" in lowered
    )


def _is_auth_problem(error: BaseException, lowered: str) -> bool:
    return isinstance(error, redis_errors.AuthenticationError) or any(
        sign in lowered for sign in ("wrongpass", "noauth", "authentication required")
    )


def _is_tls_problem(error: BaseException, lowered: str) -> bool:
    cause: Any = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "ssl" in lowered and ("certificate" in lowered or "handshake" in lowered)


async def check(client: Redis | RedisCluster, settings: RedisSettings) -> None:
    """PING, and make sure `redis.cluster` matches what the server is."""
    await client.ping()
    if not settings.cluster:
        info = await client.info("cluster")
        if info.get("cluster_enabled"):
            raise redis_errors.ResponseError(
                "this node runs in cluster mode (set APPLIANCE_REDIS__CLUSTER=true)"
            )
