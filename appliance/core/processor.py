"""Move events from the transport into every store, often enough to look live.

A flush happens as soon as events arrive, then at most once per flush interval while they
keep coming, so an idle appliance shows an event within milliseconds and a busy one batches.
The delivery is committed to the transport only after every store holds it, except the
real-time ones (Redis): those are fed after the others and catch up on their own when they
were away, so they never hold up a commit (see realtime_feed.py). Each store gets
only the events it does not hold yet (see applied.py), so a failed write is retried with what
that store still lacks, and a range redelivered after a crash is applied once per store even
when the stores had applied different parts of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appliance.core.aggregation import Batch, aggregate
from appliance.core.applied import AppliedPositions
from appliance.core.realtime_feed import RealtimeFeed
from appliance.core.stores import Store, call
from appliance.core.transport import Applied, Delivery, Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ProcessorStats:
    flushes: int = 0
    events: int = 0
    store_errors: int = 0
    consume_errors: int = 0
    already_held: int = 0  # events not written to a store because it held them already
    last_flush_at: float = 0.0
    store_write_errors: dict[str, int] = field(default_factory=dict)  # by store name


class Processor:
    def __init__(
        self,
        transport: Transport,
        stores: Sequence[Store],
        flush_interval_s: float,
        max_batch_events: int,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.transport = transport
        self.stores = list(stores)
        self.flush_interval_s = flush_interval_s
        self.max_batch_events = max_batch_events
        self.retry_backoff_s = retry_backoff_s
        self.attempts_when_stopping = 5
        self.stats = ProcessorStats()
        # Called with each successful flush's duration in seconds (/metrics observes it).
        self.flush_observers: list[Callable[[float], None]] = []
        # Real-time stores (Redis) never hold up a commit: the feed catches them up.
        self.realtime = RealtimeFeed(self.stores)
        self.applied = AppliedPositions(self.realtime.required)
        self._stopping = asyncio.Event()

    async def subscribe(self) -> None:
        """Join the transport's consumers; they resume each partition after what stores hold."""
        await self.transport.subscribe(self._resume_offsets)

    async def _resume_offsets(self, topic: str, partitions: Sequence[str]) -> dict[str, int]:
        """After what every persistent store holds, or earlier where a real-time one lacks."""
        resume = await self.applied.resume_offsets(topic, partitions)
        return await self.realtime.rewind(topic, resume)

    async def run(self) -> None:
        """Consume and flush until `stop()`; then drain what the transport still holds."""
        while not self._stopping.is_set():
            delivery = await self._consume(self.flush_interval_s)
            if not delivery.empty:
                started = time.monotonic()
                await self._flush_until_held(delivery)
                pause = self.flush_interval_s - (time.monotonic() - started)
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
            else:
                await self.realtime.catch_up()
        await self.drain()

    async def drain(self) -> None:
        while True:
            delivery = await self._consume(0)
            if delivery.empty:
                return
            await self._flush_until_held(delivery)

    async def _consume(self, timeout_s: float) -> Delivery:
        """A broker that is away is waited out: log, pause, and report nothing arrived."""
        try:
            return await self.transport.consume(self.max_batch_events, timeout_s)
        except Exception:
            self.stats.consume_errors += 1
            log.exception("consume failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.retry_backoff_s)
            return Delivery()

    def stop(self) -> None:
        self._stopping.set()

    async def _flush_until_held(self, delivery: Delivery) -> None:
        attempt = 0
        while True:
            try:
                await self.flush(delivery)
                return
            except Exception:
                attempt += 1
                self.stats.store_errors += 1
                log.exception("flush failed (attempt %d); retrying the same batch", attempt)
                if self._stopping.is_set() and attempt >= self.attempts_when_stopping:
                    log.error("giving up on %d events at shutdown", len(delivery.events))
                    return
                await asyncio.sleep(min(self.retry_backoff_s * attempt, 10))

    async def flush(self, delivery: Delivery) -> None:
        """Write to each store what it lacks of `delivery`, then commit the delivery."""
        started = time.monotonic()
        keys = {(position.topic, position.partition) for position in delivery.positions}
        # Stores that hold the same offsets share one batch (the usual case: all of them).
        batches: dict[tuple[tuple[tuple[str, str], int], ...], Batch | None] = {}
        plan: list[tuple[Store, Batch | None]] = []
        for store in self.applied.stores:
            held = await self.applied.of(store, keys)
            signature = tuple(sorted(held.items()))
            if signature not in batches:
                # Off the event loop: ingest keeps answering while a big batch is folded.
                batches[signature] = await asyncio.to_thread(_batch_lacking, delivery, held)
            plan.append((store, batches[signature]))
        for store, batch in plan:
            written = len(batch.events) if batch is not None else 0
            self.stats.already_held += len(delivery.events) - written
            if batch is None:
                continue
            try:
                await call(store.write_batch, batch)
            except Exception:
                self.applied.forget(store)  # it may hold the batch even though it failed
                errors = self.stats.store_write_errors
                errors[store.name] = errors.get(store.name, 0) + 1
                raise
            self.applied.advance(store, batch.positions)
        await self.realtime.offer(delivery, batches)
        await self.transport.commit(delivery)
        self.stats.flushes += 1
        self.stats.events += len(delivery.events)
        self.stats.last_flush_at = time.time()
        for observe in self.flush_observers:
            observe(time.monotonic() - started)


def _batch_lacking(delivery: Delivery, held: Applied) -> Batch | None:
    """The batch of what a store holding `held` lacks; None when it lacks nothing."""
    rest = delivery.unapplied(held)
    if rest.empty:
        return None
    return aggregate(rest.events, rest.positions, rest.offsets)
