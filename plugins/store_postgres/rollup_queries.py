"""Unfiltered stats from the hour/day rollups and their visitor sketches (hll).

A range is cut into whole days, whole hours and partial hours (spans.py); rollup rows answer
the first two, raw rows the rest, and the sketches of all pieces are unioned, so unique
visitors stay within about 1 % over any range. Visit figures come from rollup_visit (closed
visits, by the hour they started) plus the visits still open, read from the visits table.
Rows are ranked by sums first and sketches are unioned only for the values that can be shown
(top_values.py). Orders and ties match segment_queries, which answers exactly.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import psycopg

from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from plugins.store_postgres import spans
from plugins.store_postgres.rollups import PAIR, PROPS
from plugins.store_postgres.segment_queries import OMIT_EMPTY, UNKNOWN, make_kpis
from plugins.store_postgres.sketches import ADD_VISITOR, UNION, cardinality
from plugins.store_postgres.top_values import ties_included, top_by_visitors

PIECES = (
    "WITH p AS (SELECT * FROM unnest(%(t)s::bigint[], %(width)s::int[], %(lo)s::bigint[],"
    " %(hi)s::bigint[]) AS p(t, width, lo, hi))"
)
PEOPLE = cardinality(UNION.format("visitors"))
ALL_VISITS = " AND r.property = '*'"  # rollup_visit's row of every visit


def _in_pieces(table: str, where: str = "") -> str:
    """The rows of rollup `table` (alias r) inside the day/hour pieces, by index range."""
    return (
        f"p CROSS JOIN LATERAL (SELECT * FROM {table} r WHERE r.site_id = %(site)s"
        f" AND r.width = p.width AND r.bucket >= p.lo AND r.bucket < p.hi{where}) r"
        " WHERE p.width > 0"
    )


def _raw_events(where: str = "", join: str = "") -> str:
    """The raw events (alias e) inside the partial-hour pieces."""
    return (
        "p CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.site_id = %(site)s"
        f" AND e.ts >= p.lo AND e.ts < p.hi{where}) e {join} WHERE p.width = 0"
    )


def _params(site: int, buckets: list[int], end: int, **extra: Any) -> dict[str, Any]:
    return {"site": site, **spans.for_buckets(buckets, end)._asdict(), **extra}


def _live_visits(start: int, end: int, params: dict[str, Any]) -> str:
    """`FROM ... WHERE ...` over the visits not in rollup_visit: open ones started in the
    range, closed ones started in its partial hours."""
    conditions = ["NOT v.closed AND v.first_ts >= %(start)s AND v.first_ts < %(end)s"]
    params.update(start=start, end=end)
    for index, piece in enumerate(spans.split(start, end)):
        if piece.width == spans.RAW:
            params[f"raw{index}_lo"], params[f"raw{index}_hi"] = piece.start, piece.end
            conditions.append(
                f"v.closed AND v.first_ts >= %(raw{index}_lo)s AND v.first_ts < %(raw{index}_hi)s"
            )
    ored = " OR ".join(f"({condition})" for condition in conditions)
    return f"FROM visits v WHERE v.site_id = %(site)s AND ({ored})"


def _site_series(
    conn: psycopg.Connection, site: int, buckets: list[int], end: int
) -> list[tuple[int, int, int, int]]:
    """(bucket, pageviews, events, visitors) for the buckets that have events.

    A bucket that is exactly one rollup row (an hour, a UTC day) reads that row's count
    straight from its sketch; only the others need a union (mostly the first and last).
    """
    pieces = spans.for_buckets(buckets, end)
    whole, split = spans.Pieces([], [], [], []), spans.Pieces([], [], [], [])
    counts = Counter(pieces.t)
    for t, width, lo, hi in zip(*pieces, strict=True):
        target = whole if counts[t] == 1 and hi - lo == width else split
        for column, value in zip(target, (t, width, lo, hi), strict=True):
            column.append(value)
    rows = []
    if whole.t:
        rows += conn.execute(
            f"{PIECES} SELECT p.t, r.pageviews, r.events, {cardinality('r.visitors')}"
            " FROM p JOIN rollup_site r ON r.site_id = %(site)s AND r.width = p.width"
            " AND r.bucket = p.lo",
            {"site": site, **whole._asdict()},
        ).fetchall()
    if split.t:
        rows += conn.execute(
            f"{PIECES}, parts AS ("
            f" SELECT p.t, r.pageviews, r.events, r.visitors FROM {_in_pieces('rollup_site')}"
            " UNION ALL SELECT p.t, count(*) FILTER (WHERE e.name = 'pageview'),"
            f" count(*) FILTER (WHERE e.name <> 'pageview'), {ADD_VISITOR.format('e.visitor_id')}"
            f" FROM {_raw_events()} GROUP BY p.t)"
            f" SELECT t, sum(pageviews)::bigint, sum(events)::bigint, {PEOPLE}"
            " FROM parts GROUP BY t",
            {"site": site, **split._asdict()},
        ).fetchall()
    return sorted(rows)


def kpis(conn: psycopg.Connection, site: int, start: int, end: int) -> Kpis:
    series = _site_series(conn, site, [start], end)
    _, pageviews, events, visitors = series[0] if series else (start, 0, 0, 0)
    params = _params(site, [start], end)
    row = conn.execute(
        f"{PIECES}, parts AS ("
        " SELECT r.visits, r.bounces, r.duration_s"
        f" FROM {_in_pieces('rollup_visit', ALL_VISITS)}"
        " UNION ALL SELECT count(*), count(*) FILTER (WHERE v.pageviews <= 1),"
        f" coalesce(sum(v.last_ts - v.first_ts), 0) {_live_visits(start, end, params)})"
        " SELECT coalesce(sum(visits), 0)::bigint, coalesce(sum(bounces), 0)::bigint,"
        " coalesce(sum(duration_s), 0) FROM parts",
        params,
    ).fetchone()
    assert row is not None
    sessions, bounces, duration = row
    return make_kpis(pageviews, events, visitors, sessions, bounces, duration)


def timeseries(
    conn: psycopg.Connection, site: int, buckets: list[int], end: int
) -> list[SeriesPoint]:
    if not buckets:
        return []
    series = _site_series(conn, site, buckets, end)
    return [SeriesPoint(t, pageviews, people) for t, pageviews, _, people in series]


# --- pages and custom events ------------------------------------------------------------


def _page_views(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, int]:
    rows = conn.execute(
        f"{PIECES}, parts AS ("
        f" SELECT r.path, r.pageviews FROM {_in_pieces('rollup_page')}"
        f" UNION ALL SELECT e.path, count(*) FROM {_raw_events()}"
        " AND e.name = 'pageview' GROUP BY e.path)"
        " SELECT path, sum(pageviews)::bigint FROM parts GROUP BY path"
        " HAVING sum(pageviews) > 0",
        params,
    ).fetchall()
    return dict(rows)


def _page_viewers(conn: psycopg.Connection, params: dict[str, Any], paths: list[str]) -> dict:
    if not paths:
        return {}
    rows = conn.execute(
        f"{PIECES}, parts AS ("
        " SELECT r.path, r.visitors"
        f" FROM {_in_pieces('rollup_page', ' AND r.path = ANY(%(paths)s)')}"
        f" UNION ALL SELECT e.path, {ADD_VISITOR.format('e.visitor_id')}"
        f" FROM {_raw_events(' AND e.path = ANY(%(paths)s)')} AND e.name = 'pageview'"
        f" GROUP BY e.path) SELECT path, {PEOPLE} FROM parts GROUP BY path",
        params | {"paths": paths},
    ).fetchall()
    return dict(rows)


def top_pages(
    conn: psycopg.Connection, site: int, start: int, end: int, limit: int
) -> list[PageRow]:
    """By pageviews: only the pages that can be shown (ties included) need their sketches."""
    params = _params(site, [start], end)
    views = _page_views(conn, params)
    shown = ties_included(views, limit)
    people = _page_viewers(conn, params, shown)
    shown.sort(key=lambda path: (-views[path], -people.get(path, 0), path))
    return [PageRow(path, views[path], people.get(path, 0)) for path in shown[:limit]]


def _by_visitors(
    bounds: dict[str, int], limit: int, views: dict[str, int], count: Any
) -> list[tuple[str, int]]:
    """The `limit` best values by visitors, then `views`, then value (bytewise)."""
    return top_by_visitors(
        bounds, limit, count, lambda value, people: (-people, -views[value], value)
    )


def _pages_by_visitors(
    conn: psycopg.Connection, site: int, start: int, end: int, limit: int
) -> list[BreakdownRow]:
    params = _params(site, [start], end)
    views = _page_views(conn, params)
    shown = _by_visitors(views, limit, views, lambda paths: _page_viewers(conn, params, paths))
    return [BreakdownRow(path, people, views[path], 0) for path, people in shown]


def _events(
    conn: psycopg.Connection, site: int, start: int, end: int, limit: int
) -> list[BreakdownRow]:
    params = _params(site, [start], end)
    counts = dict(
        conn.execute(
            f"{PIECES}, parts AS ("
            f" SELECT r.name, r.events FROM {_in_pieces('rollup_event')}"
            f" UNION ALL SELECT e.name, count(*) FROM {_raw_events()}"
            " AND e.name <> 'pageview' GROUP BY e.name)"
            " SELECT name, sum(events)::bigint FROM parts GROUP BY name",
            params,
        ).fetchall()
    )

    def count(names: list[str]) -> dict[str, int]:
        rows = conn.execute(
            f"{PIECES}, parts AS ("
            " SELECT r.name, r.visitors"
            f" FROM {_in_pieces('rollup_event', ' AND r.name = ANY(%(names)s)')}"
            f" UNION ALL SELECT e.name, {ADD_VISITOR.format('e.visitor_id')}"
            f" FROM {_raw_events(' AND e.name = ANY(%(names)s)')} GROUP BY e.name)"
            f" SELECT name, {PEOPLE} FROM parts GROUP BY name",
            params | {"names": names},
        ).fetchall()
        return dict(rows)

    shown = _by_visitors(counts, limit, counts, count)
    return [BreakdownRow(name, people, 0, counts[name]) for name, people in shown]


# --- visit properties -------------------------------------------------------------------


def breakdown(
    conn: psycopg.Connection, site: int, start: int, end: int, prop: str, limit: int
) -> list[BreakdownRow]:
    if prop == "page":
        return _pages_by_visitors(conn, site, start, end, limit)
    if prop == "event":
        return _events(conn, site, start, end, limit)
    params = _params(site, [start], end, prop=prop)
    live = _live_visits(start, end, params)
    skip_empty = "WHERE value <> ''" if prop in OMIT_EMPTY else ""
    sums = conn.execute(
        f"{PIECES}, parts AS ("
        " SELECT r.value, r.visits, r.pageviews, r.events"
        f" FROM {_in_pieces('rollup_visit', ' AND r.property = %(prop)s')}"
        f" UNION ALL SELECT v.{prop}, count(*), sum(v.pageviews), sum(v.events) {live}"
        f" GROUP BY 1) SELECT value, sum(visits)::bigint, sum(pageviews)::bigint,"
        f" sum(events)::bigint FROM parts {skip_empty} GROUP BY value",
        params,
    ).fetchall()
    visits = {value: n for value, n, _, _ in sums}
    views = {value: pageviews for value, _, pageviews, _ in sums}
    custom = {value: events for value, _, _, events in sums}

    chosen = " AND r.property = %(prop)s AND r.value = ANY(%(values)s)"

    def count(values: list[str]) -> dict[str, int]:
        rows = conn.execute(
            f"{PIECES}, parts AS ("
            f" SELECT r.value, r.visitors FROM {_in_pieces('rollup_visit', chosen)}"
            f" UNION ALL SELECT v.{prop}, {ADD_VISITOR.format('v.visitor_id')} {live}"
            f" AND v.{prop} = ANY(%(values)s) GROUP BY 1)"
            f" SELECT value, {PEOPLE} FROM parts GROUP BY value",
            params | {"values": values},
        ).fetchall()
        return dict(rows)

    shown = _by_visitors(visits, limit, views, count)
    return [
        BreakdownRow(value or UNKNOWN, people, views[value], custom[value])
        for value, people in shown
    ]


def event_properties(
    conn: psycopg.Connection, site: int, start: int, end: int, event: str, limit: int
) -> list[BreakdownRow]:
    """The custom event's "key: value" props, from rollup_prop, ranked like breakdowns."""
    params = _params(site, [start], end, event=event)
    raw_pairs = _raw_events(" AND e.name = %(event)s", PROPS)
    counts = dict(
        conn.execute(
            f"{PIECES}, parts AS ("
            f" SELECT r.pair, r.events FROM {_in_pieces('rollup_prop', ' AND r.name = %(event)s')}"
            f" UNION ALL SELECT {PAIR}, count(*) FROM {raw_pairs} GROUP BY 1)"
            " SELECT pair, sum(events)::bigint FROM parts GROUP BY pair",
            params,
        ).fetchall()
    )
    chosen = " AND r.name = %(event)s AND r.pair = ANY(%(pairs)s)"

    def count(pairs: list[str]) -> dict[str, int]:
        rows = conn.execute(
            f"{PIECES}, parts AS ("
            f" SELECT r.pair, r.visitors FROM {_in_pieces('rollup_prop', chosen)}"
            f" UNION ALL SELECT {PAIR}, {ADD_VISITOR.format('e.visitor_id')} FROM {raw_pairs}"
            f" AND {PAIR} = ANY(%(pairs)s) GROUP BY 1)"
            f" SELECT pair, {PEOPLE} FROM parts GROUP BY pair",
            params | {"pairs": pairs},
        ).fetchall()
        return dict(rows)

    shown = _by_visitors(counts, limit, counts, count)
    return [BreakdownRow(pair, people, 0, counts[pair]) for pair, people in shown]
