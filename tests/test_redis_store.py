"""The Redis real-time store against a real Redis: buckets, TTLs, HyperLogLogs, top pages,
exactly-once writes, and the query layer's stitching at the split."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from appliance.core.aggregation import HOUR, MINUTE, aggregate, bucket_start
from appliance.core.event import Event
from appliance.core.periods import TimeRange
from appliance.core.processor import Processor
from appliance.core.query import QueryLayer
from appliance.core.settings import load_settings
from appliance.core.transport import Delivery, Offset, PartitionOffsets, Position
from plugins.store_redis.config import RedisSettings, problems
from plugins.store_redis.store import RedisStore
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.transport_memory.transport import MemoryTransport
from tests.redis_servers import free_port, require_shared_redis, unique_prefix

NOW = time.time()
M0 = bucket_start(NOW, MINUTE) - 10 * MINUTE  # ten minutes ago: inside the real-time window


def make_store(url: str, prefix: str, **section: Any) -> RedisStore:
    settings = load_settings(
        stores=["sqlite", "redis"], redis={"url": url, "key_prefix": prefix, **section}
    )
    from plugins.store_redis.config import DEFAULTS

    for key, value in DEFAULTS.items():
        if settings.get(f"redis.{key}") is None:
            settings.set(f"redis.{key}", value)
    return RedisStore(RedisSettings.from_settings(settings))


def ev(n: int, ts: float, site: int = 1, path: str = "/", **fields: Any) -> Event:
    return Event(
        event_id=f"e{n}-{ts}",
        ts=ts,
        site_id=site,
        name=fields.pop("name", "pageview"),
        path=path,
        visitor_id=fields.pop("visitor", f"v{n}"),
        session_id=fields.pop("session", f"s{n}"),
        **fields,
    )


def known_load() -> list[Event]:
    """Two sites over three minutes, plus a crowd of 300 distinct visitors on site 2."""
    google = {"referrer_source": "Google"}
    events = [
        ev(1, M0 + 1, visitor="a", session="sa", **google),
        ev(2, M0 + 2, visitor="b", session="sb"),
        ev(3, M0 + 3, visitor="a", session="sa", **google),
        ev(4, M0 + 4, path="/pricing", visitor="b", session="sb"),
        ev(5, M0 + 5, path="/pricing", visitor="c", session="sc"),
        ev(6, M0 + 6, path="/pricing", visitor="c", session="sc", name="Signup"),
        ev(7, M0 + 61, visitor="d", session="sd"),
        ev(8, M0 + 62, path="/docs", visitor="a", session="sa2", **google),
        ev(9, M0 + 63, path="/docs", visitor="a", session="sa2"),
        ev(10, M0 + 64, path="/docs", visitor="e", session="se"),
        ev(11, M0 + 65, path="/docs", visitor="f", session="sf"),
        ev(12, NOW - 30, path="/live", visitor="g", session="sg"),
        ev(13, NOW - 20, path="/live", visitor="h", session="sh", name="Outbound"),
        ev(14, M0 + 2, site=2, visitor="x", session="sx"),
        ev(15, M0 + 3, site=2, visitor="y", session="sy"),
    ]
    crowd = [ev(100 + i, M0 + 121, site=2, path="/crowd") for i in range(300)]
    return events + crowd


async def load(stores: list[Any], events: list[Event]) -> Delivery:
    """One processor flush of `events` into `stores`, through the in-memory transport."""
    transport = MemoryTransport(capacity=100_000)
    processor = Processor(transport, stores, flush_interval_s=0.01, max_batch_events=100_000)
    transport.publish(events)
    delivery = await transport.consume(len(events), 0)
    await processor.flush(delivery)
    return delivery


@pytest.fixture
def sqlite(tmp_path: Path) -> SqliteAnalyticsStore:
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    yield store
    store.close()


@pytest.fixture
def url() -> str:
    return require_shared_redis()


@pytest.fixture
def raw(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client
    client.close()


def test_known_load_gives_buckets_ttls_unique_visitors_and_top_pages(
    url: str, raw: redis.Redis, sqlite: SqliteAnalyticsStore
) -> None:
    prefix = unique_prefix()
    events = known_load()

    async def scenario() -> None:
        store = make_store(url, prefix)
        await store.open()
        try:
            await load([sqlite, store], events)
            await check_reads(store, sqlite)
            await store.delete_site(3)  # a site without data: nothing happens
        finally:
            await store.close()

    asyncio.run(scenario())
    site = f"{prefix}:{{site:1}}"
    minute = raw.hgetall(f"{site}:m:{M0}")
    assert minute == {"pageviews": "5", "events": "1", "e:Signup": "1"}
    assert raw.hgetall(f"{site}:m:{M0 + 60}") == {"pageviews": "5"}
    expected_hours = Counter(bucket_start(e.ts, HOUR) for e in events if e.site_id == 1)
    hour_views = Counter(
        bucket_start(e.ts, HOUR) for e in events if e.site_id == 1 and e.is_pageview
    )
    for hour, count in expected_hours.items():
        counts = raw.hgetall(f"{site}:h:{hour}")
        assert int(counts.get("pageviews", 0)) == hour_views[hour]
        assert int(counts.get("pageviews", 0)) + int(counts.get("events", 0)) == count
    # TTLs: minute data 24 h after its minute, hour data 30 days after its hour.
    now = time.time()
    assert abs(raw.ttl(f"{site}:m:{M0}") - (M0 + 60 + 86400 - now)) < 3
    assert abs(raw.ttl(f"{site}:m:{M0}:visitors") - (M0 + 60 + 86400 - now)) < 3
    hour = bucket_start(M0, HOUR)
    assert abs(raw.ttl(f"{site}:h:{hour}:paths") - (hour + 3600 + 30 * 86400 - now)) < 3
    # HyperLogLogs: exact for small sets, within HLL's error for the crowd.
    assert raw.pfcount(f"{site}:m:{M0}:visitors") == 3
    assert raw.pfcount(f"{site}:m:{M0}:sessions") == 3
    crowd = raw.pfcount(f"{prefix}:{{site:2}}:m:{M0 + 120}:visitors")
    assert abs(crowd - 300) <= 9  # 3 %; HLL's standard error is 0.81 %
    assert raw.zscore(f"{site}:m:{M0}:paths", "/pricing") == 2
    # One site, one cluster slot.
    slots = {key_slot(key.encode()) for key in raw.scan_iter(f"{site}:*")}
    assert len(slots) == 1
    # A deleted site's keys go; the others stay.
    other = make_store(url, prefix)

    async def delete() -> None:
        await other.open()
        try:
            await other.delete_site(2)
        finally:
            await other.close()

    asyncio.run(delete())
    assert not list(raw.scan_iter(f"{prefix}:{{site:2}}:*"))
    assert raw.hgetall(f"{site}:m:{M0}")


async def check_reads(store: RedisStore, sqlite: SqliteAnalyticsStore) -> None:
    start, end = M0, bucket_start(NOW, MINUTE) + MINUTE
    pages = await store.top_pages(1, start, end, 3)
    assert [(p.path, p.pageviews, p.visitors) for p in pages] == [
        ("/", 4, 3),
        ("/docs", 4, 3),
        ("/pricing", 2, 2),
    ]
    assert pages == sqlite.top_pages(1, start, end, 3)
    counts = await store.kpis(1, start, end)
    exact = sqlite.kpis(1, start, end)
    assert (counts.pageviews, counts.visitors, counts.sessions, counts.events) == (
        exact.pageviews,
        exact.visitors,
        exact.sessions,
        exact.events,
    )
    assert (counts.pageviews, counts.visitors, counts.events) == (11, 8, 2)
    buckets = list(range(start, end, MINUTE))
    assert await store.timeseries(1, buckets, end) == sqlite.timeseries(1, buckets, end)
    crowd = await store.timeseries(2, buckets, end)
    exact_crowd = sqlite.timeseries(2, buckets, end)
    assert [(p.t, p.pageviews) for p in crowd] == [(p.t, p.pageviews) for p in exact_crowd]
    for estimate, truth in zip(crowd, exact_crowd, strict=True):
        assert abs(estimate.visitors - truth.visitors) <= 0.03 * truth.visitors
    assert await store.current_visitors(1, NOW, 300) == 2  # g and h
    referrers = await store.top_referrers(1, start, end, 5)
    assert [(r.value, r.pageviews) for r in referrers] == [("Direct / None", 8), ("Google", 3)]
    assert await store.latest_event_time(1) == pytest.approx(NOW - 20)
    # Through the query layer: the realtime period comes from Redis, equal to SQLite's.
    query = QueryLayer([sqlite, store], clock=lambda: NOW)  # "now" as when the load was made
    assert await query.realtime_status() == "live"
    # Redis holds every minute from the one after its first batch's oldest event on.
    assert (await store.coverage()).since == M0 + MINUTE
    recent = TimeRange(M0 + MINUTE, end, MINUTE)
    assert await query.kpis(1, recent) == sqlite.kpis(1, recent.start, recent.end)
    assert await query.top_pages(1, recent, 5) == sqlite.top_pages(1, recent.start, recent.end, 5)
    assert await query.current_visitors(1, NOW) == 2


def offsets_batch(first: int, last: int, partition: str = "p") -> Any:
    events = [ev(i, M0 + 1 + i % 50) for i in range(first, last + 1)]
    offsets = [Offset("memory", partition, i) for i in range(first, last + 1)]
    return aggregate(events, [Position("memory", partition, first, last)], offsets)


def test_a_redelivered_batch_changes_nothing_and_an_overlap_counts_once(url: str) -> None:
    prefix = unique_prefix()

    async def scenario() -> None:
        store = make_store(url, prefix)
        await store.open()
        try:
            assert await store.write_batch(offsets_batch(0, 9)) is True
            assert await store.write_batch(offsets_batch(0, 9)) is False
            assert (await store.kpis(1, M0, M0 + 120)).pageviews == 10
            # A broker redelivering around what was applied: only 10..14 are new.
            assert await store.write_batch(offsets_batch(5, 14)) is True
            assert (await store.kpis(1, M0, M0 + 120)).pageviews == 15
            assert (await store.kpis(1, M0, M0 + 120)).visitors == 15
            assert await store.applied_positions("memory") == {"p": 14}
        finally:
            await store.close()
        again = make_store(url, prefix)  # a restarted processor, same Redis
        await again.open()
        try:
            assert await again.write_batch(offsets_batch(0, 14)) is False
            assert (await again.kpis(1, M0, M0 + 120)).pageviews == 15
        finally:
            await again.close()

    asyncio.run(scenario())


def two_site_delivery(first: int, last: int) -> Any:
    """Offsets first..last of partitions 0 and 1, interleaved as a Kafka fetch returns them,
    each event's site by its offset: per-event offsets as the Kafka consumer keeps them."""
    partitions, numbers, events = [], [], []
    for number in range(first, last + 1):
        for partition in (0, 1):
            partitions.append(partition)
            numbers.append(number)
            site = 1 + (number + partition) % 2
            events.append(ev(100 * partition + number, M0 + 1 + number, site=site))
    offsets = PartitionOffsets("kafka", partitions, numbers)
    positions = [Position("kafka", str(p), first, last) for p in (0, 1)]
    return aggregate(events, positions, offsets)


def test_a_partly_held_redelivery_of_several_sites_counts_once(url: str) -> None:
    """Each site's guard re-folds exactly what that site lacks from per-event offsets."""

    async def scenario() -> None:
        store = make_store(url, unique_prefix())
        await store.open()
        try:
            assert await store.write_batch(two_site_delivery(0, 9)) is True
            assert await store.write_batch(two_site_delivery(5, 14)) is True  # 10..14 new
            assert await store.write_batch(two_site_delivery(0, 14)) is False
            # Partition 0 again from 10 with a held event of site 1 and a new one of site 2:
            # site 1 lacks no event of it, but its guard still moves past it.
            events = [ev(12, M0 + 13, site=1), ev(999, M0 + 30, site=2)]
            offsets = PartitionOffsets("kafka", [0, 0], [12, 16])
            again = aggregate(events, [Position("kafka", "0", 10, 16)], offsets)
            assert await store.write_batch(again) is True
            assert await store.write_batch(again) is False
            for site, pageviews in ((1, 15), (2, 16)):
                kpis = await store.kpis(site, M0, M0 + 120)
                assert (kpis.pageviews, kpis.visitors) == (pageviews, pageviews)
            assert await store.applied_positions("kafka") == {"0": 16, "1": 14}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_the_query_layer_answers_each_bucket_from_one_store(
    url: str, sqlite: SqliteAnalyticsStore
) -> None:
    """Make the stores disagree on purpose to see which one answered each bucket."""
    now_minute = bucket_start(NOW, MINUTE)
    old, recent = now_minute - 40 * MINUTE, now_minute - 5 * MINUTE
    sqlite.write_batch(
        aggregate(
            [ev(1, old + 1), ev(2, recent + 1)],
            [Position("memory", "a", 0, 1)],
            [Offset("memory", "a", 0), Offset("memory", "a", 1)],
        )
    )
    redis_only = [ev(3, old - 299), ev(4, old + 1)] + [ev(5 + i, recent + 1) for i in range(3)]
    positions = [Position("memory", "b", 0, len(redis_only) - 1)]
    offsets = [Offset("memory", "b", i) for i in range(len(redis_only))]

    async def scenario() -> None:
        store = make_store(url, unique_prefix())
        await store.open()
        try:
            await store.write_batch(aggregate(redis_only, positions, offsets))
            query = QueryLayer([sqlite, store], clock=lambda: NOW)
            end = now_minute + MINUTE
            hour = TimeRange(end - 60 * MINUTE, end, MINUTE)
            series = {p.t: p.pageviews for p in await query.timeseries(1, hour)}
            assert series[old - 300] == 0  # before the split: SQLite's (Redis has 1)
            assert series[old] == 1  # before the split: SQLite's, not added to Redis's 1
            assert series[recent] == 3  # after the split: Redis's
            assert sum(series.values()) == 4
            # Totals over a range crossing the split: one bucket, the persistent store's.
            assert (await query.kpis(1, hour)).pageviews == 2
            realtime = TimeRange(end - 30 * MINUTE, end, MINUTE)
            assert (await query.kpis(1, realtime)).pageviews == 3
            assert [p.pageviews for p in await query.top_pages(1, realtime, 5)] == [3]
            # Filters need raw events: the persistent store answers.
            from appliance.core.filters import Filter

            browser = (Filter("browser", "!=", "Lynx"),)
            assert (await query.kpis(1, realtime, browser)).pageviews == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_redis_that_does_not_answer_is_degraded_and_sqlite_answers(
    sqlite: SqliteAnalyticsStore, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite.write_batch(offsets_batch(0, 4))

    async def scenario() -> None:
        store = make_store(f"redis://127.0.0.1:{free_port()}/0", unique_prefix())
        await store.open()  # not fatal: it may come back
        try:
            query = QueryLayer([sqlite, store])
            assert await query.realtime_status() == "degraded"
            assert (await query.kpis(1, TimeRange(M0, M0 + 120, MINUTE))).pageviews == 5
            assert await query.current_visitors(1, M0 + 60) == 5
            assert await query.latest_event_time(1) is not None
        finally:
            await store.close()

    asyncio.run(scenario())
    assert "REDIS.URL: cannot reach Redis at 127.0.0.1:" in caplog.text


def test_embedded_profile_loads_the_plugin_and_never_the_client(tmp_path: Path) -> None:
    code = (
        "import sys; from appliance.core.runtime import Appliance;"
        f" a = Appliance.create(data_dir={str(tmp_path)!r});"
        " print(sorted(p.name for p in a.plugins if p.name == 'store_redis'),"
        " [s.name for s in a.stores], 'redis' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split("\n")[-2] == "['store_redis'] ['sqlite'] False"


@pytest.mark.parametrize(
    ("section", "env", "problem"),
    [
        ({}, "embedded", "REDIS.URL: missing"),
        ({"url": "http://x"}, "embedded", "REDIS.URL: must be redis://host:port[/db]"),
        ({"url": "redis://:hunter2@h:1/0", "window_minutes": 0}, "embedded", "0"),
        (
            {"url": "redis://h:1/0", "window_minutes": 120, "minute_ttl_hours": 1},
            "embedded",
            "REDIS.WINDOW_MINUTES: must not exceed",
        ),
        ({"url": "rediss://h:1/0"}, "production", "REDIS.PASSWORD: missing"),
    ],
)
def test_settings_problems_name_the_key(
    monkeypatch: pytest.MonkeyPatch, section: dict[str, Any], env: str, problem: str
) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", env)
    from plugins.store_redis.config import DEFAULTS

    settings = load_settings(stores=["sqlite", "redis"], redis={**DEFAULTS, **section})
    found = problems(settings)
    assert found and problem in found[0]
    assert all("hunter2" not in line for line in found)


def test_settings_need_a_persistent_store_and_accept_a_production_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugins.store_redis.config import DEFAULTS

    only_redis = load_settings(stores=["redis"], redis={**DEFAULTS, "url": "redis://h:1"})
    assert problems(only_redis)[0].startswith("STORES: redis keeps only the newest window")
    monkeypatch.setenv("APPLIANCE_ENV", "production")
    monkeypatch.setenv("APPLIANCE_REDIS__PASSWORD", "s3cret")
    settings = load_settings(stores=["sqlite", "redis"])
    for key, value in DEFAULTS.items():
        if settings.get(f"redis.{key}") in (None, ""):
            settings.set(f"redis.{key}", value)
    settings.set("redis.url", "rediss://cache.example:6380/0")
    assert problems(settings) == []
    options = RedisSettings.from_settings(settings)
    assert options.uses_tls and options.client_options()["password"] == "s3cret"
    assert "s3cret" not in repr(options)
