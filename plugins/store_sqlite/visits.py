"""Keep the `visits` table equal to a rebuild of each session's events, flush after flush.

A visit is a session's run of events with no gap over 30 minutes; its visitor and attributes
are its first event's, its entry/exit pages its first/last pageviews (ties: the event stored
first, as SQLite's min()/max() bare columns pick). A flush usually appends to a session's
open visit, which is updated from its stored row alone; events older than the stored visit,
or bridging two visits, make the session's affected span be rebuilt from its raw events, so
the table never depends on the order in which events arrive.

A visit's id is a hash of its site, session and first event id (stable while that event is
first; migration 0003 used the first event's rowid instead); events carry it in `visit_id`.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from appliance.core.event import PAGEVIEW, Event
from appliance.core.visits import (
    ATTRIBUTES,
    VISIT_GAP_S,
    first_event_attributes,
    screen_class,
    visit_id_for,
)

COLUMNS = (
    "visit_id", "site_id", "session_id", "visitor_id", "first_ts", "last_ts", "pageviews",
    "events", "entry_page", "exit_page", *ATTRIBUTES,
)  # fmt: skip
INSERT = f"INSERT INTO visits ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
# The raw columns an event needs to start or extend a visit, in `_Row` order.
_EVENT_COLUMNS = (
    "event_id", "ts", "name", "path", "visitor_id", "referrer_source", "referrer", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "country", "browser", "os",
    "device", "screen_width",
)  # fmt: skip


@dataclass(slots=True)
class _Row:
    """One event as visits see it; `stored` holds its rowid for events already in the table.

    `origin` is a new event itself, or a stored event's attributes: a new event's are worked
    out only when it starts a visit. A tuple for every event was the largest part of a big
    flush's memory (20,000 events: 14 MiB at the peak), which the writer keeps afterwards.
    """

    event_id: str
    ts: float
    name: str
    path: str
    visitor_id: str
    origin: Event | tuple[str, ...]
    stored: int | None = None
    visit_id: int = 0

    @classmethod
    def of(cls, event: Event) -> _Row:
        return cls(event.event_id, event.ts, event.name, event.path, event.visitor_id, event)

    def attributes(self) -> tuple[str, ...]:
        origin = self.origin
        return origin if isinstance(origin, tuple) else first_event_attributes(origin)


@dataclass(slots=True)
class Visit:
    visit_id: int
    site_id: int
    session_id: str
    visitor_id: str
    first_ts: float
    last_ts: float
    pageviews: int
    events: int
    entry_page: str
    exit_page: str
    attributes: tuple[str, ...]
    exit_ts: float = float("-inf")  # of the exit page; a stored visit is only ever appended to

    @classmethod
    def start(cls, site_id: int, session_id: str, row: _Row) -> Visit:
        visit = cls(
            visit_id_for(site_id, session_id, row.event_id), site_id, session_id,
            row.visitor_id, row.ts, row.ts, 0, 0, "", "", row.attributes(),
        )  # fmt: skip
        visit.add(row)
        return visit

    def add(self, row: _Row) -> None:
        """Absorb an event no earlier than the visit's last one."""
        if row.name == PAGEVIEW:
            if self.pageviews == 0:
                self.entry_page = row.path
            if row.ts > self.exit_ts:
                self.exit_page, self.exit_ts = row.path, row.ts
            self.pageviews += 1
        else:
            self.events += 1
        self.last_ts = max(self.last_ts, row.ts)
        row.visit_id = self.visit_id

    def row(self) -> tuple[object, ...]:
        return (
            self.visit_id, self.site_id, self.session_id, self.visitor_id, self.first_ts,
            self.last_ts, self.pageviews, self.events, self.entry_page, self.exit_page,
            *self.attributes,
        )  # fmt: skip


def _split(
    site_id: int, session_id: str, rows: list[_Row], open_visit: Visit | None
) -> list[Visit]:
    """Visits of `rows` (sorted by time), the first continuing `open_visit` if given."""
    visits = [open_visit] if open_visit is not None else []
    for row in rows:
        if visits and row.ts - visits[-1].last_ts <= VISIT_GAP_S:
            visits[-1].add(row)
        else:
            visits.append(Visit.start(site_id, session_id, row))
    return visits


class Assignment(NamedTuple):
    visit_ids: list[int]  # per event, in order
    starts: list[tuple[int, float]]  # (site, first_ts) of every visit removed or written


def assign(conn: sqlite3.Connection, events: list[Event]) -> Assignment:
    """Update `visits` for a flush's events (not inserted yet)."""
    rows = [_Row.of(event) for event in events]
    sessions: dict[tuple[int, str], list[_Row]] = defaultdict(list)
    for event, row in zip(events, rows, strict=True):
        sessions[(event.site_id, event.session_id)].append(row)
    gone: list[tuple[int, float, int]] = []
    written: list[Visit] = []
    moved: list[tuple[int, int]] = []  # (visit id, rowid) of stored events changing visit
    for (site_id, session_id), new in sessions.items():
        new.sort(key=lambda row: row.ts)  # stable: ties keep arrival order
        stored = _stored_visits(conn, site_id, session_id, new[0].ts, new[-1].ts)
        gone += [(site_id, visit.first_ts, visit.visit_id) for visit in stored]
        if not stored:
            written += _split(site_id, session_id, new, None)
        elif len(stored) == 1 and new[0].ts > stored[0].last_ts:
            written += _split(site_id, session_id, new, stored[0])
        else:
            old = _stored_rows(conn, site_id, session_id, stored)
            merged = sorted(old + new, key=lambda row: row.ts)  # stored rows first on ties
            before = {row.stored: row.visit_id for row in old}
            written += _split(site_id, session_id, merged, None)
            moved += [
                (row.visit_id, row.stored) for row in old if row.visit_id != before[row.stored]
            ]
    conn.executemany("DELETE FROM visits WHERE site_id = ? AND first_ts = ? AND visit_id = ?", gone)
    conn.executemany(INSERT, (visit.row() for visit in written))
    conn.executemany("UPDATE events SET visit_id = ? WHERE rowid = ?", moved)
    starts = [(site, first_ts) for site, first_ts, _ in gone]
    starts += [(visit.site_id, visit.first_ts) for visit in written]
    return Assignment([row.visit_id for row in rows], starts)


def _stored_visits(
    conn: sqlite3.Connection, site_id: int, session_id: str, low: float, high: float
) -> list[Visit]:
    """The session's visits that events in [low, high] may extend or bridge."""
    found = conn.execute(
        # Without the hint the planner scans the site's visits by start time.
        f"SELECT {', '.join(COLUMNS)} FROM visits INDEXED BY visits_session"
        " WHERE site_id = ? AND session_id = ? AND last_ts >= ? AND first_ts <= ?"
        " ORDER BY first_ts",
        (site_id, session_id, low - VISIT_GAP_S, high + VISIT_GAP_S),
    ).fetchall()
    return [Visit(*row[:10], tuple(row[10:]), exit_ts=row[5]) for row in found]


def _stored_rows(
    conn: sqlite3.Connection, site_id: int, session_id: str, visits: Iterable[Visit]
) -> list[_Row]:
    """The raw events of `visits`, in stored order within equal times."""
    spans = list(visits)
    found = conn.execute(
        f"SELECT rowid, visit_id, {', '.join(_EVENT_COLUMNS)} FROM events"
        " WHERE site_id = ? AND session_id = ? AND ts >= ? AND ts <= ? ORDER BY ts, rowid",
        (site_id, session_id, spans[0].first_ts, max(visit.last_ts for visit in spans)),
    ).fetchall()
    return [
        _Row(event_id, ts, name, path, visitor_id,
             (*attributes[:-1], screen_class(attributes[-1])), stored=rowid, visit_id=visit_id)
        for rowid, visit_id, event_id, ts, name, path, visitor_id, *attributes in found
    ]  # fmt: skip
