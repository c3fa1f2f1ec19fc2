"""The same load on a three-node Redis Cluster (started on loopback by the test) gives the
same counts, each site's keys stay in one slot, and redelivery still counts once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis
from redis.crc import key_slot

from appliance.core.aggregation import MINUTE, aggregate
from appliance.core.query import QueryLayer
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from tests.redis_servers import RedisClusterNodes, unique_prefix
from tests.test_redis_store import M0, check_reads, known_load, load, make_store
from tests.test_redis_store import offsets_batch as batch


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster")).start()
    yield nodes
    nodes.stop()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteAnalyticsStore]:
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    yield store
    store.close()


def test_the_same_load_gives_the_same_counts_on_a_cluster(
    cluster: RedisClusterNodes, sqlite: SqliteAnalyticsStore
) -> None:
    prefix = unique_prefix()
    events = (
        known_load()
        + [
            msgspec.structs.replace(event, site_id=site, event_id=f"{site}-{i}")
            for site in range(3, 9)  # more sites, so the slots land on every node
            for i, event in enumerate(known_load()[:3])
        ]
    )

    async def scenario() -> None:
        store = make_store(cluster.url, prefix, cluster=True)
        await store.open()
        try:
            delivery = await load([sqlite, store], events)
            await check_reads(store, sqlite)
            for site in range(3, 9):
                assert (await store.kpis(site, M0, M0 + MINUTE)).pageviews == 3
            # Redelivered: every site's guard says it holds it, nothing moves.
            again = aggregate(delivery.events, delivery.positions, delivery.offsets)
            assert await store.write_batch(again) is False
            await check_reads(store, sqlite)
            assert await store.applied_positions("memory") == {
                delivery.positions[0].partition: delivery.positions[0].last
            }
            query = QueryLayer([sqlite, store])
            assert await query.realtime_status() == "live"
        finally:
            await store.close()

    asyncio.run(scenario())
    nodes_with_keys = set()
    for node in cluster.nodes:
        client = redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True)
        try:
            keys = list(client.scan_iter(f"{prefix}:*"))
        finally:
            client.close()
        if keys:
            nodes_with_keys.add(node.port)
        for site in range(1, 9):
            slots = {key_slot(k.encode()) for k in keys if f"{{site:{site}}}" in k}
            assert len(slots) <= 1  # a site's keys: one slot
    assert len(nodes_with_keys) == 3


def test_an_overlapping_redelivery_counts_once_on_a_cluster(cluster: RedisClusterNodes) -> None:
    async def scenario() -> None:
        store = make_store(cluster.url, unique_prefix(), cluster=True)
        await store.open()
        try:
            assert await store.write_batch(batch(0, 9)) is True
            assert await store.write_batch(batch(5, 14)) is True
            assert await store.write_batch(batch(0, 14)) is False
            assert (await store.kpis(1, M0, M0 + 2 * MINUTE)).pageviews == 15
            assert await store.current_visitors(1, M0 + MINUTE, 300) == 15
        finally:
            await store.close()

    asyncio.run(scenario())
