"""Unfiltered stats over ranges holding whole UTC days: the days' rollups (daily.py) plus the
exact path (queries.py) over the rest of the range, added up. None: take the exact path.

Visitor ids rotate every UTC day, so the range's visitors are the sum of its days' visitors
when no id appears on two of its days (checked in `shared_days`). A visit counts in the part
holding its first event in the range, with everything it does in the range, so the split
[start, a) + [a, b) + [b, end) must not cut a visit the rollups count whole (stats of
events need no more than whole days):
- `a` is a day later if a visit crossing `start` has its first event in the range on or
  after `a` (the exact path rebuilds it from its events in the range);
- `b` moves back before the start of any stored visit running past `end` (the exact path
  rebuilds such a visit from its events before `end`).
Dirty days join the exact part: [a, b) shrinks to the longer clean run after or before them.
Time series go bucket by bucket (see `timeseries`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from appliance.core.aggregation import DAY
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from appliance.core.visits import VISIT_GAP_S
from plugins.store_sqlite import queries
from plugins.store_sqlite.daily import SLOT, day_of

# The range's events outside the rolled-up days [skip_from, skip_to).
_EDGE_EVENTS = (
    "SELECT name, path, visitor_id FROM events"
    " WHERE site_id = :site AND ts >= :start AND ts < :skip_from"
    " UNION ALL SELECT name, path, visitor_id FROM events"
    " WHERE site_id = :site AND ts >= :skip_to AND ts < :end"
)
_DAYS = "site_id = :site AND day >= :skip_from AND day < :skip_to"
# A visit crossing `start` whose first event in the range is on day `a` or later.
_ENTERING = f"""
SELECT 1 FROM events x JOIN visits v ON v.visit_id = x.visit_id
WHERE x.site_id = :site AND x.ts >= :start - {VISIT_GAP_S} AND x.ts < :start AND v.last_ts >= :a
  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.site_id = v.site_id
                  AND e.session_id = v.session_id AND e.ts >= :start AND e.ts < :a)
LIMIT 1"""
# The earliest start in the range of a stored visit running past `end`.
_RUNNING = f"""
SELECT min(v.first_ts) FROM events x JOIN visits v ON v.visit_id = x.visit_id
WHERE x.site_id = :site AND x.ts >= :end - {VISIT_GAP_S} AND x.ts < :end
  AND v.last_ts >= :end AND v.first_ts >= :start"""


@dataclass(frozen=True, slots=True)
class Split:
    """The whole days [a, b) answered from rollups, in a range's query parameters."""

    params: dict[str, Any]


def split(
    conn: sqlite3.Connection, site: int, start: int, end: int, by_visit: bool
) -> Split | None:
    """`by_visit`: the stats count visits (else events, which add up by their own days)."""
    a, b = -(-start // DAY) * DAY, end // DAY * DAY
    if b - a < DAY:
        return None
    if _shared(conn, site, day_of(start), day_of(end - 1)):
        return None
    params = queries.params_for(site, start, end, a=a)
    if by_visit and conn.execute(_ENTERING, params).fetchone():
        a += DAY
    if by_visit:
        [running] = conn.execute(_RUNNING, params).fetchone()
        if running is not None and a <= running < b:
            b = day_of(running)
    dirty = {
        day
        for (day,) in conn.execute(
            "SELECT day FROM dirty_days WHERE site_id = ? AND day >= ? AND day < ?", (site, a, b)
        )
    }
    if dirty:  # the longer of the clean runs after and before them
        a, b = max((max(dirty) + DAY, b), (a, min(dirty)), key=lambda cut: cut[1] - cut[0])
    if b - a < DAY:
        return None
    return Split({**params, "skip_from": a, "skip_to": b})


def kpis(conn: sqlite3.Connection, site: int, start: int, end: int) -> Kpis | None:
    cut = split(conn, site, start, end, by_visit=True)
    if cut is None:
        return None
    edges = queries.visit_sums(conn, cut.params, ())
    days = conn.execute(
        "SELECT coalesce(sum(pageviews), 0), coalesce(sum(events), 0),"
        " coalesce(sum(visitors), 0), coalesce(sum(visits), 0), coalesce(sum(bounces), 0),"
        f" coalesce(sum(duration), 0.0) FROM day_totals WHERE {_DAYS}",
        cut.params,
    ).fetchone()
    return queries.to_kpis(*(edge + day for edge, day in zip(edges, days, strict=True)))


def timeseries(
    conn: sqlite3.Connection, site: int, buckets: list[int], end: int
) -> list[SeriesPoint] | None:
    """Buckets of clean UTC days come from their quarter-hour slots: a day's tail (visitors
    whose last event of the day is in it), whole days, the next day's head (first event in
    it), so local days off UTC add up too. Runs of other buckets take the exact path."""
    bounds = list(zip(buckets, [*buckets[1:], end], strict=True))
    first, last = day_of(buckets[0]), day_of(end - 1)
    params = {"site": site, "skip_from": first, "skip_to": last + DAY}
    slots: dict[int, list[tuple[int, int, int, int]]] = {}
    for day, slot, *counts in conn.execute(
        f"SELECT day, slot, events, pageviews, arriving, leaving FROM day_slots WHERE {_DAYS}",
        params,
    ):
        slots.setdefault(day, [(0, 0, 0, 0)] * (DAY // SLOT))[slot] = tuple(counts)
    clean = set(range(first, last + DAY, DAY)) - {
        row[0] for row in conn.execute(f"SELECT day FROM dirty_days WHERE {_DAYS}", params)
    }
    rotating = not _shared(conn, site, first, last)

    def from_slots(lo: int, hi: int) -> tuple[int, int, int] | None:
        """The bucket's (events, pageviews, visitors); None if the slots cannot tell."""
        tail_day, head_day = day_of(lo), day_of(hi)
        parts = [(tail_day, (lo - tail_day) // SLOT, DAY // SLOT, 3)]  # 3: leaving
        parts += [(day, 0, DAY // SLOT, 2) for day in range(tail_day + DAY, head_day, DAY)]
        if hi > head_day:
            parts.append((head_day, 0, (hi - head_day) // SLOT, 2))  # 2: arriving
        if lo % SLOT or hi % SLOT or tail_day == head_day or (len(parts) > 1 and not rotating):
            return None
        if any(day not in clean for day, *_ in parts):
            return None
        events = pageviews = visitors = 0
        for day, low, high, people in parts:
            for counts in slots.get(day, ())[low:high]:
                events, pageviews = events + counts[0], pageviews + counts[1]
                visitors += counts[people]
        return events, pageviews, visitors

    points: list[SeriesPoint] = []
    run: list[int] = []
    rolled = False
    for lo, hi in bounds:
        counts = from_slots(lo, hi)
        if counts is None:
            run.append(lo)
            continue
        rolled = True
        if run:
            points += queries.timeseries(conn, site, run, lo, ())
            run = []
        events, pageviews, visitors = counts
        if events:  # as the exact path, which groups the bucket's events
            points.append(SeriesPoint(t=lo, pageviews=pageviews, visitors=visitors))
    if not rolled:
        return None
    if run:
        points += queries.timeseries(conn, site, run, end, ())
    return points


def _shared(conn: sqlite3.Connection, site: int, first: int, last: int) -> bool:
    """Whether a visitor id appears on two UTC days from `first` to `last`."""
    found = conn.execute(
        "SELECT 1 FROM shared_days WHERE site_id = ? AND day BETWEEN ? AND ?"
        " AND other_day BETWEEN ? AND ? LIMIT 1",
        (site, first, last, first, last),
    ).fetchone()
    return found is not None


def _values(conn: sqlite3.Connection, cut: Split, prop: str, edge_sql: str) -> dict[str, list[int]]:
    """value -> [visitors, pageviews, events] over the rollup days and the edges' rows."""
    totals: dict[str, list[int]] = {}
    days = conn.execute(
        "SELECT value, sum(visitors), sum(pageviews), sum(events) FROM day_values"
        f" WHERE {_DAYS} AND property = :prop GROUP BY value",
        {**cut.params, "prop": prop},
    )
    for value, *counts in [*days, *conn.execute(edge_sql, cut.params)]:
        found = totals.setdefault(value, [0, 0, 0])
        for index, count in enumerate(counts):
            found[index] += count or 0
    return totals


def _event_values(conn: sqlite3.Connection, cut: Split, prop: str) -> dict[str, list[int]]:
    kind = "name = 'pageview'" if prop == "page" else "name <> 'pageview'"
    column = "path" if prop == "page" else "name"
    views, custom = ("count(*)", "0") if prop == "page" else ("0", "count(*)")
    return _values(
        conn, cut, prop,
        f"SELECT {column}, count(DISTINCT visitor_id), {views}, {custom}"
        f" FROM ({_EDGE_EVENTS}) WHERE {kind} GROUP BY {column}",
    )  # fmt: skip


def top_pages(
    conn: sqlite3.Connection, site: int, start: int, end: int, limit: int
) -> list[PageRow] | None:
    cut = split(conn, site, start, end, by_visit=False)
    if cut is None:
        return None
    pages = _event_values(conn, cut, "page")
    order = sorted(pages.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return [PageRow(path, pageviews=views, visitors=people) for path, (people, views, _) in
            order[:limit]]  # fmt: skip


def breakdown(
    conn: sqlite3.Connection, site: int, start: int, end: int, prop: str, limit: int
) -> list[BreakdownRow] | None:
    if prop not in ("page", "event", *queries.VISIT_COLUMNS):
        raise ValueError(f"not a visit property: {prop!r}")
    cut = split(conn, site, start, end, by_visit=prop not in ("page", "event"))
    if cut is None:
        return None
    if prop in ("page", "event"):
        found = _event_values(conn, cut, prop)
    else:
        found = _values(
            conn, cut, prop,
            queries.selected((), cut.params)
            + f"SELECT {prop}, count(DISTINCT visitor_id), sum(views), sum(custom)"
            f" FROM selected GROUP BY {prop}",
        )  # fmt: skip
    if prop in queries.OMIT_EMPTY:
        found.pop("", None)
    if prop == "event":  # custom events rank by their count
        rank = sorted(found.items(), key=lambda item: (-item[1][0], -item[1][2], item[0]))
    else:
        rank = sorted(found.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
    unknown = "" if prop in ("page", "event") else queries.UNKNOWN
    return [
        BreakdownRow(value or unknown, visitors=people, pageviews=views, events=custom)
        for value, (people, views, custom) in rank[:limit]
    ]
