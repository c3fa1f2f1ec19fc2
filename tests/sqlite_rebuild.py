"""The embedded store's stats as they were before the visits table (migration 0003): visits
rebuilt from the range's raw events per query. Kept as the oracle the new queries must match.

Visit attributes come from the visit's first event; SQLite's documented "bare column"
rule (a column beside a lone MIN()/MAX() aggregate takes the value of that row) picks them.
"""

from __future__ import annotations

import bisect
import sqlite3
from typing import Any

from appliance.core.filters import Filter
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint

VISIT_GAP_S = 1800
SCREEN_CLASS = (
    "CASE WHEN screen_width = 0 THEN '' WHEN screen_width < 576 THEN 'Mobile'"
    " WHEN screen_width < 992 THEN 'Tablet' WHEN screen_width < 1440 THEN 'Laptop'"
    " ELSE 'Desktop' END"
)
# property -> column of the `visits` CTE
VISIT_COLUMNS = {
    "entry_page": "entry_page", "exit_page": "exit_page", "source": "source",
    "referrer": "referrer", "utm_source": "utm_source", "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign", "utm_term": "utm_term", "utm_content": "utm_content",
    "country": "country", "browser": "browser", "os": "os", "device": "device",
    "screen": "screen",
}  # fmt: skip
# Without a value these rows mean "not tagged" and are left out of breakdowns.
OMIT_EMPTY = {"referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
              "entry_page", "exit_page"}  # fmt: skip
UNKNOWN = "Unknown"

_VISITS = f"""
WITH ranged AS (
    SELECT rowid AS rid, session_id, ts, name, path, visitor_id, referrer_source, referrer,
           utm_source,
           utm_medium, utm_campaign, utm_term, utm_content, country, browser, os, device,
           screen_width, LAG(ts) OVER (PARTITION BY session_id ORDER BY ts) AS prev_ts
    FROM events WHERE site_id = :site AND ts >= :start AND ts < :end
),
tagged AS MATERIALIZED (
    SELECT *, session_id || '#' || SUM(prev_ts IS NULL OR ts - prev_ts > {VISIT_GAP_S})
              OVER (PARTITION BY session_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS visit
    FROM ranged
),
firsts AS (
    SELECT visit, MIN(ts) AS first_ts, visitor_id, referrer_source AS source, referrer,
           utm_source, utm_medium, utm_campaign, utm_term, utm_content, country, browser, os,
           device, {SCREEN_CLASS} AS screen
    FROM tagged GROUP BY visit
),
entries AS (
    SELECT visit, MIN(ts), path AS entry_page FROM tagged WHERE name = 'pageview' GROUP BY visit
),
exits AS (
    SELECT visit, MAX(ts), path AS exit_page FROM tagged WHERE name = 'pageview' GROUP BY visit
),
totals AS (
    SELECT visit, MAX(ts) - MIN(ts) AS duration, SUM(name = 'pageview') AS views,
           SUM(name <> 'pageview') AS custom
    FROM tagged GROUP BY visit
),
visits AS (
    SELECT firsts.*, coalesce(entries.entry_page, '') AS entry_page,
           coalesce(exits.exit_page, '') AS exit_page, duration, views, custom
    FROM firsts JOIN totals USING (visit)
    LEFT JOIN entries USING (visit) LEFT JOIN exits USING (visit)
)"""


def _segment(filters: tuple[Filter, ...], params: dict[str, Any]) -> str:
    """`, selected AS (...)` keeping the visits that match every filter."""
    conditions = []
    for index, item in enumerate(filters):
        key = f"filter{index}"
        params[key] = item.value
        if item.property in VISIT_COLUMNS:
            operator = "=" if item.operator == "==" else "<>"
            conditions.append(f"{VISIT_COLUMNS[item.property]} {operator} :{key}")
        else:
            kind = "name = 'pageview' AND path" if item.property == "page" else "name"
            negate = "" if item.operator == "==" else "NOT "
            conditions.append(f"visit {negate}IN (SELECT visit FROM tagged WHERE {kind} = :{key})")
    where = " AND ".join(conditions) or "1"
    return f", selected AS (SELECT * FROM visits WHERE {where})"


def _in_segment(filters: tuple[Filter, ...]) -> str:
    return " AND visit IN (SELECT visit FROM selected)" if filters else ""


def _run(
    conn: sqlite3.Connection, site: int, start: int, end: int, filters: tuple[Filter, ...],
    query: str, **extra: Any,
) -> list[sqlite3.Row]:  # fmt: skip
    params: dict[str, Any] = {"site": site, "start": start, "end": end, **extra}
    sql = _VISITS + _segment(filters, params) + "\n" + query
    return conn.execute(sql, params).fetchall()


def kpis(conn: sqlite3.Connection, site: int, start: int, end: int, filters: tuple) -> Kpis:
    [row] = _run(
        conn, site, start, end, filters,
        "SELECT coalesce(sum(views), 0), coalesce(sum(custom), 0), count(DISTINCT visitor_id),"
        " count(*), coalesce(sum(views <= 1), 0), coalesce(avg(duration), 0.0) FROM selected",
    )  # fmt: skip
    pageviews, events, visitors, sessions, bounces, duration = row
    return Kpis(
        pageviews=pageviews,
        visitors=visitors,
        sessions=sessions,
        events=events,
        bounce_rate=round(bounces / sessions, 4) if sessions else 0.0,
        avg_duration_s=round(float(duration), 1),
    )


def timeseries(
    conn: sqlite3.Connection, site: int, buckets: list[int], end: int, filters: tuple
) -> list[SeriesPoint]:
    if not buckets:
        return []

    def bucket_of(ts: float) -> int:
        return buckets[bisect.bisect_right(buckets, ts) - 1]

    # Buckets may differ in length (local days), so a bisect beats arithmetic here.
    conn.create_function("bucket_of", 1, bucket_of, deterministic=True)
    rows = _run(
        conn, site, buckets[0], end, filters,
        "SELECT bucket_of(ts) AS t, sum(name = 'pageview'), count(DISTINCT visitor_id)"
        f" FROM tagged WHERE 1{_in_segment(filters)} GROUP BY t ORDER BY t",
    )  # fmt: skip
    return [SeriesPoint(t=row[0], pageviews=row[1], visitors=row[2]) for row in rows]


def _pages(
    conn: sqlite3.Connection, site: int, start: int, end: int, limit: int, filters: tuple,
    order: str,
) -> list[sqlite3.Row]:  # fmt: skip
    return _run(
        conn, site, start, end, filters,
        "SELECT path, count(*) AS views, count(DISTINCT visitor_id) AS people FROM tagged"
        f" WHERE name = 'pageview'{_in_segment(filters)}"
        f" GROUP BY path ORDER BY {order}, path LIMIT :limit",
        limit=limit,
    )  # fmt: skip


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
    if prop == "event":
        rows = _run(
            conn, site, start, end, filters,
            "SELECT name, count(DISTINCT visitor_id) AS people, count(*) AS n FROM tagged"
            f" WHERE name <> 'pageview'{_in_segment(filters)}"
            " GROUP BY name ORDER BY people DESC, n DESC, name LIMIT :limit",
            limit=limit,
        )  # fmt: skip
        return [BreakdownRow(row[0], visitors=row[1], pageviews=0, events=row[2]) for row in rows]
    column = VISIT_COLUMNS[prop]
    skip_empty = f" WHERE {column} <> ''" if prop in OMIT_EMPTY else ""
    rows = _run(
        conn, site, start, end, filters,
        f"SELECT {column}, count(DISTINCT visitor_id) AS people, sum(views) AS views,"
        f" sum(custom) FROM selected{skip_empty}"
        f" GROUP BY {column} ORDER BY people DESC, views DESC, {column} LIMIT :limit",
        limit=limit,
    )  # fmt: skip
    return [
        BreakdownRow(row[0] or UNKNOWN, visitors=row[1], pageviews=row[2], events=row[3])
        for row in rows
    ]


def event_properties(
    conn: sqlite3.Connection, site: int, start: int, end: int, event: str, limit: int,
    filters: tuple,
) -> list[BreakdownRow]:  # fmt: skip
    rows = _run(
        conn, site, start, end, filters,
        "SELECT prop.key || ': ' || prop.value AS pair,"
        " count(DISTINCT tagged.visitor_id) AS people,"
        " count(*) AS n FROM tagged JOIN events ON events.rowid = tagged.rid,"
        " json_each(events.props) AS prop"
        f" WHERE tagged.name = :event{_in_segment(filters)}"
        " GROUP BY pair ORDER BY people DESC, n DESC, pair LIMIT :limit",
        event=event, limit=limit,
    )  # fmt: skip
    return [BreakdownRow(row[0], visitors=row[1], pageviews=0, events=row[2]) for row in rows]


def latest_event_time(conn: sqlite3.Connection, site: int) -> float | None:
    return conn.execute("SELECT max(ts) FROM events WHERE site_id = ?", (site,)).fetchone()[0]
