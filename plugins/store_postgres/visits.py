"""Assign each event of a flush to its visit, continuing the visits still open in the store.

A visit is a session's run of events with no gap over 30 minutes (as the embedded store
rebuilds them at query time). Its attributes are its first event's; its entry and exit pages
are its first and last pageviews. The processor sees each site's events in order (one
partition per site), so a visit is extended flush after flush; what a flush adds to a visit
is one `VisitChange`, merged into the stored row by the writer's upsert.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from appliance.core.event import PAGEVIEW, Event
from appliance.core.visits import ATTRIBUTES, VISIT_GAP_S, first_event_attributes, visit_id_for

# (site_id, session_id)
SessionKey = tuple[int, str]

# The latest not-yet-closed visit of a session, as stored: (visit_id, first_ts, last_ts).
# A plain tuple: a processor keeps one per open session in memory (open_visits.py).
OpenVisit = tuple[int, float, float]


class VisitChange(msgspec.Struct, gc=False):
    """A new visit, or what this flush adds to a stored one (attributes then unused).

    Not tracked by the garbage collector, like _Current (only numbers and strings, so in no
    reference cycle): a flush makes one per touched visit, and tracking them made every young
    collection during a flush walk them all (GC was a quarter of assign()'s time).
    """

    visit_id: int
    site_id: int
    session_id: str
    visitor_id: str
    first_ts: float
    last_ts: float
    attributes: tuple[str, ...] = ("",) * len(ATTRIBUTES)
    pageviews: int = 0
    events: int = 0
    entry_ts: float | None = None
    entry_page: str = ""
    exit_ts: float | None = None
    exit_page: str = ""

    def add(self, event: Event) -> None:
        ts = event.ts  # comparisons, not min()/max(): this runs for every event of a flush
        if ts < self.first_ts:
            self.first_ts = ts
        if ts > self.last_ts:
            self.last_ts = ts
        if event.name != PAGEVIEW:
            self.events += 1
            return
        self.pageviews += 1
        if self.entry_ts is None or ts < self.entry_ts:
            self.entry_ts, self.entry_page = ts, event.path
        if self.exit_ts is None or ts >= self.exit_ts:
            self.exit_ts, self.exit_page = ts, event.path

    def row(self) -> tuple[object, ...]:
        """The `batch_visits` row, in writer.VISIT_COLUMNS order."""
        return (
            self.visit_id, self.site_id, self.session_id, self.visitor_id, self.first_ts,
            self.last_ts, self.pageviews, self.events, self.entry_ts, self.entry_page,
            self.exit_ts, self.exit_page, *self.attributes,
        )  # fmt: skip


@dataclass(slots=True)
class Assignment:
    visit_ids: list[int]  # visit_ids[i]: the visit of events[i]
    changes: list[VisitChange] = field(default_factory=list)
    # Each touched session's latest visit once the changes are stored (what a lookup of
    # the session's open visit would then find).
    latest: dict[SessionKey, OpenVisit] = field(default_factory=dict)


class _Current(msgspec.Struct, gc=False):
    visit_id: int
    first_ts: float
    last_ts: float


def continues(visit: _Current, ts: float) -> bool:
    return visit.first_ts - VISIT_GAP_S <= ts <= visit.last_ts + VISIT_GAP_S


def assign(events: list[Event], open_visits: Mapping[int, Mapping[str, OpenVisit]]) -> Assignment:
    """Put every event in a visit: the session's open one when within 30 minutes, else new.

    `open_visits`: site -> session -> its latest open visit, for (at least) the events' sites.
    """
    visit_ids = [0] * len(events)
    changes: dict[int, VisitChange] = {}
    current: dict[SessionKey, _Current] = {}
    order = sorted(range(len(events)), key=lambda i: events[i].ts)
    for index in order:
        event = events[index]
        key = (event.site_id, event.session_id)
        visit = current.get(key)
        if visit is None and (stored := open_visits[event.site_id].get(event.session_id)):
            visit = current[key] = _Current(*stored)
        if visit is None or not continues(visit, event.ts):
            first_id = visit_id_for(event.site_id, event.session_id, event.event_id)
            started = _Current(first_id, event.ts, event.ts)
            changes[started.visit_id] = VisitChange(
                started.visit_id, event.site_id, event.session_id, event.visitor_id,
                event.ts, event.ts, first_event_attributes(event),
            )  # fmt: skip
            if visit is None or event.ts > visit.last_ts:
                current[key] = visit = started
            else:  # a straggler from before the open visit: its own visit
                visit = started
        change = changes.get(visit.visit_id)
        if change is None:
            change = changes[visit.visit_id] = VisitChange(
                visit.visit_id, event.site_id, event.session_id, "", event.ts, event.ts
            )
        change.add(event)
        if event.ts < visit.first_ts:
            visit.first_ts = event.ts
        if event.ts > visit.last_ts:
            visit.last_ts = event.ts
        visit_ids[index] = visit.visit_id
    latest = {key: (v.visit_id, v.first_ts, v.last_ts) for key, v in current.items()}
    return Assignment(visit_ids, list(changes.values()), latest)
