"""Stats from the visits table and the raw events: exact, for any filter (a visit segment).

The answers are those of rebuilding visits from the range's events alone (30 minutes of
inactivity end a visit; a visit's attributes are its first event's): the stored visits inside
the range are used as they are, and the few that straddle its start or end are rebuilt from
their events inside it. Filters select visits; event counts (pageviews, pages, custom events,
time series) are the range's events of the selected visits.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from appliance.core.filters import Filter
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from appliance.core.visits import ATTRIBUTES, VISIT_GAP_S, screen_class_sql

SCREEN_CLASS = screen_class_sql("screen_width")
VISIT_COLUMNS = ("entry_page", "exit_page", *ATTRIBUTES)
# Without a value these rows mean "not tagged" and are left out of breakdowns.
OMIT_EMPTY = {"referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
              "entry_page", "exit_page"}  # fmt: skip
UNKNOWN = "Unknown"
_SHOWN = ", ".join(VISIT_COLUMNS)

# `range_visits`: one row per visit of the range (visit, visitor_id, the visit properties,
# duration, views, custom, and where its events in the range are: session_id and the first
# and last of their times), less the stored visits starting in [skip_from, skip_to) (days
# whole_days.py reads from rollups). A straddling visit has an event within 30 minutes
# before the edge it crosses; its part inside the range is rebuilt from `edge`, its events
# there (read by session: by time, the planner would scan the whole range once per
# straddling visit).
_RANGE_VISITS = f"""
straddling AS (
    SELECT x.visit_id FROM events x JOIN visits v ON v.visit_id = x.visit_id
    WHERE x.site_id = :site AND x.ts >= :start - {VISIT_GAP_S} AND x.ts < :start
      AND v.last_ts >= :start
    UNION
    SELECT x.visit_id FROM events x JOIN visits v ON v.visit_id = x.visit_id
    WHERE x.site_id = :site AND x.ts >= :end - {VISIT_GAP_S} AND x.ts < :end
      AND v.last_ts >= :end
),
edge AS MATERIALIZED (
    SELECT e.visit_id, e.ts, e.name, e.path, e.visitor_id, e.session_id, e.referrer_source,
           e.referrer,
           e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term, e.utm_content, e.country,
           e.browser, e.os, e.device, e.screen_width
    FROM straddling s JOIN visits v ON v.visit_id = s.visit_id
    JOIN events e INDEXED BY events_site_session_ts
      ON e.site_id = v.site_id AND e.session_id = v.session_id
     AND e.ts >= max(v.first_ts, :start) AND e.ts <= v.last_ts AND e.ts < :end
     AND e.visit_id = v.visit_id
    ORDER BY e.visit_id, e.ts, e.rowid
),
edge_firsts AS (
    SELECT visit_id AS visit, MIN(ts) AS first_ts, session_id, visitor_id,
           referrer_source AS source, referrer,
           utm_source, utm_medium, utm_campaign, utm_term, utm_content, country, browser, os,
           device, {SCREEN_CLASS} AS screen
    FROM edge GROUP BY visit_id
),
edge_entries AS (
    SELECT visit_id AS visit, MIN(ts), path FROM edge WHERE name = 'pageview' GROUP BY visit_id
),
edge_exits AS (
    SELECT visit_id AS visit, MAX(ts), path FROM edge WHERE name = 'pageview' GROUP BY visit_id
),
edge_totals AS (
    SELECT visit_id AS visit, MAX(ts) - MIN(ts) AS duration, SUM(name = 'pageview') AS views,
           SUM(name <> 'pageview') AS custom, MAX(ts) AS last_ts
    FROM edge GROUP BY visit_id
),
range_visits AS (
    SELECT visit_id AS visit, visitor_id, {_SHOWN}, last_ts - first_ts AS duration,
           pageviews AS views, events AS custom, session_id, first_ts, last_ts
    FROM visits
    WHERE site_id = :site AND first_ts >= :start AND first_ts < :skip_from AND last_ts < :end
    UNION ALL
    SELECT visit_id AS visit, visitor_id, {_SHOWN}, last_ts - first_ts AS duration,
           pageviews AS views, events AS custom, session_id, first_ts, last_ts
    FROM visits
    WHERE site_id = :site AND first_ts >= :skip_to AND first_ts < :end AND last_ts < :end
    UNION ALL
    SELECT f.visit, f.visitor_id, coalesce(en.path, '') AS entry_page,
           coalesce(ex.path, '') AS exit_page, {", ".join(f"f.{name}" for name in ATTRIBUTES)},
           t.duration, t.views, t.custom, f.session_id, f.first_ts, t.last_ts
    FROM edge_firsts f JOIN edge_totals t USING (visit)
    LEFT JOIN edge_entries en USING (visit) LEFT JOIN edge_exits ex USING (visit)
)"""
_IN_RANGE = "site_id = :site AND ts >= :start AND ts < :end"
# The selected visits' events in the range, fetched visit by visit through the session index:
# a filter keeps ~10% of visits, and testing every event of the range for membership read
# all of them (10M events, 30 days, browser==Firefox: top pages 1.8 s).
_PICKED = """,
picked AS MATERIALIZED (
    SELECT e.site_id, e.ts, e.name, e.path, e.visitor_id, e.visit_id, e.props
    FROM selected s JOIN events e INDEXED BY events_site_session_ts
      ON e.site_id = :site AND e.session_id = s.session_id
     AND e.ts >= s.first_ts AND e.ts <= s.last_ts AND e.visit_id = s.visit
)
"""


def selected(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """`WITH ..., selected AS (...)`: the range's visits matching every filter."""
    conditions = []
    for index, item in enumerate(filters):
        key = f"filter{index}"
        params[key] = item.value
        if item.property in VISIT_COLUMNS:
            operator = "=" if item.operator == "==" else "<>"
            conditions.append(f"{item.property} {operator} :{key}")
        else:
            kind = "name = 'pageview' AND path" if item.property == "page" else "name"
            negate = "" if item.operator == "==" else "NOT "
            conditions.append(
                f"visit {negate}IN (SELECT visit_id FROM events"
                f" WHERE {_IN_RANGE} AND {kind} = :{key})"
            )
    where = " AND ".join(conditions) or "1"
    return f"WITH {_RANGE_VISITS},\nselected AS (SELECT * FROM range_visits WHERE {where})\n"


def _events(
    filters: tuple[Filter, ...], params: dict[str, Any], alias: str = "", in_range: bool = True
) -> tuple[str, str, str]:
    """The WITH clause (if any), the table to read (`events`, or `picked` with filters) and
    the condition keeping the range's events (unless the caller bounds the time itself)."""
    column = f"{alias}." if alias else ""
    parts = _IN_RANGE.split(" AND ") if in_range else ["site_id = :site"]
    where = " AND ".join(f"{column}{part}" for part in parts)
    if not filters:
        return "", "events", where
    return selected(filters, params) + _PICKED, "picked", where


def params_for(site: int, start: int, end: int, **extra: Any) -> dict[str, Any]:
    """Query parameters; `skip_from`/`skip_to` may narrow `range_visits` (see there)."""
    return {"site": site, "start": start, "end": end, "skip_from": end, "skip_to": end, **extra}


def visit_sums(conn: sqlite3.Connection, params: dict[str, Any], filters: tuple) -> tuple:
    """(pageviews, events, visitors, visits, bounces, summed duration) of the selected visits."""
    [row] = conn.execute(
        selected(filters, params)
        + "SELECT coalesce(sum(views), 0), coalesce(sum(custom), 0), count(DISTINCT visitor_id),"
        " count(*), coalesce(sum(views <= 1), 0), coalesce(sum(duration), 0.0) FROM selected",
        params,
    ).fetchall()
    return tuple(row)


def kpis(conn: sqlite3.Connection, site: int, start: int, end: int, filters: tuple) -> Kpis:
    return to_kpis(*visit_sums(conn, params_for(site, start, end), filters))


def to_kpis(
    pageviews: int, events: int, visitors: int, sessions: int, bounces: int, duration: float
) -> Kpis:
    return Kpis(
        pageviews=pageviews,
        visitors=visitors,
        sessions=sessions,
        events=events,
        bounce_rate=round(bounces / sessions, 4) if sessions else 0.0,
        avg_duration_s=round(duration / sessions, 1) if sessions else 0.0,
    )


def timeseries(
    conn: sqlite3.Connection, site: int, buckets: list[int], end: int, filters: tuple
) -> list[SeriesPoint]:
    if not buckets:
        return []
    params = params_for(site, buckets[0], end, buckets=json.dumps(buckets))
    if filters:
        return _picked_series(conn, filters, params, buckets)
    # One index range per bucket: a range condition on events beside the bucket's would be
    # the one the planner picks, scanning the whole range once per bucket.
    with_clause, table, where = _events(filters, params, "e", in_range=False)
    # Buckets may differ in length (local days): each runs to the next one's start.
    bounds = (
        "bounds AS (SELECT value AS lo, coalesce(LEAD(value) OVER (ORDER BY key), :end) AS hi"
        " FROM json_each(:buckets))"
    )
    with_clause = f"{with_clause},\n{bounds}\n" if with_clause else f"WITH {bounds}\n"
    rows = conn.execute(
        with_clause + "SELECT b.lo, sum(e.name = 'pageview'), count(DISTINCT e.visitor_id)"
        f" FROM bounds b JOIN {table} e ON e.ts >= b.lo AND e.ts < b.hi WHERE {where}"
        " GROUP BY b.lo ORDER BY b.lo",
        params,
    ).fetchall()
    return [SeriesPoint(t=row[0], pageviews=row[1], visitors=row[2]) for row in rows]


def _picked_series(
    conn: sqlite3.Connection, filters: tuple, params: dict[str, Any], buckets: list[int]
) -> list[SeriesPoint]:
    """The selected events, each in the bucket of the latest start at or before it, found by
    a binary search written as nested CASEs (joining `picked` to the buckets by range
    compared every event with every bucket)."""
    with_clause, table, where = _events(filters, params)
    rows = conn.execute(
        with_clause + f"SELECT {_bucket_of('ts', buckets)} AS bucket, sum(name = 'pageview'),"
        f" count(DISTINCT visitor_id) FROM {table} WHERE {where} GROUP BY 1 ORDER BY 1",
        params,
    ).fetchall()
    return [SeriesPoint(t=row[0], pageviews=row[1], visitors=row[2]) for row in rows]


def _bucket_of(column: str, starts: list[int]) -> str:
    """SQL for the last of the sorted `starts` at or before `column` (the first if none)."""
    if len(starts) == 1:
        return str(int(starts[0]))
    middle = len(starts) // 2
    return (
        f"CASE WHEN {column} < {int(starts[middle])} THEN {_bucket_of(column, starts[:middle])}"
        f" ELSE {_bucket_of(column, starts[middle:])} END"
    )


def _pages(
    conn: sqlite3.Connection, site: int, start: int, end: int, limit: int, filters: tuple,
    order: str,
) -> list[sqlite3.Row]:  # fmt: skip
    params = params_for(site, start, end, limit=limit)
    with_clause, table, where = _events(filters, params)
    return conn.execute(
        with_clause + "SELECT path, count(*) AS views, count(DISTINCT visitor_id) AS people"
        f" FROM {table} WHERE {where} AND name = 'pageview'"
        f" GROUP BY path ORDER BY {order}, path LIMIT :limit",
        params,
    ).fetchall()


def top_pages(
    conn: sqlite3.Connection, site: int, start: int, end: int, limit: int, filters: tuple
) -> list[PageRow]:
    rows = _pages(conn, site, start, end, limit, filters, "views DESC, people DESC")
    return [PageRow(path=row[0], pageviews=row[1], visitors=row[2]) for row in rows]


def breakdown(
    conn: sqlite3.Connection, site: int, start: int, end: int, prop: str, limit: int,
    filters: tuple,
) -> list[BreakdownRow]:  # fmt: skip
    if prop == "page":
        rows = _pages(conn, site, start, end, limit, filters, "people DESC, views DESC")
        return [BreakdownRow(row[0], visitors=row[2], pageviews=row[1], events=0) for row in rows]
    params = params_for(site, start, end, limit=limit)
    if prop == "event":
        with_clause, table, where = _events(filters, params)
        rows = conn.execute(
            with_clause + "SELECT name, count(DISTINCT visitor_id) AS people, count(*) AS n"
            f" FROM {table} WHERE {where} AND name <> 'pageview'"
            " GROUP BY name ORDER BY people DESC, n DESC, name LIMIT :limit",
            params,
        ).fetchall()
        return [BreakdownRow(row[0], visitors=row[1], pageviews=0, events=row[2]) for row in rows]
    if prop not in VISIT_COLUMNS:  # the name goes into the SQL
        raise ValueError(f"not a visit property: {prop!r}")
    column = prop
    skip_empty = f" WHERE {column} <> ''" if prop in OMIT_EMPTY else ""
    rows = conn.execute(
        selected(filters, params)
        + f"SELECT {column}, count(DISTINCT visitor_id) AS people, sum(views) AS views,"
        f" sum(custom) FROM selected{skip_empty}"
        f" GROUP BY {column} ORDER BY people DESC, views DESC, {column} LIMIT :limit",
        params,
    ).fetchall()
    return [
        BreakdownRow(row[0] or UNKNOWN, visitors=row[1], pageviews=row[2], events=row[3])
        for row in rows
    ]


def event_properties(
    conn: sqlite3.Connection, site: int, start: int, end: int, event: str, limit: int,
    filters: tuple,
) -> list[BreakdownRow]:  # fmt: skip
    params = params_for(site, start, end, event=event, limit=limit)
    with_clause, table, where = _events(filters, params, "e")
    rows = conn.execute(
        with_clause
        + "SELECT prop.key || ': ' || prop.value AS pair, count(DISTINCT e.visitor_id) AS people,"
        f" count(*) AS n FROM {table} e, json_each(e.props) AS prop"
        f" WHERE {where} AND e.name = :event"
        " GROUP BY pair ORDER BY people DESC, n DESC, pair LIMIT :limit",
        params,
    ).fetchall()
    return [BreakdownRow(row[0], visitors=row[1], pageviews=0, events=row[2]) for row in rows]


def latest_event_time(conn: sqlite3.Connection, site: int) -> float | None:
    return conn.execute("SELECT max(ts) FROM events WHERE site_id = ?", (site,)).fetchone()[0]
