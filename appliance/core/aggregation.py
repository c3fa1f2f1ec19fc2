"""Fold a delivery of events into per-site, per-path minute and hour rollups.

The result, a Batch, is what every store receives on a flush: the raw events, the rollups
and the transport positions the batch covers, with each event's offset (so a store can apply
it exactly once, even when part of it was applied before).
"""

from __future__ import annotations

from collections import defaultdict
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


@dataclass(slots=True)
class Batch:
    events: list[Event]
    positions: list[Position]
    minute: dict[RollupKey, Counters]
    hour: dict[RollupKey, Counters]
    custom_events: dict[EventKey, int]
    offsets: list[Offset] = field(default_factory=list)  # offsets[i]: where events[i] came from

    @property
    def empty(self) -> bool:
        return not self.events

    def unapplied(self, applied: Applied) -> Batch:
        """The batch re-folded from only the events past `applied` (a store's safety net)."""
        return aggregate(*unapplied_part(self.events, self.positions, self.offsets, applied))


def bucket_start(ts: float, width: int) -> int:
    return int(ts // width) * width


def aggregate(
    events: list[Event], positions: list[Position], offsets: list[Offset] | None = None
) -> Batch:
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
    return Batch(events, positions, dict(minute), dict(hour), dict(custom), offsets or [])
