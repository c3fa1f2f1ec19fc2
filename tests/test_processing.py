"""Aggregation, the processor's retry and exactly-once writes, and the visitor id."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from appliance.core.aggregation import HOUR, MINUTE, Batch, aggregate
from appliance.core.event import Event
from appliance.core.processor import Processor
from appliance.core.transport import Offset, PartitionOffsets, Position, unapplied_part
from plugins.enrich_visitor_id.visitor import SaltRing, utc_day, visitor_id
from plugins.store_sqlite.accounts import SqliteAccountStore
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.transport_memory.transport import MemoryTransport

T0 = 1_790_000_040.0  # a fixed instant, minute-aligned


def make_event(
    i: int, ts: float = T0, path: str = "/", name: str = "pageview", site: int = 1
) -> Event:
    return Event(
        event_id=f"e{i}",
        ts=ts,
        site_id=site,
        name=name,
        path=path,
        visitor_id=f"v{i % 3}",
        session_id=f"s{i % 2}",
    )


def test_aggregate_buckets_by_site_path_minute_and_hour() -> None:
    events = [
        make_event(0),
        make_event(1, ts=T0 + 30),
        make_event(2, ts=T0 + 61, path="/b"),
        make_event(3, ts=T0 + 5, name="Signup"),
        make_event(4, site=2),
    ]
    batch = aggregate(events, [])
    first_minute = batch.minute[(1, int(T0), "/")]
    assert (first_minute.pageviews, first_minute.events) == (2, 1)
    assert first_minute.visitors == {"v0", "v1"}
    assert batch.minute[(1, int(T0) + MINUTE, "/b")].pageviews == 1
    hour = int(T0 // HOUR * HOUR)
    assert batch.hour[(1, hour, "/")].pageviews == 2
    assert batch.hour[(1, hour, "/b")].pageviews == 1
    assert batch.custom_events == {(1, hour, "Signup"): 1}
    assert batch.minute[(2, int(T0), "/")].pageviews == 1


@pytest.fixture
def store(tmp_path: Path) -> SqliteAnalyticsStore:
    opened = SqliteAnalyticsStore(tmp_path / "analytics.db")
    opened.open()
    yield opened
    opened.close()


def batch_of(count: int, first_offset: int, partition: str = "p") -> Batch:
    events = [make_event(first_offset + i) for i in range(count)]
    offsets = [Offset("memory", partition, first_offset + i) for i in range(count)]
    last = first_offset + count - 1
    return aggregate(events, [Position("memory", partition, first_offset, last)], offsets)


def test_store_applies_a_redelivered_batch_once(store: SqliteAnalyticsStore) -> None:
    batch = batch_of(10, 0)
    assert store.write_batch(batch) is True
    assert store.write_batch(batch) is False
    assert store.write_batch(batch_of(5, 10)) is True
    kpis = store.kpis(1, int(T0), int(T0) + 60)
    assert kpis.pageviews == 15
    with store.reader.locked() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 15


def test_store_applies_a_partially_applied_range_once(store: SqliteAnalyticsStore) -> None:
    # A redelivery cut on other boundaries: offsets 5..9 are held, 10..14 are new.
    store.write_batch(batch_of(10, 0))
    assert store.write_batch(batch_of(10, 5)) is True
    assert store.write_batch(batch_of(3, 12)) is False
    assert store.kpis(1, int(T0), int(T0) + 60).pageviews == 15
    with store.reader.locked() as conn:
        ids = [row[0] for row in conn.execute("SELECT event_id FROM events")]
    assert sorted(ids) == sorted(f"e{i}" for i in range(15))
    assert store.applied_positions("memory") == {"p": 14}


def test_partition_offsets_read_as_the_offsets_they_stand_for() -> None:
    partitions, numbers = [0, 0, 1, 0, 1], [7, 8, 3, 9, 4]
    compact = PartitionOffsets("t", partitions, numbers)
    listed = [Offset("t", str(p), n) for p, n in zip(partitions, numbers, strict=True)]
    assert len(compact) == 5 and list(compact) == listed and compact == listed
    assert compact[2] == Offset("t", "1", 3) and compact[-1] == listed[-1]
    assert compact[1:4] == listed[1:4]  # a slice is a list (the SQLite writer pipes slices)
    events = [make_event(i) for i in range(5)]
    positions = [Position("t", "0", 7, 9), Position("t", "1", 3, 4)]
    held = {("t", "0"): 8, ("t", "1"): 2}
    assert unapplied_part(events, positions, compact, held) == unapplied_part(
        events, positions, listed, held
    )


def test_each_store_gets_only_what_it_lacks(tmp_path: Path) -> None:
    """Two stores that applied different parts of a range: each ends with it exactly once."""
    ahead = SqliteAnalyticsStore(tmp_path / "ahead.db")
    behind = SqliteAnalyticsStore(tmp_path / "behind.db")
    for opened in (ahead, behind):
        opened.open()

    async def scenario() -> Processor:
        transport = MemoryTransport(capacity=100)
        ahead.write_batch(batch_of(7, 0, partition=transport.partition))  # as if before a crash
        processor = Processor(transport, [ahead, behind], flush_interval_s=0.01, max_batch_events=4)
        await processor.subscribe()
        task = asyncio.create_task(processor.run())
        transport.publish([make_event(i) for i in range(10)])
        await transport.stop()
        processor.stop()
        await asyncio.wait_for(task, 10)
        return processor

    processor = asyncio.run(scenario())
    assert processor.stats.already_held == 7  # 0..6 were not sent to `ahead` again
    for opened in (ahead, behind):
        assert opened.kpis(1, int(T0), int(T0) + 60).pageviews == 10
        with opened.reader.locked() as conn:
            assert conn.execute("SELECT count(DISTINCT event_id) FROM events").fetchone()[0] == 10
        opened.close()


class FlakyStore:
    """Wraps a real store and fails its first `failures` writes."""

    name = "flaky"
    role = "sink"

    def __init__(self, inner: SqliteAnalyticsStore, failures: int) -> None:
        self.inner, self.failures, self.attempts = inner, failures, 0

    def write_batch(self, batch: Batch) -> bool:
        self.attempts += 1
        self.inner.write_batch(batch)  # lands, then the "ack" is lost: the retry must not double
        if self.attempts <= self.failures:
            raise ConnectionError("simulated lost acknowledgement")
        return True


def test_processor_retries_the_same_batch_and_counts_once(store: SqliteAnalyticsStore) -> None:
    async def scenario() -> None:
        transport = MemoryTransport(capacity=100)
        flaky = FlakyStore(store, failures=2)
        processor = Processor(
            transport, [flaky], flush_interval_s=0.01, max_batch_events=100, retry_backoff_s=0.01
        )
        task = asyncio.create_task(processor.run())
        transport.publish([make_event(i) for i in range(7)])
        for _ in range(200):
            if processor.stats.events == 7:
                break
            await asyncio.sleep(0.01)
        processor.stop()
        await task
        assert flaky.attempts == 3
        assert processor.stats.store_errors == 2
        assert transport.pending() == 0

    asyncio.run(scenario())
    assert store.kpis(1, int(T0), int(T0) + 60).pageviews == 7


def test_processor_drains_everything_on_stop(store: SqliteAnalyticsStore) -> None:
    async def scenario() -> None:
        transport = MemoryTransport(capacity=10_000)
        processor = Processor(transport, [store], flush_interval_s=30, max_batch_events=100)
        task = asyncio.create_task(processor.run())
        transport.publish([make_event(0)])
        await asyncio.sleep(0.05)  # first flush happens at once; the next would wait 30 s
        transport.publish([make_event(i) for i in range(1, 1000)])
        await transport.stop()
        processor.stop()
        await asyncio.wait_for(task, 10)
        assert transport.pending() == 0

    asyncio.run(scenario())
    assert store.kpis(1, int(T0), int(T0) + 60).pageviews == 1000


def test_memory_transport_is_bounded_and_numbers_offsets() -> None:
    async def scenario() -> None:
        transport = MemoryTransport(capacity=5)
        transport.publish([make_event(i) for i in range(3)])
        first = await transport.consume(2, 0)
        assert [p.first for p in first.positions] == [0] and first.positions[0].last == 1
        transport.publish([make_event(9), make_event(10)])
        from appliance.core.transport import TransportFull

        with pytest.raises(TransportFull):  # 3 queued + 2 in flight + 1 > 5
            transport.publish([make_event(11)])
        await transport.commit(first)
        transport.publish([make_event(11)])
        second = await transport.consume(10, 0)
        assert (second.positions[0].first, second.positions[0].last) == (2, 5)

    asyncio.run(scenario())


def test_visitor_id_changes_with_the_daily_salt_and_hides_the_ip(tmp_path: Path) -> None:
    accounts = SqliteAccountStore(tmp_path / "accounts.db")
    accounts.open()
    ring = SaltRing(accounts)
    day_one, day_two = T0, T0 + 86400
    asyncio.run(ring.load(now=day_one))
    ip, agent = "198.51.100.23", "Mozilla/5.0"
    today = visitor_id(ring.salt(day_one), 1, ip, agent)
    assert today == visitor_id(ring.salt(day_one + 60), 1, ip, agent)  # stable within the day
    assert today != visitor_id(ring.salt(day_one), 2, ip, agent)  # per site
    assert today != visitor_id(ring.salt(day_one), 1, "198.51.100.24", agent)
    tomorrow = visitor_id(ring.salt(day_two), 1, ip, agent)
    assert tomorrow != today  # the salt rotated at midnight UTC
    assert ip not in today and "198" not in today
    # Without the salt, hashing every candidate IP finds nothing.
    candidates = {f"198.51.100.{n}" for n in range(256)}
    unsalted = {
        hashlib.blake2b(f"1\x00{c}\x00{agent}".encode(), digest_size=12).hexdigest()
        for c in candidates
    }
    assert today not in unsalted
    # Salts are persisted (restarts agree) and old ones deleted (old ids can't be recomputed).
    assert accounts.salt_for_day(utc_day(day_one), b"other") == ring.salt(day_one)
    asyncio.run(ring.load(now=day_one + 3 * 86400))
    with accounts.db.locked() as conn:
        days = [row[0] for row in conn.execute("SELECT day FROM visitor_salts ORDER BY day")]
    assert utc_day(day_one) not in days and len(days) == 2
    accounts.close()
