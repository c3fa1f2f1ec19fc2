"""The embedded analytics store: raw events, visits and rollups in one SQLite file.

Each flush writes its events, the visits they start or extend (visits.py), the per-UTC-day
rollups' bookkeeping (daily.py) and the applied offsets in one transaction. Queries read the
visits and the raw events (queries.py), so every count is exact over any range without
rebuilding visits per request; unfiltered ones read the UTC days the range holds whole from
the day rollups (whole_days.py). Raw events are kept: they are the history (migration 0006
dropped the minute/hour rollups nothing read).
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import sqlite3
import time
from pathlib import Path

from appliance.core.aggregation import Batch
from appliance.core.event import Event
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from plugins.store_sqlite import daily, queries, visits, whole_days
from plugins.store_sqlite.db import Database, migrate
from plugins.store_sqlite.writer_process import WriterProcess

MIGRATIONS = Path(__file__).parent / "migrations" / "analytics"
TABLES = (
    "events", "visits", "day_totals", "day_values", "day_slots", "dirty_days", "visitor_days",
    "shared_days",
)  # fmt: skip

_EVENT_COLUMNS = (
    "event_id", "site_id", "ts", "name", "path", "visitor_id", "session_id", "referrer",
    "referrer_source", "referrer_medium", "url", "title", "utm_source", "utm_medium",
    "utm_campaign", "utm_term", "utm_content", "browser", "os", "device", "country", "region",
    "screen_width", "screen_height",
)  # fmt: skip
# Many events per statement: the writer thread gives up the GIL at every sqlite3_step and
# must wait to get it back, and under load the serving loop makes that wait long - one step
# per event made the writer fall 20x behind ingest. Statements take 2^k rows (k <= 9), so a
# handful of statement texts are prepared and cached. SQLite before 3.32 allows only 999
# variables (26 per row).
_COLUMNS_PER_ROW = len(_EVENT_COLUMNS) + 2
_event_columns = operator.attrgetter(*_EVENT_COLUMNS)  # one C call per event, not 24 getattrs
_ROWS_PER_INSERT = 512 if sqlite3.sqlite_version_info >= (3, 32) else 32


@functools.cache
def _insert_events(rows: int) -> str:
    row = f"({', '.join('?' * _COLUMNS_PER_ROW)})"
    columns = f"{', '.join(_EVENT_COLUMNS)}, props, visit_id"
    return f"INSERT INTO events ({columns}) VALUES {', '.join([row] * rows)}"


def _statement_sizes(rows: int) -> list[int]:
    """Full statements, then the rest as powers of two: 1,300 -> 512, 512, 256, 16, 4."""
    sizes = [_ROWS_PER_INSERT] * (rows // _ROWS_PER_INSERT)
    rest, size = rows % _ROWS_PER_INSERT, _ROWS_PER_INSERT
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


_WATERMARK = """
WITH RECURSIVE sites(id) AS (
    SELECT min(site_id) FROM events
    UNION ALL
    SELECT (SELECT min(site_id) FROM events WHERE site_id > id) FROM sites WHERE id IS NOT NULL
)
SELECT max((SELECT max(ts) FROM events WHERE site_id = id)) FROM sites WHERE id IS NOT NULL"""


def apply_batch(db: Database, batch: Batch, settle_share: float, settle_min_s: float) -> bool:
    """Write the part of `batch` past the offsets applied so far, in one transaction.

    The processor already sends only what this store lacks; checking again inside the
    transaction makes a stale view (two processors during a rebalance) skip, never double.
    A flush recounts dirty days (daily.settle) for `settle_share` of its own time, at least
    `settle_min_s`. False when nothing of the batch was new.
    """
    begun = time.perf_counter()
    with db.transaction() as conn:
        lacking = _lacking_part(conn, batch)
        if lacking is None:
            return False
        assigned = visits.assign(conn, lacking.events)
        _insert_rows(conn, lacking.events, assigned.visit_ids)
        touched = daily.mark(conn, lacking.events, assigned.starts)
        # A day recounts once flushes have moved past it: today stays dirty.
        budget = max(settle_min_s, settle_share * (time.perf_counter() - begun))
        daily.settle(conn, max((day for _, day in touched), default=0), touched, budget)
        conn.executemany(
            "INSERT INTO applied_positions (topic, partition, last_offset) VALUES (?, ?, ?)"
            " ON CONFLICT (topic, partition)"
            " DO UPDATE SET last_offset = max(last_offset, excluded.last_offset)",
            [(p.topic, p.partition, p.last) for p in lacking.positions],
        )
    return True


def _insert_rows(conn: sqlite3.Connection, events: list[Event], visit_ids: list[int]) -> None:
    """Insert the events, building each statement's parameters only when it runs: a flush's
    rows all at once were a writer's largest allocation (20,000 events: ~6 MiB), and its
    peak stays in the process's memory after the flush."""
    if len(visit_ids) != len(events):  # islice below would not notice extra ids
        raise ValueError(f"{len(visit_ids)} visit ids for {len(events)} events")
    columns = _event_columns
    rows = zip(events, visit_ids, strict=True)
    for size in _statement_sizes(len(events)):
        parameters: list[object] = []
        for event, visit_id in itertools.islice(rows, size):
            parameters += columns(event)
            parameters += (json.dumps(event.props) if event.props else "{}", visit_id)
        conn.execute(_insert_events(size), parameters)


def _lacking_part(conn: sqlite3.Connection, batch: Batch) -> Batch | None:
    """The batch itself, its part past the applied offsets, or None if all was applied."""
    applied: dict[tuple[str, str], int] = {}
    for position in batch.positions:
        row = conn.execute(
            "SELECT last_offset FROM applied_positions WHERE topic = ? AND partition = ?",
            (position.topic, position.partition),
        ).fetchone()
        if row is not None:
            applied[(position.topic, position.partition)] = row[0]
    if all(applied.get((p.topic, p.partition), -1) < p.first for p in batch.positions):
        return batch
    rest = batch.unapplied(applied)
    return rest if rest.positions else None


class SqliteAnalyticsStore:
    name = "sqlite"
    role = "persistent"
    # A flush recounts dirty days (daily.settle) for this share of its own time, at least
    # settle_min_s: small live flushes stay quick, a backlog's big ones keep up with the days.
    settle_share = 0.25
    settle_min_s = 0.05

    def __init__(self, path: Path, writer_process: bool = False) -> None:
        self.path = path
        self.use_writer_process = writer_process
        self._writer: Database | None = None
        self._reader: Database | None = None
        self._writer_process: WriterProcess | None = None

    def open(self) -> None:
        self._writer = Database(self.path)
        migrate(self._writer, MIGRATIONS)
        with self._writer.transaction() as conn:
            # Days a migration or the last flushes left dirty; not today's, which the next
            # flush would mark again (a 110k-event day took ~0.6 s to recount at every start).
            daily.settle(conn, daily.day_of(time.time()))
        self._reader = Database(self.path)  # WAL: reads don't wait for the writer
        if self.use_writer_process:  # its child starts with the first flush
            self._writer_process = WriterProcess(self.path, self.settle_share, self.settle_min_s)

    def close(self) -> None:
        if self._writer_process is not None:
            self._writer_process.close()  # it finishes the batch it is writing first
            self._writer_process = None
        for db in (self._writer, self._reader):
            if db is not None:
                db.close()
        self._writer = self._reader = None

    @property
    def writer(self) -> Database:
        if self._writer is None:
            raise RuntimeError("sqlite store is not open")
        return self._writer

    @property
    def reader(self) -> Database:
        if self._reader is None:
            raise RuntimeError("sqlite store is not open")
        return self._reader

    # --- writes ----------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> bool:
        """Apply, in one transaction, the part of the batch past the offsets applied so far
        (in the writer process when there is one); False when nothing of it was new."""
        process = self._writer_process
        if process is not None:
            return process.write(batch)
        return apply_batch(self.writer, batch, self.settle_share, self.settle_min_s)

    def applied_positions(self, topic: str) -> dict[str, int]:
        """The last offset applied per partition of `topic`: the processor resumes after it."""
        with self.reader.locked() as conn:
            rows = conn.execute(
                "SELECT partition, last_offset FROM applied_positions WHERE topic = ?", (topic,)
            ).fetchall()
        return {partition: last for partition, last in rows}

    def delete_site(self, site_id: int) -> None:
        with self.writer.transaction() as conn:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table} WHERE site_id = ?", (site_id,))  # noqa: S608

    # --- queries ---------------------------------------------------------------------

    def watermark(self) -> float | None:
        """The newest event's time: each site's newest from the (site_id, ts) index, the sites
        found by skipping from one to the next. A plain max(ts) read the whole index (830 ms
        at 10M events), and the query layer asks every 0.5 s when Redis is configured."""
        with self.reader.locked() as conn:
            return conn.execute(_WATERMARK).fetchone()[0]

    def kpis(self, site_id: int, start: int, end: int, filters: tuple = ()) -> Kpis:
        with self.reader.snapshot() as conn:
            fast = None if filters else whole_days.kpis(conn, site_id, start, end)
            if fast is not None:
                return fast
            return queries.kpis(conn, site_id, start, end, filters)

    def timeseries(
        self, site_id: int, buckets: list[int], end: int, filters: tuple = ()
    ) -> list[SeriesPoint]:
        with self.reader.snapshot() as conn:
            fast = None if filters else whole_days.timeseries(conn, site_id, buckets, end)
            if fast is not None:
                return fast
            return queries.timeseries(conn, site_id, buckets, end, filters)

    def top_pages(
        self, site_id: int, start: int, end: int, limit: int, filters: tuple = ()
    ) -> list[PageRow]:
        with self.reader.snapshot() as conn:
            fast = None if filters else whole_days.top_pages(conn, site_id, start, end, limit)
            if fast is not None:
                return fast
            return queries.top_pages(conn, site_id, start, end, limit, filters)

    def breakdown(
        self, site_id: int, start: int, end: int, prop: str, limit: int, filters: tuple = ()
    ) -> list[BreakdownRow]:
        with self.reader.snapshot() as conn:
            fast = None if filters else whole_days.breakdown(conn, site_id, start, end, prop, limit)
            if fast is not None:
                return fast
            return queries.breakdown(conn, site_id, start, end, prop, limit, filters)

    def event_properties(
        self, site_id: int, start: int, end: int, event: str, limit: int, filters: tuple = ()
    ) -> list[BreakdownRow]:
        with self.reader.locked() as conn:
            return queries.event_properties(conn, site_id, start, end, event, limit, filters)

    def latest_event_time(self, site_id: int) -> float | None:
        with self.reader.locked() as conn:
            return queries.latest_event_time(conn, site_id)
