"""Write each delivery to the real-time stores without letting them hold up a commit.

The persistent stores are the record: the processor commits a delivery once they hold it.
A real-time store (Redis) that is away must not stop that, so the processor hands each
delivery to this feed after the persistent stores took it. The feed keeps, per real-time
store, the deliveries that store does not hold yet (a bounded backlog) and writes them in
order as soon as the store answers again, each time only what the store lacks (by its own
applied offsets), so a catch-up never counts an event twice.

When the backlog overflows, the oldest deliveries are dropped and the store is told
(`reset_coverage`) before its next write: it then claims completeness only from that write
on, and the query layer reads the older minutes from the persistent store. The same happens
when a (re)started processor finds the store behind a persistent store on a partition it is
not about to redeliver: what the store missed then will not come again. A restarted
processor avoids that where it can: it starts early enough (`rewind`) to re-read what a
real-time store lacks, within the store's backlog limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.core.aggregation import Batch, aggregate
from appliance.core.applied import AppliedPositions, reports_positions
from appliance.core.stores import Store, call
from appliance.core.transport import NOTHING_APPLIED, Applied, Delivery

log = logging.getLogger(__name__)

DEFAULT_BACKLOG_EVENTS = 100_000
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0

# signature of what a store holds -> the batch of what it lacks (the processor's cache)
SharedBatches = dict[tuple[tuple[tuple[str, str], int], ...], Batch | None]


def is_realtime(store: Store) -> bool:
    return getattr(store, "role", "") == "realtime"


@dataclass(slots=True)
class FeedStats:
    errors: int = 0  # failed attempts to write a real-time store
    dropped_events: int = 0  # left out of a real-time store because its backlog overflowed
    backlog_events: int = 0  # waiting for a real-time store right now


class _Lane:
    """One real-time store's backlog and retry state."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.limit = int(getattr(store, "backlog_limit", DEFAULT_BACKLOG_EVENTS))
        self.backlog: deque[Delivery] = deque()
        self.events = 0
        self.gap = False  # deliveries were dropped: reset the store's coverage first
        self.checked = False  # compared with the persistent stores since this process started
        self.failures = 0
        self.retry_at = 0.0
        self.applied = AppliedPositions([store])

    @property
    def name(self) -> str:
        return getattr(self.store, "name", type(self.store).__name__)


class RealtimeFeed:
    def __init__(self, stores: Sequence[Store]) -> None:
        self.required = [store for store in stores if not is_realtime(store)]
        self.lanes = [_Lane(store) for store in stores if is_realtime(store)]
        self.stats = FeedStats()

    async def offer(self, delivery: Delivery, batches: SharedBatches | None = None) -> None:
        """Queue `delivery` for every real-time store and write what they can take. Never
        raises: a store that fails keeps the delivery for later."""
        for lane in self.lanes:
            lane.backlog.append(delivery)
            lane.events += len(delivery.events)
            while lane.events > lane.limit and len(lane.backlog) > 1:
                dropped = lane.backlog.popleft()
                lane.events -= len(dropped.events)
                self.stats.dropped_events += len(dropped.events)
                if not lane.gap:
                    log.warning(
                        "%s: its catch-up backlog is full; older events are left out of it"
                        " (the persistent store answers those minutes)",
                        lane.name,
                    )
                lane.gap = True
            await self._drain(lane, delivery, batches or {})
        self._count_backlog()

    async def catch_up(self) -> None:
        """Retry stores that are behind (the processor calls this when it is idle)."""
        # Yield even with nothing to do: a transport may answer "nothing" without waiting
        # (a stopping one does), and the processor's loop must not starve the other tasks.
        await asyncio.sleep(0)
        for lane in self.lanes:
            if lane.backlog:
                await self._drain(lane, None, {})
        self._count_backlog()

    def behind(self) -> bool:
        return any(lane.backlog for lane in self.lanes)

    async def rewind(self, topic: str, resume: dict[str, int]) -> dict[str, int]:
        """Where a (re)started processor should start each partition so the real-time
        stores get again what they missed: a processor killed after the persistent stores
        committed a delivery but before a real-time store took it leaves that store behind,
        and only a re-read fills it. Within the store's backlog limit only (further back, it
        resets its coverage instead); a store that does not answer is left to its catch-up.
        The persistent stores skip what they hold, so nothing is counted twice."""
        rewound = dict(resume)
        for lane in self.lanes:
            try:
                held = await _positions(lane.store, topic)
            except Exception as error:  # away: the catch-up (or a coverage reset) handles it
                log.info("%s: not asked where to resume (%s)", lane.name, error)
                continue
            for partition, first in resume.items():
                wanted = held.get(partition, NOTHING_APPLIED) + 1
                if first - lane.limit <= wanted < rewound[partition]:
                    rewound[partition] = wanted
        return rewound

    async def _drain(self, lane: _Lane, current: Delivery | None, batches: SharedBatches) -> None:
        if time.monotonic() < lane.retry_at:
            return
        try:
            if not lane.checked and lane.backlog:
                lane.gap |= await self._missed_before_start(lane, lane.backlog[0])
                lane.checked = True
            if lane.gap:
                await call(lane.store.reset_coverage)  # type: ignore[attr-defined]
                lane.gap = False
            while lane.backlog:
                delivery = lane.backlog[0]
                await self._write(lane, delivery, batches if delivery is current else {})
                lane.backlog.popleft()
                lane.events -= len(delivery.events)
        except Exception as error:
            lane.applied.forget()  # it may hold the batch even though it failed
            lane.failures += 1
            self.stats.errors += 1
            delay = min(RETRY_FIRST_S * 2 ** (lane.failures - 1), RETRY_MAX_S)
            lane.retry_at = time.monotonic() + delay
            if lane.failures == 1 or lane.failures % 20 == 0:
                log.warning(
                    "%s: write failed (%s: %s); %d events wait for it, retrying in %.1f s",
                    lane.name, type(error).__name__, error, lane.events, delay,
                )  # fmt: skip
            return
        if lane.failures:
            log.warning("%s: caught up after %d failed attempts", lane.name, lane.failures)
        lane.failures = 0

    async def _write(self, lane: _Lane, delivery: Delivery, batches: SharedBatches) -> None:
        keys = {(position.topic, position.partition) for position in delivery.positions}
        held = await lane.applied.of(lane.store, keys)
        signature = tuple(sorted(held.items()))
        if signature in batches:
            batch = batches[signature]
        else:
            batch = await asyncio.to_thread(_lacking, delivery, held)
        if batch is None:
            return
        await call(lane.store.write_batch, batch)
        lane.applied.advance(lane.store, batch.positions)

    async def _missed_before_start(self, lane: _Lane, first: Delivery) -> bool:
        """Is the store behind a persistent store where no redelivery will fill it in?"""
        starts: dict[tuple[str, str], int] = {}
        for position in first.positions:
            key = (position.topic, position.partition)
            starts[key] = min(starts.get(key, position.first), position.first)
        for topic in {topic for topic, _ in starts}:
            mine = await _positions(lane.store, topic)
            for store in self.required:
                if not reports_positions(store):
                    continue
                for partition, last in (await _positions(store, topic)).items():
                    held = mine.get(partition, NOTHING_APPLIED)
                    start = starts.get((topic, partition))
                    if last > held and (start is None or start > held + 1):
                        log.warning(
                            "%s: behind %s on %s/%s (%d < %d) and nothing will redeliver it;"
                            " complete again from the next batch on",
                            lane.name, store.name, topic, partition, held, last,
                        )  # fmt: skip
                        return True
        return False

    def _count_backlog(self) -> None:
        self.stats.backlog_events = sum(lane.events for lane in self.lanes)


async def _positions(store: Any, topic: str) -> dict[str, int]:
    if not reports_positions(store):
        return {}
    found = await call(store.applied_positions, topic)
    return {str(partition): int(last) for partition, last in found.items()}


def _lacking(delivery: Delivery, held: Applied) -> Batch | None:
    rest = delivery.unapplied(held)
    if rest.empty:
        return None
    return aggregate(rest.events, rest.positions, rest.offsets)
