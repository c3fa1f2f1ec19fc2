"""What each store already holds, per (topic, partition), so each store gets only what it lacks.

A store may offer ``applied_positions(topic) -> {partition: last_offset}`` (sync or async),
reading the offsets it records in the same transaction as its rows. The processor reads it
once per topic, then keeps it current from its own successful writes; a failed write (whose
acknowledgement may be all that was lost) or a new partition assignment (another processor
may have written meanwhile) makes it read the store again. A store without the method is
treated as holding nothing: it then must skip what it holds by itself in `write_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from appliance.core.stores import Store, call
from appliance.core.transport import NOTHING_APPLIED, Position


def reports_positions(store: Store) -> bool:
    return callable(getattr(store, "applied_positions", None))


class AppliedPositions:
    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = list(stores)
        # id(store) -> (topic, partition) -> last offset held, for the topics read so far
        self._held: dict[int, dict[tuple[str, str], int]] = {id(s): {} for s in self.stores}
        self._topics_read: dict[int, set[str]] = {id(s): set() for s in self.stores}

    async def of(self, store: Store, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The last offset `store` holds for each (topic, partition) in `keys`."""
        keys = list(keys)
        for topic in {topic for topic, _ in keys}:
            await self._read(store, topic)
        held = self._held[id(store)]
        return {key: held.get(key, NOTHING_APPLIED) for key in keys}

    async def resume_offsets(self, topic: str, partitions: Sequence[str]) -> dict[str, int]:
        """For each partition, the first offset some store lacks ({} if a store can't say)."""
        self.forget(topic=topic)
        if not self.stores or not all(reports_positions(store) for store in self.stores):
            return {}
        keys = [(topic, partition) for partition in partitions]
        lowest = {partition: float("inf") for partition in partitions}
        for store in self.stores:
            for (_, partition), last in (await self.of(store, keys)).items():
                lowest[partition] = min(lowest[partition], last)
        return {partition: int(last) + 1 for partition, last in lowest.items()}

    def advance(self, store: Store, positions: Iterable[Position]) -> None:
        """Record what a successful write of `store` now holds."""
        held = self._held[id(store)]
        for position in positions:
            key = (position.topic, position.partition)
            held[key] = max(held.get(key, NOTHING_APPLIED), position.last)

    def forget(self, store: Store | None = None, topic: str | None = None) -> None:
        """Read again from the store(s) next time (all topics, or only `topic`)."""
        for target in [store] if store is not None else self.stores:
            held, read = self._held[id(target)], self._topics_read[id(target)]
            for key in [key for key in held if topic is None or key[0] == topic]:
                del held[key]
            read.difference_update([topic] if topic is not None else list(read))

    async def _read(self, store: Store, topic: str) -> None:
        read = self._topics_read[id(store)]
        if topic in read:
            return
        if reports_positions(store):
            positions = await call(store.applied_positions, topic)  # type: ignore[attr-defined]
            held = self._held[id(store)]
            for partition, last in positions.items():
                held[(topic, str(partition))] = int(last)
        read.add(topic)
