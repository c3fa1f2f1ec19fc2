"""One processor flush in one transaction: positions, raw events, visits and rollups.

1. Lock the batch's (topic, partition) rows of `applied_positions` and keep only what lies
   past them (a redelivered batch changes nothing; an overlapping one adds only its new part).
2. Lock the batch's sites' visit tokens and assign the events to visits, continuing the
   open visits this process remembers (open_visits.py).
3. COPY the events, each tagged with its visit, into a transaction-local staging table.
4. Upsert the visits, insert the events into their monthly partitions, and fold the staged
   rows into the hour and day rollups with INSERT ... ON CONFLICT DO UPDATE.
5. Close the visits their site has moved past, adding them to rollup_visit.
6. Record the new last offsets and visit tokens. Any error rolls all of it back; the
   processor retries. The caller hands the returned `VisitsWritten` to its `OpenVisits`
   only once the transaction has committed.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import msgspec
import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from appliance.core import overlap
from appliance.core.aggregation import Batch
from appliance.core.transport import NOTHING_APPLIED, Position
from appliance.core.visits import ATTRIBUTES, VISIT_GAP_S
from plugins.store_postgres import partitions, rollups
from plugins.store_postgres.open_visits import OpenVisits, VisitsWritten
from plugins.store_postgres.sketches import Sketches
from plugins.store_postgres.visits import assign

# Events may arrive this much out of order (clocks of several ingest instances) and still
# extend a visit that looked finished.
CLOSE_MARGIN_S = 60

EVENT_COLUMNS = (
    "site_id", "ts", "visit_id", "event_id", "name", "path", "visitor_id", "session_id",
    "referrer", "referrer_source", "referrer_medium", "url", "title", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "browser", "os", "device",
    "country", "region", "screen_width", "screen_height", "props",
)  # fmt: skip
_event_fields = operator.attrgetter(*EVENT_COLUMNS[3:-1])  # read from the Event as they are
# Binary COPY: numbers and jsonb go as they are, not as text the server parses again.
EVENT_TYPES = ("int8", "float8", "int8", *["text"] * 20, "int4", "int4", "jsonb")
VISIT_COLUMNS = (
    "visit_id", "site_id", "session_id", "visitor_id", "first_ts", "last_ts", "pageviews",
    "events", "entry_ts", "entry_page", "exit_ts", "exit_page", *ATTRIBUTES,
)  # fmt: skip
VISIT_TYPES = (
    "int8", "int8", "text", "text", "float8", "float8", "int4", "int4", "float8", "text",
    "float8", "text", *["text"] * len(ATTRIBUTES),
)  # fmt: skip


class PropsDumper(Dumper):
    """An event's props as binary jsonb (version 1, then the JSON text)."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: object) -> bytes:
        return b"\x01" + msgspec.json.encode(obj) if obj else b"\x01{}"


def write(
    conn: psycopg.Connection, batch: Batch, sketches: Sketches, open_visits: OpenVisits
) -> tuple[bool, VisitsWritten | None]:
    """Apply what the store lacks of `batch`: (False, None) when it held all of it already;
    else True and what it wrote of the visits, if anything."""
    lacking = _lacking_part(conn, batch)
    if lacking is None:
        return False, None
    written = _write_events(conn, lacking, sketches, open_visits) if lacking.events else None
    _record_positions(conn, lacking.positions)
    return True, written


def _lacking_part(conn: psycopg.Connection, batch: Batch) -> Batch | None:
    """The batch, its part past the applied offsets, or None; the rows stay locked until
    commit, so a second processor writing the same partition waits and then skips."""
    keys = sorted({(p.topic, p.partition) for p in batch.positions})
    topics, parts = [k[0] for k in keys], [k[1] for k in keys]
    conn.execute(
        "INSERT INTO applied_positions (topic, partition, last_offset)"
        " SELECT topic, partition, %s FROM unnest(%s::text[], %s::text[]) AS k(topic, partition)"
        " ON CONFLICT DO NOTHING",
        (NOTHING_APPLIED, topics, parts),
    )
    rows = conn.execute(
        "SELECT a.topic, a.partition, a.last_offset FROM applied_positions a"
        " JOIN unnest(%s::text[], %s::text[]) AS k(topic, partition) USING (topic, partition)"
        " ORDER BY a.topic, a.partition FOR UPDATE OF a",
        (topics, parts),
    ).fetchall()
    applied = {(topic, partition): last for topic, partition, last in rows}
    if all(applied[(p.topic, p.partition)] < p.first for p in batch.positions):
        return batch
    if all(applied[(p.topic, p.partition)] >= p.last for p in batch.positions):
        return None
    rest = batch.unapplied(applied)
    return rest if rest.positions else None


def _record_positions(conn: psycopg.Connection, positions: Iterable[Position]) -> None:
    last: dict[tuple[str, str], int] = {}
    for p in positions:
        last[(p.topic, p.partition)] = max(last.get((p.topic, p.partition), -1), p.last)
    conn.execute(
        "UPDATE applied_positions a SET last_offset = greatest(a.last_offset, k.last_offset)"
        " FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS k(topic, partition, last_offset)"
        " WHERE a.topic = k.topic AND a.partition = k.partition",
        ([k[0] for k in last], [k[1] for k in last], list(last.values())),
    )


def _write_events(
    conn: psycopg.Connection, batch: Batch, sketches: Sketches, open_visits: OpenVisits
) -> VisitsWritten:
    events = batch.events
    partitions.ensure(conn, (event.ts for event in events))
    sites = sorted({event.site_id for event in events})
    assignment = assign(events, open_visits.claim(conn, sites))
    conn.execute("CREATE TEMP TABLE batch_events (LIKE events) ON COMMIT DROP")
    conn.execute(
        "CREATE TEMP TABLE batch_visits ON COMMIT DROP AS"
        f" SELECT {', '.join(VISIT_COLUMNS)} FROM visits WITH NO DATA"
    )
    with conn.cursor() as cursor:
        cursor.adapters.register_dumper(None, PropsDumper)
        copy_events = f"COPY batch_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(copy_events) as copy:
            copy.set_types(EVENT_TYPES)
            write_row = copy.write_row
            for event, visit_id in zip(events, assignment.visit_ids, strict=True):
                write_row((event.site_id, event.ts, visit_id, *_event_fields(event), event.props))
        copy_visits = f"COPY batch_visits ({', '.join(VISIT_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(copy_visits) as copy:
            copy.set_types(VISIT_TYPES)
            for change in assignment.changes:
                copy.write_row(change.row())
    overlap.waiting_on_server()  # the rest is Postgres's work
    conn.execute(_UPSERT_VISITS)
    # In the order of events_site_path: consecutive rows go to the same index pages (7.0 ->
    # 5.8 s of Postgres per 1M events; arrival order scattered them over every page's leaf).
    conn.execute("INSERT INTO events SELECT * FROM batch_events ORDER BY site_id, path, ts")
    for statement in rollups.fold_events(sketches):
        conn.execute(statement)
    closed = conn.execute(rollups.close_visits(sketches), _close_cutoffs(batch)).fetchall()
    conn.execute(
        "INSERT INTO latest_events AS l (site_id, ts)"
        " SELECT site_id, max(ts) FROM batch_events GROUP BY site_id"
        " ON CONFLICT (site_id) DO UPDATE SET ts = greatest(l.ts, excluded.ts)"
    )
    token = open_visits.stamp(conn, sites)
    return VisitsWritten(token, sites, assignment.latest, closed)


def _merge(column: str, newer: str) -> str:
    """Take the staged entry/exit page when it is earlier/later than the stored one."""
    return (
        f"{column} = CASE WHEN v.{newer} IS NULL OR excluded.{newer} {{op}} v.{newer}"
        f" THEN excluded.{column} ELSE v.{column} END"
    )


_UPSERT_VISITS = (
    f"INSERT INTO visits AS v ({', '.join(VISIT_COLUMNS)})"
    f" SELECT {', '.join(VISIT_COLUMNS)} FROM batch_visits"
    " ON CONFLICT (visit_id) DO UPDATE SET"
    " first_ts = least(v.first_ts, excluded.first_ts),"
    " last_ts = greatest(v.last_ts, excluded.last_ts),"
    " pageviews = v.pageviews + excluded.pageviews,"
    " events = v.events + excluded.events, "
    + ", ".join(
        [
            _merge("entry_page", "entry_ts").format(op="<"),
            _merge("entry_ts", "entry_ts").format(op="<"),
            _merge("exit_page", "exit_ts").format(op=">="),
            _merge("exit_ts", "exit_ts").format(op=">="),
        ]
    )
)


def _close_cutoffs(batch: Batch) -> tuple[list[int], list[float]]:
    """Per site in the batch: visits whose last event is before this are over."""
    newest: dict[int, float] = {}
    for event in batch.events:
        if event.ts > newest.get(event.site_id, -math.inf):
            newest[event.site_id] = event.ts
    cutoff = VISIT_GAP_S + CLOSE_MARGIN_S
    return list(newest), [ts - cutoff for ts in newest.values()]
