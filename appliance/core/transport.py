"""The transport contract between ingest (publish) and the processor (consume + commit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from appliance.core.event import Event


class TransportFull(Exception):
    """The transport cannot take more events right now; the client should retry later."""

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("transport is full")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Position:
    """A contiguous range of offsets of one partition of one topic (inclusive)."""

    topic: str
    partition: str
    first: int
    last: int


@dataclass(slots=True)
class Delivery:
    """Events handed to the processor, with where they came from (for idempotent writes)."""

    events: list[Event] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)


class Transport(Protocol):
    name: str

    async def start(self) -> None: ...

    def publish(self, events: list[Event]) -> None:
        """Hand events over without blocking on I/O; raise TransportFull when it can't."""
        ...

    async def consume(self, max_events: int, timeout_s: float) -> Delivery:
        """Wait up to `timeout_s` for events; return what arrived (maybe nothing)."""
        ...

    async def commit(self, delivery: Delivery) -> None:
        """Mark a delivery as held by every store; it will not be delivered again."""
        ...

    async def stop(self) -> None:
        """Stop accepting events; `consume` keeps returning what is left until it is empty."""
        ...

    def pending(self) -> int:
        """Events published but not yet committed (for health and graceful stop)."""
        ...
