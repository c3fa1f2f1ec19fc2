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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from appliance.core import overlap
from appliance.core.aggregation import Batch, aggregate
from appliance.core.applied import AppliedPositions
from appliance.core.realtime_feed import RealtimeFeed, SharedBatches
from appliance.core.stores import Store, call
from appliance.core.transport import Applied, Delivery, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")
_GAVE_UP = object()  # what _retried answers when a stop made it give a step up


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
        """Consume and flush until `stop()`; then drain what the transport still holds.

        Under a backlog (a full delivery) the flushes overlap: the next delivery is read
        while this one is written to the persistent stores, and this one's real-time write
        and commit run while the next one is written (see `_Pipeline`)."""
        pipeline = _Pipeline(self)
        loop = asyncio.get_running_loop()
        stop_here = False  # a delivery was given up, and the transport brings it back
        try:
            while not self._stopping.is_set():
                delivery = await pipeline.next_delivery()
                if delivery.empty:
                    await pipeline.settle()  # the feed takes one caller at a time
                    await self.realtime.catch_up()
                    continue
                backlog = len(delivery.events) >= self.max_batch_events
                cue = asyncio.Event()
                await pipeline.overlap(cue, read_ahead=backlog)
                started = time.monotonic()
                token = overlap.set_cue(lambda cue=cue: loop.call_soon_threadsafe(cue.set))
                try:
                    batches = await self._write_until_held(delivery)
                finally:
                    overlap.reset(token)
                    cue.set()
                if batches is None:  # given up at shutdown
                    stop_here = self._redelivers
                    continue
                pipeline.written(delivery, batches, started)
                if backlog:
                    continue
                await pipeline.settle()
                pause = self.flush_interval_s - (time.monotonic() - started)
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), pause)
            await pipeline.settle()  # only deliveries before a given-up one were written
            if not stop_here:
                ahead = await pipeline.next_delivery(wait=False)
                if not ahead.empty:
                    stop_here = not await self._flush_until_held(ahead) and self._redelivers
        finally:
            await pipeline.cancel()  # a read-ahead left unwritten is redelivered
        if not stop_here:
            await self.drain()

    @property
    def _redelivers(self) -> bool:
        """Whether a delivery given up at a stop comes again (then nothing after it may be
        written or committed: the offsets would move over it)."""
        return getattr(self.transport, "redelivers", True)

    async def drain(self) -> None:
        while True:
            delivery = await self._consume(0)
            if delivery.empty:
                return
            if not await self._flush_until_held(delivery) and self._redelivers:
                return

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

    async def _flush_until_held(self, delivery: Delivery) -> bool:
        """Write and commit `delivery`, retrying; False when given up at shutdown."""
        started = time.monotonic()
        batches = await self._write_until_held(delivery)
        if batches is None:
            return False
        await self._finish_until_done(delivery, batches, started)
        return True

    async def _write_until_held(self, delivery: Delivery) -> SharedBatches | None:
        """The persistent writes of `delivery`, retried; None when given up at shutdown."""
        batches = await self._retried(
            lambda: self._write_persistent(delivery),
            "flush failed (attempt %d); retrying the same batch",
            f"giving up on {len(delivery.events)} events at shutdown",
        )
        return None if batches is _GAVE_UP else batches

    async def _retried(
        self, step: Callable[[], Awaitable[T]], failed: str, given_up: str
    ) -> T | object:
        """`step()` until it succeeds, with a growing pause between attempts; _GAVE_UP once a
        stop was asked for and it failed `attempts_when_stopping` times."""
        attempt = 0
        while True:
            try:
                return await step()
            except Exception:
                attempt += 1
                self.stats.store_errors += 1
                log.exception(failed, attempt)
                if self._stopping.is_set() and attempt >= self.attempts_when_stopping:
                    log.error("%s", given_up)
                    return _GAVE_UP
                await asyncio.sleep(min(self.retry_backoff_s * attempt, 10))

    async def _finish_until_done(
        self, delivery: Delivery, batches: SharedBatches, started: float
    ) -> None:
        """The real-time write (never raises) and the commit, retried until it succeeds."""
        await self.realtime.offer(delivery, batches)
        committed = await self._retried(
            lambda: self.transport.commit(delivery),
            "commit failed (attempt %d); retrying",
            f"{len(delivery.events)} events left uncommitted at shutdown",
        )
        if committed is not _GAVE_UP:
            self._flushed(delivery, started)

    async def flush(self, delivery: Delivery) -> None:
        """Write to each store what it lacks of `delivery`, then commit the delivery."""
        started = time.monotonic()
        batches = await self._write_persistent(delivery)
        await self.realtime.offer(delivery, batches)
        await self.transport.commit(delivery)
        self._flushed(delivery, started)

    def _flushed(self, delivery: Delivery, started: float) -> None:
        self.stats.flushes += 1
        self.stats.events += len(delivery.events)
        self.stats.last_flush_at = time.time()
        for observe in self.flush_observers:
            observe(time.monotonic() - started)

    async def _write_persistent(self, delivery: Delivery) -> SharedBatches:
        """Write to each persistent store what it lacks of `delivery`; the batches made."""
        keys = {(position.topic, position.partition) for position in delivery.positions}
        # Stores that hold the same offsets share one batch (the usual case: all of them).
        batches: SharedBatches = {}
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
        return batches


def _batch_lacking(delivery: Delivery, held: Applied) -> Batch | None:
    """The batch of what a store holding `held` lacks; None when it lacks nothing."""
    rest = delivery.unapplied(held)
    if rest.empty:
        return None
    return aggregate(rest.events, rest.positions, rest.offsets)


class _Pipeline:
    """Overlap of consecutive flushes under a backlog, one delivery deep.

    While the persistent stores write delivery N+1, the next delivery (N+2) is read and
    delivery N is finished: offered to the real-time stores and committed. Both start on
    the write's cue (see overlap.py). Order is kept: deliveries are written to the
    persistent stores, offered to the real-time ones and committed in the order consumed,
    each after the one before. A delivery read ahead is not committed before it is
    written, so a crash or rebalance redelivers it, and the stores skip what they hold.
    At most one finish runs: the next write waits for the last one, so a commit that keeps
    failing under a backlog holds up reading and writing instead of piling deliveries up
    in memory, and a finish that failed surfaces at once.
    """

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self._ahead: asyncio.Task[Delivery] | None = None
        self._tail: asyncio.Task[None] | None = None  # finishing the last written delivery
        self._written: tuple[Delivery, SharedBatches, float] | None = None  # not finished yet

    async def overlap(self, cue: asyncio.Event, read_ahead: bool) -> None:
        """Once `cue` is set: read the next delivery (if `read_ahead`) and finish the one
        written last (after the finish before it is done)."""
        await self._await_tail()
        if read_ahead:
            self._ahead = asyncio.create_task(self._read_after(cue))
        if self._written is not None:
            self._start_finish(cue)

    def written(self, delivery: Delivery, batches: SharedBatches, started: float) -> None:
        self._written = (delivery, batches, started)

    async def next_delivery(self, wait: bool = True) -> Delivery:
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return await ahead
        if not wait:
            return Delivery()
        return await self.processor._consume(self.processor.flush_interval_s)

    async def settle(self) -> None:
        """Finish what was written, now."""
        await self._await_tail()
        if self._written is not None:
            self._start_finish(None)
            await self._await_tail()

    async def _await_tail(self) -> None:
        if self._tail is not None:
            tail, self._tail = self._tail, None
            await tail

    async def cancel(self) -> None:
        for task in (self._ahead, self._tail):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _start_finish(self, cue: asyncio.Event | None) -> None:
        assert self._written is not None and self._tail is None
        written, self._written = self._written, None
        self._tail = asyncio.create_task(self._finish_after(cue, written))

    async def _read_after(self, cue: asyncio.Event) -> Delivery:
        await cue.wait()
        return await self.processor._consume(0)

    async def _finish_after(
        self, cue: asyncio.Event | None, written: tuple[Delivery, SharedBatches, float]
    ) -> None:
        if cue is not None:
            await cue.wait()
        await self.processor._finish_until_done(*written)
