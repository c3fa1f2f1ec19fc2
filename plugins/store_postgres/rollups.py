"""The SQL that folds a flush into the hour and day rollups, one statement per table.

Each statement groups the flush's rows by hour once, upserts those hour rows, and derives
the day rows from the hour groups (so the rows are grouped once, not once per width). Counts
are added on conflict; visitor sketches are unioned.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.visits import ATTRIBUTES
from plugins.store_postgres.sketches import ADD_VISITOR, Sketches

VISIT_PROPERTIES = ("entry_page", "exit_page", *ATTRIBUTES)
# A visit counts once per property, plus once in the row of all visits ('*').
_PROPERTY_ROWS = ", ".join(["('*', '')"] + [f"('{name}', c.{name})" for name in VISIT_PROPERTIES])


@dataclass(frozen=True, slots=True)
class Fold:
    table: str
    keys: tuple[tuple[str, str], ...]  # (column, expression) besides site_id and the bucket
    counters: tuple[tuple[str, str], ...]  # (column, expression), added on conflict
    visitor: str  # the visitor id expression (sketches), with an optional FILTER
    source: str  # FROM ... [WHERE ...]
    time: str  # the expression whose hour is the bucket


def _statement(fold: Fold, sketches: Sketches, prefix: str = "", result: str = "") -> str:
    """The fold as one statement; with `result` (a SELECT), the day rows are upserted in a
    CTE too and the statement answers `result` (a data-modifying CTE always runs)."""
    keys = [column for column, _ in fold.keys]
    counters = [column for column, _ in fold.counters]
    hour_select = [f"{expr} AS {column}" for column, expr in fold.keys + fold.counters]
    day_select = keys + [f"sum({column})" for column in counters]
    update = [f"{column} = r.{column} + excluded.{column}" for column in counters]
    if sketches.enabled:
        hour_select.append(f"{fold.visitor} AS visitors")
        day_select.append("hll_union_agg(visitors)")
        counters = [*counters, "visitors"]
        # hll_union is strict: a side without a sketch (a page with no view yet) keeps the other.
        update.append(
            "visitors = coalesce(hll_union(r.visitors, excluded.visitors), r.visitors,"
            " excluded.visitors)"
        )
    columns = ", ".join(["site_id", "width", "bucket", *keys, *counters])
    conflict = f"ON CONFLICT ({', '.join(['site_id', 'width', 'bucket', *keys])})"
    if fold.table == "rollup_visit":  # its key puts the property before the time
        conflict = "ON CONFLICT (site_id, property, width, bucket, value)"
    group = ", ".join(str(n) for n in range(1, len(fold.keys) + 3))
    hours = (
        f"hours AS (SELECT site_id, (floor({fold.time} / 3600) * 3600)::bigint AS bucket,"
        f" {', '.join(hour_select)} {fold.source} GROUP BY {group})"
    )
    upsert = f"{conflict} DO UPDATE SET {', '.join(update)}"
    days = (
        f"INSERT INTO {fold.table} AS r ({columns})"
        f" SELECT site_id, 86400, bucket / 86400 * 86400, {', '.join(day_select)}"
        f" FROM hours GROUP BY site_id, bucket / 86400 * 86400{''.join(f', {k}' for k in keys)}"
        f" {upsert}"
    )
    return (
        f"WITH {prefix}{hours},"
        f" into_hours AS (INSERT INTO {fold.table} AS r ({columns})"
        f" SELECT site_id, 3600, bucket, {', '.join(keys + counters)} FROM hours {upsert})"
        + (f", into_days AS ({days}) {result}" if result else f" {days}")
    )


# An event's props as "key: value" rows (`kv`); events without props have none.
PROPS = "CROSS JOIN LATERAL jsonb_each_text(e.props) AS kv"
PAIR = "kv.key || ': ' || kv.value"

_EVENT_COUNTS = (
    ("pageviews", "count(*) FILTER (WHERE e.name = 'pageview')"),
    ("events", "count(*) FILTER (WHERE e.name <> 'pageview')"),
)


def fold_events(sketches: Sketches) -> list[str]:
    """Statements folding `batch_events` into rollup_site, _page, _event and _prop (only the
    events with props are expanded: calling jsonb_each_text on 20,000 empty ones cost 15 ms
    a flush)."""
    visitor = ADD_VISITOR.format("e.visitor_id")
    # A page's visitors are those who viewed it: its custom events count, their senders don't.
    viewer = f"{visitor} FILTER (WHERE e.name = 'pageview')"
    folds = [
        Fold("rollup_site", (), _EVENT_COUNTS, visitor, "FROM batch_events e", "e.ts"),
        Fold("rollup_page", (("path", "e.path"),), _EVENT_COUNTS, viewer,
             "FROM batch_events e", "e.ts"),
        Fold("rollup_event", (("name", "e.name"),), (("events", "count(*)"),), visitor,
             "FROM batch_events e WHERE e.name <> 'pageview'", "e.ts"),
        Fold("rollup_prop", (("name", "e.name"), ("pair", PAIR)), (("events", "count(*)"),),
             visitor, f"FROM batch_events e {PROPS} WHERE e.props <> '{{}}'", "e.ts"),
    ]  # fmt: skip
    return [_statement(fold, sketches) for fold in folds]


def close_visits(sketches: Sketches) -> str:
    """Mark the visits their site has moved past closed and add them to rollup_visit, by the
    hour they started, once per property. Parameters: site ids, cutoffs (epoch seconds).
    Answers (site_id, session_id, visit_id) of each visit closed.

    The visits to close are found per site in the `visits_open` index (OFFSET 0 keeps the
    lateral subquery parameterized): joined on site alone, the planner scanned every open
    visit on every flush, which grew with the table (0.5 s a flush at 660k open visits).
    The index is by start (so extending a visit is a HOT update, migration 0004):
    first_ts < cutoff, implied by last_ts < cutoff, bounds the scan."""
    closing = (
        "closing AS (UPDATE visits v SET closed = true WHERE v.visit_id = ANY(ARRAY("
        "SELECT o.visit_id FROM unnest(%s::bigint[], %s::float8[]) AS k(site_id, cutoff)"
        " CROSS JOIN LATERAL (SELECT visit_id FROM visits WHERE site_id = k.site_id"
        " AND NOT closed AND first_ts < k.cutoff AND last_ts < k.cutoff OFFSET 0) AS o))"
        " RETURNING v.*), "
    )
    fold = Fold(
        "rollup_visit",
        (("property", "p.property"), ("value", "p.value")),
        (
            ("visits", "count(*)"),
            ("pageviews", "sum(c.pageviews)"),
            ("events", "sum(c.events)"),
            ("bounces", "count(*) FILTER (WHERE c.pageviews <= 1)"),
            ("duration_s", "sum(c.last_ts - c.first_ts)"),
        ),
        ADD_VISITOR.format("c.visitor_id"),
        f"FROM closing c CROSS JOIN LATERAL (VALUES {_PROPERTY_ROWS}) AS p(property, value)",
        "c.first_ts",
    )
    result = "SELECT site_id, session_id, visit_id FROM closing"
    return _statement(fold, sketches, prefix=closing, result=result)
