"""The transport contract between ingest (publish) and the processor (consume + commit).

Every event a transport delivers carries where it came from (topic, partition, offset), so
the processor can hand each store only the events that store does not hold yet: after a
crash, a redelivered range may overlap what some stores applied, on different boundaries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, overload

from appliance.core.event import Event


class TransportFull(Exception):
    """The transport cannot take more events right now; the client should retry later."""

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("transport is full")
        self.retry_after_s = retry_after_s


class TransportUnavailable(Exception):
    """The transport's broker did not answer (at start-up, or for a request's events); the
    message says which and where."""


@dataclass(frozen=True, slots=True)
class Position:
    """A contiguous range of offsets of one partition of one topic (inclusive)."""

    topic: str
    partition: str
    first: int
    last: int


class Offset(NamedTuple):
    """Where one event came from."""

    topic: str
    partition: str
    offset: int


class PartitionOffsets(Sequence[Offset]):
    """Where each event of one topic came from, as a partition number and an offset per
    event: an Offset made per event cost a consumer more than half of what decoding the
    event did, and stores need them only when a range was partly applied before."""

    __slots__ = ("topic", "partitions", "numbers")

    def __init__(self, topic: str, partitions: list[int], numbers: list[int]) -> None:
        if len(partitions) != len(numbers):
            raise ValueError("one partition and one offset per event")
        self.topic = topic
        self.partitions = partitions
        self.numbers = numbers

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, index: int) -> Offset: ...
    @overload
    def __getitem__(self, index: slice) -> list[Offset]: ...
    def __getitem__(self, index: int | slice) -> Offset | list[Offset]:
        if isinstance(index, slice):
            return list(_offsets(self.topic, self.partitions[index], self.numbers[index]))
        return Offset(self.topic, str(self.partitions[index]), self.numbers[index])

    def __iter__(self) -> Iterator[Offset]:
        return _offsets(self.topic, self.partitions, self.numbers)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PartitionOffsets):
            other = list(other)
        return isinstance(other, list) and list(self) == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like the list it stands for

    def __repr__(self) -> str:
        return f"PartitionOffsets({list(self)!r})"


def _offsets(topic: str, partitions: list[int], numbers: list[int]) -> Iterator[Offset]:
    names = {partition: str(partition) for partition in set(partitions)}
    for partition, number in zip(partitions, numbers, strict=True):
        yield Offset(topic, names[partition], number)


# The last offset a store holds, per (topic, partition); absent means "nothing".
Applied = Mapping[tuple[str, str], int]

NOTHING_APPLIED = -1


@dataclass(slots=True)
class Delivery:
    """Events handed to the processor, with where they came from (for idempotent writes).

    `positions` are the ranges consumed (they may include offsets that produced no event,
    such as a message sent to a dead-letter topic); `offsets[i]` is where `events[i]` came
    from (a list, or a PartitionOffsets).
    """

    events: list[Event] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    offsets: Sequence[Offset] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.events and not self.positions

    def unapplied(self, applied: Applied) -> Delivery:
        """The part of this delivery past `applied`: what a store holding `applied` lacks."""
        return Delivery(*unapplied_part(self.events, self.positions, self.offsets, applied))


def unapplied_part(
    events: list[Event], positions: list[Position], offsets: Sequence[Offset], applied: Applied
) -> tuple[list[Event], list[Position], Sequence[Offset]]:
    """Drop the events and position ranges at or below the applied offset of their partition.

    Needs per-event offsets as soon as a range is partly applied; without them it can only
    keep or drop whole ranges, and says so rather than guess.
    """
    applied_last = {
        (p.topic, p.partition): applied.get((p.topic, p.partition), NOTHING_APPLIED)
        for p in positions
    }
    if all(applied_last[(p.topic, p.partition)] < p.first for p in positions):
        return events, positions, offsets  # the common case: nothing of it was applied
    kept_positions = [
        Position(p.topic, p.partition, max(p.first, last + 1), p.last)
        for p in positions
        if (last := applied_last[(p.topic, p.partition)]) < p.last
    ]
    if len(offsets) != len(events):
        raise ValueError("a partly applied delivery needs the offset of every event")
    kept_events: list[Event] = []
    kept_offsets: list[Offset] = []
    for event, source in zip(events, offsets, strict=True):
        if source.offset > applied_last.get((source.topic, source.partition), NOTHING_APPLIED):
            kept_events.append(event)
            kept_offsets.append(source)
    return kept_events, kept_positions, kept_offsets


# Asked when partitions are assigned to this consumer: (topic, partitions) -> for each
# partition it knows, the first offset some store still lacks. The transport resumes there,
# or at its committed offset when that is later.
ResumeOffsets = Callable[[str, Sequence[str]], Awaitable[dict[str, int]]]


class Transport(Protocol):
    name: str
    # True when a delivery left uncommitted comes again after a restart (a broker keeps it:
    # Kafka); False when what this process holds dies with it (the in-process queue). At a
    # stop, past a delivery the processor had to give up, it writes and commits nothing more
    # when the transport redelivers (that would move the offsets over it), and writes the
    # rest when it does not (nothing else would). Taken as True when a transport lacks it.
    redelivers: bool

    async def start(self) -> None:
        """Get ready to publish (and to dead-letter); must not wait for a broker."""
        ...

    def publish(self, events: list[Event]) -> Awaitable[str | None] | None:
        """Hand events over without blocking on I/O; raise TransportFull when it can't.

        All of `events` are taken, or none (TransportFull). Returns None when the events are
        held once this returns (the in-process queue), else an awaitable that settles with
        None once the transport holds them durably (Kafka: the broker acknowledged every
        one), or with the reason it does not - bounded in time. Ingest answers 202 only
        after that: a 202 is an event that will be counted.
        """
        ...

    async def subscribe(self, resume_offsets: ResumeOffsets) -> None:
        """Become a consumer, before the first `consume`; raise TransportUnavailable when
        the broker does not answer within the configured start-up time."""
        ...

    async def consume(self, max_events: int, timeout_s: float) -> Delivery:
        """Wait up to `timeout_s` for events; return what arrived (maybe nothing)."""
        ...

    async def commit(self, delivery: Delivery) -> None:
        """Mark a delivery as held by every store; it will not be delivered again."""
        ...

    async def stop(self) -> None:
        """Stop accepting events; `consume` then returns what is still held in this process
        until that is empty (a broker-backed transport holds nothing: the broker keeps it)."""
        ...

    async def close(self) -> None:
        """Release connections, after the processor has committed its last delivery."""
        ...

    def pending(self) -> int:
        """Events published but not yet committed (for health and graceful stop)."""
        ...
