"""Move events from the transport into every store, often enough to look live.

A flush happens as soon as events arrive, then at most once per flush interval while they
keep coming, so an idle appliance shows an event within milliseconds and a busy one batches.
The delivery is committed to the transport only after every store holds it; a store that
fails is retried with the same batch, which stores apply once (by its positions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.core.aggregation import aggregate
from appliance.core.stores import Store, call
from appliance.core.transport import Delivery, Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ProcessorStats:
    flushes: int = 0
    events: int = 0
    store_errors: int = 0
    last_flush_at: float = 0.0


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
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Consume and flush until `stop()`; then drain what the transport still holds."""
        while not self._stopping.is_set():
            delivery = await self.transport.consume(self.max_batch_events, self.flush_interval_s)
            if delivery.events:
                started = time.monotonic()
                await self._flush_until_held(delivery)
                pause = self.flush_interval_s - (time.monotonic() - started)
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
        await self.drain()

    async def drain(self) -> None:
        while True:
            delivery = await self.transport.consume(self.max_batch_events, 0)
            if not delivery.events:
                return
            await self._flush_until_held(delivery)

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
        # Off the event loop: ingest keeps answering while a big batch is folded.
        batch = await asyncio.to_thread(aggregate, delivery.events, delivery.positions)
        for store in self.stores:
            await call(store.write_batch, batch)
        await self.transport.commit(delivery)
        self.stats.flushes += 1
        self.stats.events += len(delivery.events)
        self.stats.last_flush_at = time.time()
