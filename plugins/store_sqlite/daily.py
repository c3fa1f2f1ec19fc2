"""Per-UTC-day rollups of the unfiltered stats, kept in the flush transaction.

Visitor ids hash a salt that rotates every UTC day, so distinct visitors add up over UTC
days and whole days can be answered from one row per day (whole_days.py). A day's rows are
recounted from the visits and events tables rather than updated per event: a visit's exit
page, bounce and attributes change as it grows or merges, which per-value distinct counts
could only follow with a reference-counted row per (visitor, property, value) and visit.
A flush marks the days it changes dirty; later flushes that no longer touch a day older
than their newest event recount it, so a day is counted about once, and queries answer dirty
days (today, always) from the raw tables. A recount is a list of parts (`PARTS`), and each
flush runs only as many as its time budget allows, resuming at `dirty_days.done`: a whole
recount in the flush after midnight held the writer ~0.65 s for a 110k-event day (10M events
over 90 days), two thirds of the freshness budget. A flush touching the day starts it over.

`day_slots` splits a day's events and visitors into quarter hours (a visitor by the slots of
its first and last event that day) for time series buckets cut at local midnights.
`visitor_days` keeps each visitor id's UTC days and `shared_days` the pairs of days sharing an
id: where ids do not rotate (imports, tests) queries spanning such days take the exact path.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable

from appliance.core.aggregation import DAY
from appliance.core.event import Event
from plugins.store_sqlite.queries import VISIT_COLUMNS

_DAY = "site_id = :site AND {column} >= :day AND {column} < :day + 86400"
_EVENTS = _DAY.format(column="ts")
_VISITS = _DAY.format(column="first_ts")
# (property, SELECT value, visitors, pageviews, events ... GROUP BY value)
_VALUES = [
    ("page", "SELECT path, count(DISTINCT visitor_id), count(*), 0 FROM events"
             f" WHERE {_EVENTS} AND name = 'pageview' GROUP BY path"),
    ("event", "SELECT name, count(DISTINCT visitor_id), 0, count(*) FROM events"
              f" WHERE {_EVENTS} AND name <> 'pageview' GROUP BY name"),
    *((column, f"SELECT {column}, count(DISTINCT visitor_id), sum(pageviews), sum(events)"
               f" FROM visits WHERE {_VISITS} GROUP BY {column}")
      for column in VISIT_COLUMNS),
]  # fmt: skip
SLOT = 900  # time zone offsets are whole quarter hours
# The day's events, pageviews, and visitors by the slot of their first and last event.
_SLOTS = f"""
WITH people AS (
    SELECT min(ts) AS first, max(ts) AS last FROM events WHERE {_EVENTS} GROUP BY visitor_id
),
marks AS (
    SELECT ts AS at, 1 AS events, name = 'pageview' AS pageviews, 0 AS arriving, 0 AS leaving
    FROM events WHERE {_EVENTS}
    UNION ALL SELECT first, 0, 0, 1, 0 FROM people
    UNION ALL SELECT last, 0, 0, 0, 1 FROM people
)
INSERT INTO day_slots
SELECT :site, :day, CAST((at - :day) / {SLOT} AS INTEGER), sum(events), sum(pageviews),
       sum(arriving), sum(leaving)
FROM marks GROUP BY 3"""
# Pairs of days sharing an id, once this flush's visitor days are in `visitor_days`.
_SHARED = """
INSERT OR IGNORE INTO shared_days
SELECT f.site_id, f.day, v.day FROM temp.flush_visitor_days f JOIN visitor_days v
  ON v.site_id = f.site_id AND v.visitor_id = f.visitor_id AND v.day <> f.day
UNION ALL
SELECT f.site_id, v.day, f.day FROM temp.flush_visitor_days f JOIN visitor_days v
  ON v.site_id = f.site_id AND v.visitor_id = f.visitor_id AND v.day <> f.day"""


def day_of(ts: float) -> int:
    return int(ts // DAY) * DAY


def mark(
    conn: sqlite3.Connection, events: list[Event], visit_starts: Iterable[tuple[int, float]]
) -> set[tuple[int, int]]:
    """Record a flush: its visitor days, and as dirty the days of its events and of the
    visits it changed (by start). Returns the dirty (site, day) pairs."""
    seen = {(e.site_id, e.visitor_id, int(e.ts // DAY) * DAY) for e in events}  # day_of, inlined
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS flush_visitor_days"
        " (site_id INTEGER, visitor_id TEXT, day INTEGER)"
    )
    conn.execute("DELETE FROM temp.flush_visitor_days")
    conn.executemany("INSERT INTO temp.flush_visitor_days VALUES (?, ?, ?)", seen)
    conn.execute(
        "INSERT OR IGNORE INTO visitor_days SELECT * FROM temp.flush_visitor_days ORDER BY 1, 2, 3"
    )
    conn.execute(_SHARED)
    touched = {(site, day) for site, _, day in seen}
    touched |= {(site, day_of(first_ts)) for site, first_ts in visit_starts}
    conn.executemany(
        "INSERT INTO dirty_days (site_id, day) VALUES (?, ?)"
        " ON CONFLICT (site_id, day) DO UPDATE SET done = 0",
        sorted(touched),
    )
    return touched


def settle(
    conn: sqlite3.Connection,
    before: int | None,
    skip: set[tuple[int, int]] = frozenset(),
    budget_s: float | None = None,
) -> None:
    """Recount the dirty days older than `before` (all if None), except those in `skip`, the
    oldest first. With `budget_s`, stop starting parts once that much time is spent (one part
    at least); the next call resumes."""
    started, ran = time.perf_counter(), False
    rows = conn.execute("SELECT site_id, day, done FROM dirty_days ORDER BY day, site_id")
    for site, day, done in rows.fetchall():
        if (site, day) in skip or (before is not None and day >= before):
            continue
        for part in range(done, len(PARTS)):
            if ran and budget_s is not None and time.perf_counter() - started >= budget_s:
                conn.execute(
                    "UPDATE dirty_days SET done = ? WHERE site_id = ? AND day = ?",
                    (part, site, day),
                )
                return
            PARTS[part](conn, {"site": site, "day": day})
            ran = True
        conn.execute("DELETE FROM dirty_days WHERE site_id = ? AND day = ?", (site, day))


def _slots(conn: sqlite3.Connection, params: dict[str, int]) -> None:
    conn.execute("DELETE FROM day_slots WHERE site_id = :site AND day = :day", params)
    conn.execute(_SLOTS, params)


def _totals(conn: sqlite3.Connection, params: dict[str, int]) -> None:
    """After `_slots`: the day's events come from its slots."""
    visits = conn.execute(
        "SELECT count(*), count(DISTINCT visitor_id), coalesce(sum(pageviews), 0),"
        " coalesce(sum(events), 0), coalesce(sum(pageviews <= 1), 0),"
        f" coalesce(sum(last_ts - first_ts), 0.0) FROM visits WHERE {_VISITS}",
        params,
    ).fetchone()
    events = conn.execute(
        "SELECT coalesce(sum(events), 0), coalesce(sum(pageviews), 0), coalesce(sum(arriving), 0)"
        " FROM day_slots WHERE site_id = :site AND day = :day",
        params,
    ).fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO day_totals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (params["site"], params["day"], *visits, *events),
    )


def _values(prop: str, select: str) -> Callable[[sqlite3.Connection, dict[str, int]], None]:
    def part(conn: sqlite3.Connection, params: dict[str, int]) -> None:
        conn.execute(
            "DELETE FROM day_values WHERE site_id = :site AND property = :prop AND day = :day",
            {**params, "prop": prop},
        )
        conn.execute(
            "INSERT INTO day_values (site_id, property, day, value, visitors, pageviews, events)"
            f" SELECT :site, :prop, :day, * FROM ({select})",
            {**params, "prop": prop},
        )

    return part


# A recount in steps of 15-110 ms each at 110k events a day (slots are the longest).
PARTS = [_slots, _totals, *(_values(prop, select) for prop, select in _VALUES)]
