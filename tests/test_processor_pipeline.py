"""Under a backlog the processor overlaps flushes, one delivery deep, and keeps their order.

The next delivery is read while the persistent stores write the current one, and the
current one's real-time write and commit run while the persistent stores write the next.
A failed write or commit is retried without losing the order or counting anything twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.core import overlap
from appliance.core.aggregation import Batch
from appliance.core.processor import Processor
from appliance.core.transport import Delivery
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.transport_memory.transport import MemoryTransport
from tests.test_processing import T0, make_event

BATCH = 4  # events per delivery; every delivery of the backlog is full
WAIT_S = 5.0


class Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, int], threading.Event] = {}

    def add(self, what: str, first: int) -> None:
        with self.lock:
            self.entries.append((what, first))
            self.seen.setdefault((what, first), threading.Event()).set()

    def wait_for(self, what: str, first: int) -> bool:
        with self.lock:
            event = self.seen.setdefault((what, first), threading.Event())
        return event.wait(WAIT_S)

    def of(self, what: str) -> list[int]:
        return [first for kind, first in self.entries if kind == what]


class Recorded:
    """A real SQLite store that logs its writes; `before` runs first (may block or raise).
    As a persistent store it gives the processor its cue to overlap (see overlap.py)."""

    def __init__(self, inner: SqliteAnalyticsStore, log: Log, name: str, role: str) -> None:
        self.inner, self.log, self.name, self.role = inner, log, name, role
        self.before: dict[int, object] = {}  # first offset -> callable
        self.before_cue: dict[int, object] = {}  # the same, before the cue is given

    def write_batch(self, batch: Batch) -> bool:
        first = batch.positions[0].first
        self.log.add(f"{self.name} starts", first)
        early = self.before_cue.pop(first, None)
        if callable(early):
            early()
        if self.role == "persistent":  # as Postgres does once its Python work is done
            self.log.add(f"{self.name} cued", first)
            overlap.waiting_on_server()
        hook = self.before.pop(first, None)
        if callable(hook):
            hook()
        written = self.inner.write_batch(batch)
        self.log.add(f"{self.name} wrote", first)
        return written

    def applied_positions(self, topic: str) -> dict[str, int]:
        return self.inner.applied_positions(topic)


class RecordedTransport(MemoryTransport):
    def __init__(self, log: Log) -> None:
        super().__init__(capacity=1000)
        self.log = log
        self.failing_commits: set[int] = set()
        self.refusing_commits = threading.Event()  # every commit fails while set
        self.stopped = threading.Event()

    async def consume(self, max_events: int, timeout_s: float) -> Delivery:
        delivery = await super().consume(max_events, timeout_s)
        if not delivery.empty:
            self.log.add("consumed", delivery.positions[0].first)
        return delivery

    async def commit(self, delivery: Delivery) -> None:
        first = delivery.positions[0].first
        if first in self.failing_commits or self.refusing_commits.is_set():
            self.failing_commits.discard(first)
            raise ConnectionError("simulated commit failure")
        await super().commit(delivery)
        self.log.add("committed", first)

    async def stop(self) -> None:
        await super().stop()
        self.stopped.set()  # the processor is told to stop right after this


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[SqliteAnalyticsStore, SqliteAnalyticsStore]]:
    persistent = SqliteAnalyticsStore(tmp_path / "persistent.db")
    realtime = SqliteAnalyticsStore(tmp_path / "realtime.db")
    for opened in (persistent, realtime):
        opened.open()
    yield persistent, realtime
    for opened in (persistent, realtime):
        opened.close()


def run_backlog(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore],
    deliveries: int,
    arrange: object,
    stop_when: tuple[str, int] | None = None,
) -> tuple[Log, RecordedTransport, Processor]:
    """Publish `deliveries` full deliveries, let `arrange(log, persistent, realtime,
    transport)` set hooks, run until all are committed (or stop at `stop_when`)."""
    log = Log()
    persistent = Recorded(stores[0], log, "persistent", "persistent")
    realtime = Recorded(stores[1], log, "realtime", "realtime")

    async def scenario() -> tuple[RecordedTransport, Processor]:
        transport = RecordedTransport(log)
        processor = Processor(
            transport, [persistent, realtime], flush_interval_s=0.01,
            max_batch_events=BATCH, retry_backoff_s=0.01,
        )  # fmt: skip
        arrange(log, persistent, realtime, transport)  # type: ignore[operator]
        transport.publish([make_event(i, ts=T0 + i) for i in range(deliveries * BATCH)])
        task = asyncio.create_task(processor.run())
        total = deliveries * BATCH
        for _ in range(int(WAIT_S / 0.01)):
            if stop_when is not None and stop_when in log.entries:
                break
            if processor.stats.events == total and not processor.realtime.behind():
                break
            await asyncio.sleep(0.01)
        await transport.stop()
        processor.stop()
        await asyncio.wait_for(task, WAIT_S)
        return transport, processor

    transport, processor = asyncio.run(scenario())
    return log, transport, processor


def assert_each_event_once(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore], count: int
) -> None:
    for store in stores:
        assert store.kpis(1, int(T0), int(T0) + 3600).pageviews == count
        with store.reader.locked() as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == count


def test_the_next_delivery_is_read_and_the_last_one_finished_while_the_next_is_written(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore],
) -> None:
    overlapped: dict[str, bool] = {}

    def arrange(log: Log, persistent: Recorded, realtime: Recorded, _: object) -> None:
        # The real-time write of delivery 0 waits for the persistent write of delivery 1 to
        # start, which waits for delivery 2 to be read: serial flushes would wait it out.
        def realtime_0() -> None:
            overlapped["finish during the next write"] = log.wait_for("persistent starts", BATCH)

        def persistent_1() -> None:
            overlapped["read during a write"] = log.wait_for("consumed", 2 * BATCH)

        realtime.before[0] = realtime_0
        persistent.before[BATCH] = persistent_1
        # The write's own Python work (before the cue) takes a while: nothing may start then.
        persistent.before_cue[BATCH] = lambda: time.sleep(0.2)

    log, transport, processor = run_backlog(stores, 3, arrange)
    assert overlapped == {"finish during the next write": True, "read during a write": True}
    # ... but only on the write's cue: before it, the write's own Python work runs alone.
    for what, first in (("realtime starts", 0), ("consumed", 2 * BATCH)):
        assert log.entries.index((what, first)) > log.entries.index(("persistent cued", BATCH))
    firsts = [0, BATCH, 2 * BATCH]
    for what in ("persistent wrote", "realtime wrote", "committed", "consumed"):
        assert log.of(what) == firsts, what
    for first in firsts:  # each delivery: persistent, then real-time, then its commit
        steps = [("persistent wrote", first), ("realtime wrote", first), ("committed", first)]
        order = [log.entries.index(step) for step in steps]
        assert order == sorted(order)
    assert transport.pending() == 0 and processor.stats.events == 3 * BATCH
    assert_each_event_once(stores, 3 * BATCH)


def test_a_failed_write_or_commit_is_retried_in_order_and_counted_once(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore],
) -> None:
    def arrange(log: Log, persistent: Recorded, _: Recorded, transport: RecordedTransport) -> None:
        def fail() -> None:  # delivery 0 is being finished meanwhile
            raise ConnectionError("simulated failed write")

        persistent.before[BATCH] = fail
        transport.failing_commits.add(2 * BATCH)

    log, transport, processor = run_backlog(stores, 4, arrange)
    firsts = [0, BATCH, 2 * BATCH, 3 * BATCH]
    assert log.of("persistent starts") == [0, BATCH, BATCH, 2 * BATCH, 3 * BATCH]
    assert log.of("committed") == firsts and log.of("realtime wrote") == firsts
    assert processor.stats.store_errors == 2
    assert transport.pending() == 0
    assert_each_event_once(stores, 4 * BATCH)


def test_a_stop_during_a_backlog_writes_and_commits_what_was_read_ahead(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore],
) -> None:
    def arrange(log: Log, persistent: Recorded, _: Recorded, transport: RecordedTransport) -> None:
        # Delivery 1's write ends only once the stop was asked for, with delivery 2 read
        # ahead: the stop itself must write and commit it (it used to, by timing, 4 in 15).
        def write_until_stopped() -> None:
            log.wait_for("consumed", 2 * BATCH)
            transport.stopped.wait(WAIT_S)

        persistent.before[BATCH] = write_until_stopped

    log, transport, processor = run_backlog(stores, 5, arrange, stop_when=("consumed", 2 * BATCH))
    assert log.of("committed") == [BATCH * n for n in range(5)]
    assert transport.pending() == 0
    assert_each_event_once(stores, 5 * BATCH)


@pytest.mark.parametrize("redelivers", [True, False], ids=["like-kafka", "in-process"])
def test_past_a_delivery_given_up_at_shutdown_only_what_cannot_come_again_is_written(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore], redelivers: bool
) -> None:
    """Delivery 1 always fails, and delivery 2 was read ahead meanwhile; stopping gives
    delivery 1 up. A transport that redelivers (Kafka) must see nothing after it written or
    committed: the stores' offsets and the commit would move over it, and it would never come
    again. The in-process queue brings nothing back: the rest is written, as before."""

    def arrange(log: Log, persistent: Recorded, _: Recorded, transport: RecordedTransport) -> None:
        transport.redelivers = redelivers

        def refuse_always() -> None:
            persistent.before[BATCH] = refuse_always  # and every retry too
            raise ConnectionError("the store refuses this batch")

        persistent.before[BATCH] = refuse_always

    log, transport, processor = run_backlog(stores, 4, arrange, stop_when=("consumed", 2 * BATCH))
    written = [0] if redelivers else [0, 2 * BATCH, 3 * BATCH]
    assert log.of("persistent wrote") == written
    assert log.of("committed") == written
    assert processor.stats.events == len(written) * BATCH
    for store in stores:
        with store.reader.locked() as conn:
            count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            assert count == len(written) * BATCH


def test_while_commits_fail_under_a_backlog_written_deliveries_do_not_pile_up(
    stores: tuple[SqliteAnalyticsStore, SqliteAnalyticsStore],
) -> None:
    """A commit failing over and over (the group coordinator away) holds up the next write:
    at most one written delivery waits for its commit, not the whole backlog in memory."""
    deliveries = 20

    def arrange(log: Log, _: Recorded, __: Recorded, transport: RecordedTransport) -> None:
        transport.refusing_commits.set()
        threading.Timer(0.5, transport.refusing_commits.clear).start()

    log, transport, processor = run_backlog(stores, deliveries, arrange)
    first_commit = log.entries.index(("committed", 0))
    written_before = [e for e in log.entries[:first_commit] if e[0] == "persistent wrote"]
    assert len(written_before) <= 2, written_before
    assert log.of("committed") == [BATCH * n for n in range(deliveries)]
    assert transport.pending() == 0
    assert_each_event_once(stores, deliveries * BATCH)
