"""A bounded in-memory queue with offsets, so stores apply each batch once like with Kafka."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

from appliance.core.event import Event
from appliance.core.transport import Delivery, Offset, Position, ResumeOffsets, TransportFull


class MemoryTransport:
    name = "memory"
    redelivers = False  # what is queued here dies with the process
    topic = "memory"

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Offsets restart with the process, so each process run is its own partition.
        self.partition = f"{os.getpid()}-{time.time_ns()}"
        self._queue: deque[Event] = deque()
        self._next_offset = 0  # offset of the next event to be consumed
        self._in_flight = 0
        self._arrived = asyncio.Event()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    def publish(self, events: list[Event]) -> None:
        if self._closed or len(self._queue) + self._in_flight + len(events) > self.capacity:
            raise TransportFull(retry_after_s=1)
        self._queue.extend(events)
        self._arrived.set()

    async def subscribe(self, resume_offsets: ResumeOffsets) -> None:
        """Nothing to join, and nothing to resume: this run's partition is new to every store."""

    async def consume(self, max_events: int, timeout_s: float) -> Delivery:
        if not self._queue and timeout_s > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except TimeoutError:
                return Delivery()
        count = min(max_events, len(self._queue))
        if count == 0:
            return Delivery()
        events = [self._queue.popleft() for _ in range(count)]
        first = self._next_offset
        self._next_offset += count
        self._in_flight += count
        position = Position(self.topic, self.partition, first, first + count - 1)
        offsets = [Offset(self.topic, self.partition, first + i) for i in range(count)]
        return Delivery(events=events, positions=[position], offsets=offsets)

    async def commit(self, delivery: Delivery) -> None:
        self._in_flight -= len(delivery.events)

    async def stop(self) -> None:
        self._closed = True
        self._arrived.set()

    async def close(self) -> None:
        """Nothing to release."""

    def pending(self) -> int:
        return len(self._queue) + self._in_flight
