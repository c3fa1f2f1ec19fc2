"""Token buckets on /api/events: per address and per site, 429 with Retry-After; shared by
every instance through Redis when the Redis plugin is in use, per instance otherwise."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from appliance.app import create_app
from appliance.core.ratelimit import TokenBuckets
from appliance.core.runtime import Appliance
from plugins.store_redis import ratelimit as redis_ratelimit
from plugins.store_redis.config import RedisSettings
from plugins.store_redis.ratelimit import RedisRateLimiter
from tests.conftest import Browser, event, make_appliance, make_client, wait_for
from tests.redis_servers import RedisServer, free_port, require_shared_redis, unique_prefix
from tests.test_ingest_api import kpis

pytestmark = pytest.mark.security


class FakeClock:
    """Time that moves only when the test says (the buckets' arithmetic, not the machine)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_caps_at_burst() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == 0.5  # empty: one token is half a second away
    assert buckets.take("b") == 0  # other keys are unaffected
    clock.now += 10
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]  # refilled to burst, not 20
    assert buckets.take("a") > 0
    assert buckets.take("a", cost=5) == 2.5


def test_key_count_is_bounded() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=100, clock=FakeClock())
    for n in range(1000):
        buckets.take(n)
    assert len(buckets._buckets) == 100


def test_per_address_and_per_site_limits(tmp_path: Path) -> None:
    limits = {
        "rate_limit_per_ip": 1,
        "burst_per_ip": 5,
        "rate_limit_per_site": 1,
        "burst_per_site": 8,
    }
    appliance = make_appliance(
        tmp_path / "data", ingest=limits | {"trusted_proxies": ["testclient"]}
    )
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        browser.add_domain("other.org")

        def post(domain: str, ip: str, count: int = 1) -> int:
            body = [event("/", domain=domain)] * count
            return client.post(
                "/api/events", json=body, headers={"x-forwarded-for": ip}
            ).status_code

        assert [post("example.com", "198.51.100.1") for _ in range(6)] == [202] * 5 + [429]
        refused = client.post(
            "/api/events", json=event("/"), headers={"x-forwarded-for": "198.51.100.1"}
        )
        assert refused.headers["retry-after"] == "1" and "address" in refused.json()["error"]
        # Another address still gets through, until the site's own bucket (8) runs dry.
        assert post("example.com", "198.51.100.2", 3) == 202
        assert post("example.com", "198.51.100.3") == 429
        assert (
            "site"
            in client.post(
                "/api/events", json=event("/"), headers={"x-forwarded-for": "198.51.100.4"}
            ).json()["error"]
        )
        # Other sites are unaffected.
        assert post("other.org", "198.51.100.5") == 202
        wait_for(lambda: appliance.processor.stats.events == 9)
        assert appliance.ingest.stats.rate_limited >= 3
        # Nothing of a refused request was stored: 5 + 3 + 1 accepted events.
        with appliance.stores[0].reader.locked() as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 9


def test_limits_are_off_or_generous_by_default(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data")
    assert appliance.ingest.per_ip is None
    assert isinstance(appliance.ingest.per_site, TokenBuckets)  # no Redis: this process's own
    assert appliance.ingest.per_site.rate >= 1000


# --- shared through Redis ------------------------------------------------------------------


def redis_appliance(data_dir: Path, url: str, prefix: str, **ingest: Any) -> Appliance:
    return make_appliance(
        data_dir,
        stores=["sqlite", "redis"],
        redis={"url": url, "key_prefix": prefix, "timeout_s": 1},
        ingest={"trusted_proxies": ["testclient"], **ingest},
    )


def post_from(client: TestClient, ip: str, count: int = 1) -> int:
    body = [event("/", domain="example.com")] * count
    return client.post("/api/events", json=body, headers={"x-forwarded-for": ip}).status_code


def test_instances_sharing_redis_share_the_buckets(tmp_path: Path) -> None:
    url, prefix = require_shared_redis(), unique_prefix()
    limits = {"rate_limit_per_site": 0.01, "burst_per_site": 8}
    one = redis_appliance(tmp_path / "one", url, prefix, **limits)
    two = redis_appliance(tmp_path / "two", url, prefix, **limits)
    with make_client(create_app(one)) as first, make_client(create_app(two)) as second:
        for client in (first, second):
            browser = Browser(client)
            browser.setup_admin()
            browser.add_domain("example.com")  # site 1 in both account stores
        assert isinstance(one.ingest.per_site, RedisRateLimiter)
        assert post_from(first, "198.51.100.1", 5) == 202
        assert post_from(second, "198.51.100.2", 3) == 202  # 8 of the shared burst spent
        refused = second.post("/api/events", json=event("/", domain="example.com"))
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert post_from(first, "198.51.100.3") == 429  # the other instance is out too


def test_addresses_reach_redis_only_as_pseudonyms(tmp_path: Path) -> None:
    url, prefix = require_shared_redis(), unique_prefix()
    appliance = redis_appliance(
        tmp_path / "data", url, prefix, rate_limit_per_ip=0.01, burst_per_ip=3
    )
    ip = "203.0.113.201"
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        assert [post_from(client, ip) for _ in range(4)] == [202, 202, 202, 429]
        assert post_from(client, "203.0.113.202") == 202  # other addresses are unaffected
    keys = redis.Redis.from_url(url).keys(f"{prefix}:ratelimit:address:*")
    assert len(keys) == 2
    pseudonym = appliance.address_pseudonym(ip)
    assert keys and all(ip.encode() not in key for key in keys)
    assert any(pseudonym.encode() in key for key in keys)


def test_a_lease_serves_many_requests_from_memory(tmp_path: Path) -> None:
    url, prefix = require_shared_redis(), unique_prefix()
    limiter = RedisRateLimiter(
        RedisSettings.from_settings(redis_appliance(tmp_path / "data", url, prefix).settings),
        "site",
        rate=1000,
        burst=5000,
    )

    async def spend() -> list[float]:
        waits = [await limiter.acquire("7", 1) for _ in range(50)]
        await limiter.close()
        return waits

    assert asyncio.run(spend()) == [0.0] * 50
    bucket = redis.Redis.from_url(url).hgetall(f"{prefix}:ratelimit:site:{{7}}")
    # One lease of 50 tokens (5 % of a second's refill) paid for all 50 requests.
    assert 4950 <= float(bucket[b"tokens"]) < 4951


def test_without_redis_the_limit_holds_per_instance(tmp_path: Path) -> None:
    appliance = redis_appliance(
        tmp_path / "data", f"redis://127.0.0.1:{free_port()}/0", unique_prefix(),
        rate_limit_per_site=0.01, burst_per_site=4,
    )  # fmt: skip
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        assert [post_from(client, "198.51.100.9") for _ in range(5)] == [202] * 4 + [429]
        wait_for(lambda: kpis(browser)["pageviews"] == 4)  # Redis away: events still land


def test_a_redis_outage_goes_local_and_sharing_resumes_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(redis_ratelimit, "RETRY_REDIS_S", 0.2)  # retry sooner than 5 s
    caplog.set_level(logging.INFO, logger=redis_ratelimit.__name__)
    server = RedisServer(tmp_path / "redis").start()
    prefix = unique_prefix()
    settings = RedisSettings.from_settings(
        redis_appliance(tmp_path / "data", server.url, prefix).settings
    )
    limiter = RedisRateLimiter(settings, "site", rate=1, burst=3)
    bucket = f"{prefix}:ratelimit:site:{{1}}"

    async def scenario() -> list[float]:
        waits = [await limiter.acquire("1", 1)]  # shared: Redis holds the bucket
        assert redis.Redis.from_url(server.url).exists(bucket)
        server.stop()
        waits += [await limiter.acquire("1", 1) for _ in range(4)]  # local: 3 of 4 pass
        server.start()
        await asyncio.sleep(0.3)
        waits.append(await limiter.acquire("1", 1))  # one request probes Redis: back
        await limiter.close()
        return waits

    try:
        waits = asyncio.run(scenario())
    finally:
        server.stop()
    assert [w == 0 for w in waits] == [True, True, True, True, False, True]
    messages = [record.getMessage() for record in caplog.records]
    assert any("rate limits are per instance until it answers" in m for m in messages)
    assert any("rate limits are shared again" in m for m in messages)


def test_concurrent_leases_of_one_key_add_up(tmp_path: Path) -> None:
    """Requests that miss the lease together each lease a slice: none of it may be lost."""
    url, prefix = require_shared_redis(), unique_prefix()
    settings = RedisSettings.from_settings(redis_appliance(tmp_path / "data", url, prefix).settings)
    limiter = RedisRateLimiter(settings, "site", rate=1000, burst=100_000)  # slices of 50
    asked = 0
    lease = limiter._lease

    async def counted_lease(key: str, want: int, need: int) -> tuple[int, float]:
        nonlocal asked
        asked += 1
        return await lease(key, want, need)

    limiter._lease = counted_lease  # type: ignore[method-assign]

    async def spend() -> list[float]:
        waits = list(await asyncio.gather(*(limiter.acquire("9", 1) for _ in range(10))))
        assert asked == 10  # all ten missed at once: ten slices, 500 tokens
        waits += [await limiter.acquire("9", 1) for _ in range(490)]
        await limiter.close()
        return waits

    assert asyncio.run(spend()) == [0.0] * 500
    assert asked == 10  # the 490 left over served the rest from memory
