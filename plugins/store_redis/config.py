"""The `redis` settings section: defaults, checks that name the key, and connection options.

Checked only when `stores` names "redis": the embedded profile never reads this section.
The password is a secret (APPLIANCE_REDIS__PASSWORD or .secrets.toml) and is never quoted
in a message; neither is a password written into the URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.core.settings import is_bool, is_int, require

NAME = "redis"

DEFAULTS: dict[str, Any] = {
    "url": "",  # required when used: redis://host:port/db or rediss://... (TLS)
    "password": "",  # a secret; required in the production profile
    "username": "",  # Redis 6+ ACL user; empty: the default user
    "tls": False,  # TLS with a redis:// URL too (rediss:// always uses TLS)
    "tls_ca_file": "",  # CA bundle for a private CA; empty: the system's
    "cluster": False,  # Redis Cluster: the URL names any one node
    "key_prefix": "appliance",  # so several appliances can share one Redis
    "window_minutes": 30,  # the newest window the query layer reads from Redis
    "minute_ttl_hours": 24,  # minute buckets are kept this long
    "hour_ttl_days": 30,  # hour buckets are kept this long
    "max_lag_s": 5,  # behind the persistent store by more: degraded (catching up)
    "timeout_s": 2,  # connect and command timeout
    "catch_up_events": 200_000,  # events the processor keeps for Redis while it is away
}


def _url(value: Any) -> str | None:
    parts = urlsplit(str(value))
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return "must be redis://host:port[/db] or rediss://host:port[/db]"
    return None


def _masked_url(value: Any) -> str:
    """The URL without a password written into it (for messages)."""
    parts = urlsplit(str(value))
    if parts.password is None:
        return str(value)
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + parts.netloc.rsplit("@", 1)[1]).geturl()


def _existing_file(value: Any) -> str | None:
    return None if Path(str(value)).is_file() else "no such file"


def problems(settings: Any) -> list[str]:
    """One line per bad key, only when `stores` names redis."""
    stores = list(settings.get("stores") or ())
    if NAME not in stores:
        return []
    if not [store for store in stores if store != NAME]:
        return [
            "STORES: redis keeps only the newest window; list a persistent store too"
            ' (e.g. ["sqlite", "redis"])'
        ]
    url = settings.get("redis.url") or ""
    checks = [
        (
            f"REDIS.URL: {_url(url)} (got {_masked_url(url)!r}; set APPLIANCE_REDIS__URL)"
            if url and _url(url)
            else require(settings, "redis.url")
        ),
        require(settings, "redis.tls", is_bool),
        require(settings, "redis.cluster", is_bool),
        require(settings, "redis.key_prefix"),
        require(settings, "redis.window_minutes", is_int(1, 24 * 60)),
        require(settings, "redis.minute_ttl_hours", is_int(1, 24 * 31)),
        require(settings, "redis.hour_ttl_days", is_int(1, 3660)),
        require(settings, "redis.max_lag_s", is_int(1, 3600)),
        require(settings, "redis.timeout_s", is_int(1, 120)),
        require(settings, "redis.catch_up_events", is_int(0, 100_000_000)),
    ]
    window = settings.get("redis.window_minutes")
    minute_ttl = settings.get("redis.minute_ttl_hours")
    if isinstance(window, int) and isinstance(minute_ttl, int) and window > minute_ttl * 60:
        checks.append(
            f"REDIS.WINDOW_MINUTES: must not exceed REDIS.MINUTE_TTL_HOURS x 60 (got {window};"
            " minute buckets older than their TTL are gone)"
        )
    if settings.get("redis.tls_ca_file"):
        checks.append(require(settings, "redis.tls_ca_file", _existing_file))
    if _production() and not (settings.get("redis.password") or urlsplit(str(url)).password):
        checks.append(
            "REDIS.PASSWORD: missing (required in production: set APPLIANCE_REDIS__PASSWORD"
            " or put it in .secrets.toml)"
        )
    return [problem for problem in checks if problem]


def _production() -> bool:
    return os.environ.get("APPLIANCE_ENV", "embedded") == "production"


@dataclass(frozen=True)
class RedisSettings:
    url: str = field(repr=False)  # may hold a password
    password: str = field(repr=False)
    username: str
    tls: bool
    tls_ca_file: str
    cluster: bool
    key_prefix: str
    window_s: int
    minute_ttl_s: int
    hour_ttl_s: int
    max_lag_s: int
    timeout_s: int
    catch_up_events: int

    @classmethod
    def from_settings(cls, settings: Any) -> RedisSettings:
        section = settings.redis
        return cls(
            url=str(section.url),
            password=str(section.get("password") or ""),
            username=str(section.get("username") or ""),
            tls=bool(section.tls),
            tls_ca_file=str(section.get("tls_ca_file") or ""),
            cluster=bool(section.cluster),
            key_prefix=str(section.key_prefix),
            window_s=int(section.window_minutes) * 60,
            minute_ttl_s=int(section.minute_ttl_hours) * 3600,
            hour_ttl_s=int(section.hour_ttl_days) * 86400,
            max_lag_s=int(section.max_lag_s),
            timeout_s=int(section.timeout_s),
            catch_up_events=int(section.catch_up_events),
        )

    @property
    def where(self) -> str:
        """host:port for messages (no credentials)."""
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"

    @property
    def uses_tls(self) -> bool:
        return self.tls or urlsplit(self.url).scheme == "rediss"

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's `from_url`, for a single node or a cluster."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": self.timeout_s,
            "socket_timeout": self.timeout_s,
            # One immediate reconnect (a pooled connection to a restarted Redis), no back-off:
            # a Redis that is away must fail fast, the feed and the query layer fall back.
            "retry": Retry(NoBackoff(), 1),
        }
        if self.password:
            options["password"] = self.password
        if self.username:
            options["username"] = self.username
        if self.uses_tls and self.tls_ca_file:
            options["ssl_ca_certs"] = self.tls_ca_file
        return options

    @property
    def connect_url(self) -> str:
        """The URL with the rediss:// scheme when TLS is asked for (redis-py reads it there)."""
        parts = urlsplit(self.url)
        return parts._replace(scheme="rediss").geturl() if self.uses_tls else self.url
