"""Stats from raw events and the visits table: exact, for any filter (a visit segment).

Filters select visits by their attributes, or by containing a pageview/custom event in the
range. Event counts (pageviews, events, visitors, pages, time series) are the range's events
of the selected visits; visit counts (sessions, bounces, durations, visit properties) are the
selected visits that started in the range. Text is ordered byte-wise (COLLATE "C"), as the
embedded SQLite store orders it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from appliance.core.filters import Filter
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from plugins.store_postgres.rollups import VISIT_PROPERTIES

# Without a value these rows mean "not tagged" and are left out of breakdowns.
OMIT_EMPTY = {"referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
              "entry_page", "exit_page"}  # fmt: skip
UNKNOWN = "Unknown"


def visit_conditions(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """A predicate on visit `v` keeping the visits that match every filter."""
    conditions = ["true"]
    for index, item in enumerate(filters):
        key = f"filter{index}"
        params[key] = item.value
        if item.property in VISIT_PROPERTIES:
            operator = "=" if item.operator == "==" else "<>"
            conditions.append(f"v.{item.property} {operator} %({key})s")
            continue
        kind = "x.name = 'pageview' AND x.path" if item.property == "page" else "x.name"
        negate = "" if item.operator == "==" else "NOT "
        conditions.append(
            f"v.visit_id {negate}IN (SELECT x.visit_id FROM events x WHERE x.site_id = %(site)s"
            f" AND x.ts >= %(start)s AND x.ts < %(end)s AND {kind} = %({key})s)"
        )
    return " AND ".join(conditions)


def event_source(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """`FROM ... WHERE ...` over the range's events `e` of the selected visits."""
    where = "e.site_id = %(site)s AND e.ts >= %(start)s AND e.ts < %(end)s"
    if not filters:
        return f"FROM events e WHERE {where}"
    conditions = visit_conditions(filters, params)
    return f"FROM events e JOIN visits v ON v.visit_id = e.visit_id WHERE {where} AND {conditions}"


def visit_source(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """`FROM ... WHERE ...` over the selected visits `v` that started in the range."""
    conditions = visit_conditions(filters, params)
    return (
        "FROM visits v WHERE v.site_id = %(site)s AND v.first_ts >= %(start)s"
        f" AND v.first_ts < %(end)s AND {conditions}"
    )


def _params(site: int, start: int, end: int, **extra: Any) -> dict[str, Any]:
    return {"site": site, "start": start, "end": end, **extra}


def kpis(conn: psycopg.Connection, site: int, start: int, end: int, filters: tuple) -> Kpis:
    params = _params(site, start, end)
    events = event_source(filters, params)
    visits = visit_source(filters, params)
    row = conn.execute(
        "SELECT * FROM"
        " (SELECT count(*) FILTER (WHERE e.name = 'pageview'),"
        f" count(*) FILTER (WHERE e.name <> 'pageview'), count(DISTINCT e.visitor_id) {events}) ev,"
        " (SELECT count(*), count(*) FILTER (WHERE v.pageviews <= 1),"
        f" coalesce(sum(v.last_ts - v.first_ts), 0) {visits}) vi",
        params,
    ).fetchone()
    assert row is not None
    pageviews, custom, visitors, sessions, bounces, duration = row
    return make_kpis(pageviews, custom, visitors, sessions, bounces, duration)


def make_kpis(
    pageviews: int, events: int, visitors: int, sessions: int, bounces: int, duration: float
) -> Kpis:
    sessions, bounces, duration = int(sessions), int(bounces), float(duration)
    return Kpis(
        pageviews=int(pageviews),
        visitors=int(visitors),
        sessions=int(sessions),
        events=int(events),
        bounce_rate=round(bounces / sessions, 4) if sessions else 0.0,
        avg_duration_s=round(duration / sessions, 1) if sessions else 0.0,
    )


def timeseries(
    conn: psycopg.Connection, site: int, buckets: list[int], end: int, filters: tuple
) -> list[SeriesPoint]:
    if not buckets:
        return []
    params = _params(site, buckets[0], end, buckets=buckets)
    rows = conn.execute(
        # width_bucket: buckets may differ in length (local days around DST changes).
        "SELECT width_bucket(e.ts, %(buckets)s::float8[]) AS i,"
        " count(*) FILTER (WHERE e.name = 'pageview'), count(DISTINCT e.visitor_id)"
        f" {event_source(filters, params)} GROUP BY i ORDER BY i",
        params,
    ).fetchall()
    return [SeriesPoint(buckets[i - 1], pageviews, visitors) for i, pageviews, visitors in rows]


def _pages(
    conn: psycopg.Connection, site: int, start: int, end: int, limit: int, filters: tuple,
    order: str,
) -> list[tuple[str, int, int]]:  # fmt: skip
    params = _params(site, start, end, limit=limit)
    return conn.execute(
        "SELECT e.path, count(*) AS views, count(DISTINCT e.visitor_id) AS people"
        f" {event_source(filters, params)} AND e.name = 'pageview'"
        f' GROUP BY e.path ORDER BY {order}, e.path COLLATE "C" LIMIT %(limit)s',
        params,
    ).fetchall()


def top_pages(
    conn: psycopg.Connection, site: int, start: int, end: int, limit: int, filters: tuple
) -> list[PageRow]:
    rows = _pages(conn, site, start, end, limit, filters, "views DESC, people DESC")
    return [PageRow(path, views, people) for path, views, people in rows]


def breakdown(
    conn: psycopg.Connection, site: int, start: int, end: int, prop: str, limit: int,
    filters: tuple,
) -> list[BreakdownRow]:  # fmt: skip
    if prop == "page":
        rows = _pages(conn, site, start, end, limit, filters, "people DESC, views DESC")
        return [BreakdownRow(path, people, views, 0) for path, views, people in rows]
    params = _params(site, start, end, limit=limit)
    if prop == "event":
        found = conn.execute(
            "SELECT e.name, count(DISTINCT e.visitor_id) AS people, count(*) AS n"
            f" {event_source(filters, params)} AND e.name <> 'pageview'"
            ' GROUP BY e.name ORDER BY people DESC, n DESC, e.name COLLATE "C" LIMIT %(limit)s',
            params,
        ).fetchall()
        return [BreakdownRow(name, people, 0, n) for name, people, n in found]
    skip_empty = f" AND v.{prop} <> ''" if prop in OMIT_EMPTY else ""
    found = conn.execute(
        f"SELECT v.{prop} AS value, count(DISTINCT v.visitor_id) AS people,"
        f" sum(v.pageviews) AS views, sum(v.events) {visit_source(filters, params)}{skip_empty}"
        f' GROUP BY 1 ORDER BY people DESC, views DESC, v.{prop} COLLATE "C" LIMIT %(limit)s',
        params,
    ).fetchall()
    return [
        BreakdownRow(value or UNKNOWN, people, int(views), int(custom))
        for value, people, views, custom in found
    ]


def event_properties(
    conn: psycopg.Connection, site: int, start: int, end: int, event: str, limit: int,
    filters: tuple,
) -> list[BreakdownRow]:  # fmt: skip
    params = _params(site, start, end, event=event, limit=limit)
    rows = conn.execute(
        """SELECT (prop.key || ': ' || prop.value) COLLATE "C" AS pair,"""
        " count(DISTINCT c.visitor_id) AS people, count(*) AS n"
        f" FROM (SELECT e.visitor_id, e.props {event_source(filters, params)}"
        " AND e.name = %(event)s) AS c CROSS JOIN LATERAL jsonb_each_text(c.props) AS prop"
        " GROUP BY pair ORDER BY people DESC, n DESC, pair LIMIT %(limit)s",
        params,
    ).fetchall()
    return [BreakdownRow(pair, people, 0, n) for pair, people, n in rows]
