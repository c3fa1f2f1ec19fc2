"""A delivery of events as a Batch, with per-site, per-path minute and hour rollups on demand.

A Batch is what every store receives on a flush: the raw events, the rollups (folded when
first read) and the transport positions the batch covers, with each event's offset (so a
store can apply it exactly once, even when part of it was applied before).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from appliance.core.event import Event
from appliance.core.transport import Applied, Offset, Position, unapplied_part

MINUTE = 60
HOUR = 3600
DAY = 86400


@dataclass(slots=True)
class Counters:
    pageviews: int = 0
    events: int = 0  # custom events (anything but a pageview)
    visitors: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)


# (site_id, bucket start in epoch seconds, path)
RollupKey = tuple[int, int, str]
# (site_id, bucket start in epoch seconds, event name)
EventKey = tuple[int, int, str]
# minute and hour rollups, custom events per hour
Rollups = tuple[dict[RollupKey, Counters], dict[RollupKey, Counters], dict[EventKey, int]]


class Batch:
    """What a flush hands each store. The rollups (`minute`, `hour`, `custom_events`) are
    folded on first use only: the built-in stores fold the raw events their own way, so only
    a plugin that reads them (a sink, say) pays for them."""

    __slots__ = ("events", "positions", "offsets", "_rollups")
    events: list[Event]
    positions: list[Position]
    offsets: Sequence[Offset]

    def __init__(
        self,
        events: list[Event],
        positions: list[Position],
        minute: dict[RollupKey, Counters] | None = None,
        hour: dict[RollupKey, Counters] | None = None,
        custom_events: dict[EventKey, int] | None = None,
        offsets: Sequence[Offset] | None = None,
    ) -> None:
        self.events = events
        self.positions = positions
        self.offsets = offsets or []  # offsets[i]: where events[i] came from
        given = minute is not None and hour is not None and custom_events is not None
        self._rollups = (minute, hour, custom_events) if given else None

    @property
    def minute(self) -> dict[RollupKey, Counters]:
        return self._folded()[0]

    @property
    def hour(self) -> dict[RollupKey, Counters]:
        return self._folded()[1]

    @property
    def custom_events(self) -> dict[EventKey, int]:
        return self._folded()[2]

    @property
    def empty(self) -> bool:
        return not self.events

    def unapplied(self, applied: Applied) -> Batch:
        """The batch of only the events past `applied` (a store's safety net)."""
        return aggregate(*unapplied_part(self.events, self.positions, self.offsets, applied))

    def _folded(self) -> Rollups:
        if self._rollups is None:
            self._rollups = fold(self.events)
        return self._rollups  # type: ignore[return-value]


def bucket_start(ts: float, width: int) -> int:
    return int(ts // width) * width


def aggregate(
    events: list[Event], positions: list[Position], offsets: Sequence[Offset] | None = None
) -> Batch:
    """The batch of these events; its rollups are folded when a store first reads them."""
    return Batch(events, positions, offsets=offsets)


def fold(events: list[Event]) -> Rollups:
    """Minute and hour rollups per (site, bucket, path), and custom events per site and hour."""
    minute: dict[RollupKey, Counters] = defaultdict(Counters)
    hour: dict[RollupKey, Counters] = defaultdict(Counters)
    custom: dict[EventKey, int] = defaultdict(int)
    for event in events:
        for rollups, width in ((minute, MINUTE), (hour, HOUR)):
            counters = rollups[(event.site_id, bucket_start(event.ts, width), event.path)]
            if event.is_pageview:
                counters.pageviews += 1
            else:
                counters.events += 1
            counters.visitors.add(event.visitor_id)
            counters.sessions.add(event.session_id)
        if not event.is_pageview:
            custom[(event.site_id, bucket_start(event.ts, HOUR), event.name)] += 1
    return dict(minute), dict(hour), dict(custom)
