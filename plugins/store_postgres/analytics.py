"""The Postgres analytics store: raw events, visits and rollups, written once per flush.

Unfiltered stats come from the rollups (and their hll visitor sketches) plus raw rows for
the partial hours at a range's edges; filtered stats, and every stat on a server without
the hll extension, come from raw events and the visits table (exact). Both give the same
numbers, but for unique visitors from sketches (within about 1 %).
"""

from __future__ import annotations

import time

from appliance.core.aggregation import Batch
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from plugins.store_postgres import partitions, rollup_queries, segment_queries, writer
from plugins.store_postgres.db import Database
from plugins.store_postgres.migrate import migrate
from plugins.store_postgres.open_visits import OpenVisits
from plugins.store_postgres.sketches import Sketches

ROLLUP_TABLES = ("rollup_site", "rollup_page", "rollup_event", "rollup_prop", "rollup_visit")
# For every analytics transaction: no JIT (the planner cannot know that a range's raw pieces
# are under an hour, so it expects millions of rows and spends ~20 ms compiling for a few
# milliseconds of work); a plan for each execution's own arguments (a prepared statement's
# generic plan cannot see how short a range or a candidate list is: 4x slower breakdowns);
# room for the flush's groupings and the sketch unions in memory.
TUNING = (
    b"SET LOCAL jit = off; SET LOCAL plan_cache_mode = force_custom_plan;"
    b" SET LOCAL work_mem = '32MB'"
)


class PostgresAnalyticsStore:
    name = "postgres"
    role = "persistent"

    def __init__(self, db: Database, retention_days: int = 0) -> None:
        self.db = db
        self.retention_days = retention_days
        self.sketches = Sketches(enabled=False)
        self.open_visits = OpenVisits()

    def open(self) -> None:
        self.db.open()
        try:
            migrate(self.db, "analytics")
            with self.db.connection(TUNING) as conn:
                self.sketches = Sketches.detect(conn)
                partitions.ensure_ahead(conn, time.time())
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # --- writes ----------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> bool:
        """Apply, in one transaction, the part of the batch past the offsets applied so far;
        False when nothing of it was new (see writer.py)."""
        with self.db.connection(TUNING) as conn:
            new, visits = writer.write(conn, batch, self.sketches, self.open_visits)
        if visits is not None:  # committed
            self.open_visits.committed(visits)
        return new

    def applied_positions(self, topic: str) -> dict[str, int]:
        """The last offset applied per partition of `topic`: the processor resumes after it."""
        with self.db.connection(TUNING) as conn:
            rows = conn.execute(
                "SELECT partition, last_offset FROM applied_positions"
                " WHERE topic = %s AND last_offset >= 0",
                (topic,),
            ).fetchall()
        return {partition: last for partition, last in rows}

    def expire(self, now: float | None = None) -> list[str]:
        """Drop raw events (whole months) and finished visits older than the retention."""
        now = time.time() if now is None else now
        with self.db.connection(TUNING) as conn:
            partitions.ensure_ahead(conn, now)
            return partitions.drop_expired(conn, now, self.retention_days)

    def delete_site(self, site_id: int) -> None:
        with self.db.connection(TUNING) as conn:
            # visit_tokens too: a processor remembering the site's open visits reads again.
            for table in ("events", "visits", "latest_events", "visit_tokens", *ROLLUP_TABLES):
                conn.execute(f"DELETE FROM {table} WHERE site_id = %s", (site_id,))  # noqa: S608

    # --- queries ---------------------------------------------------------------------

    def watermark(self) -> float | None:
        with self.db.connection(TUNING) as conn:
            row = conn.execute("SELECT max(ts) FROM latest_events").fetchone()
        return row[0] if row else None

    def latest_event_time(self, site_id: int) -> float | None:
        with self.db.connection(TUNING) as conn:
            row = conn.execute(
                "SELECT ts FROM latest_events WHERE site_id = %s", (site_id,)
            ).fetchone()
        return row[0] if row else None

    def _rollups_answer(self, filters: tuple) -> bool:
        return self.sketches.enabled and not filters

    def kpis(self, site_id: int, start: int, end: int, filters: tuple = ()) -> Kpis:
        with self.db.connection(TUNING) as conn:
            if self._rollups_answer(filters):
                return rollup_queries.kpis(conn, site_id, start, end)
            return segment_queries.kpis(conn, site_id, start, end, filters)

    def timeseries(
        self, site_id: int, buckets: list[int], end: int, filters: tuple = ()
    ) -> list[SeriesPoint]:
        with self.db.connection(TUNING) as conn:
            if self._rollups_answer(filters):
                return rollup_queries.timeseries(conn, site_id, buckets, end)
            return segment_queries.timeseries(conn, site_id, buckets, end, filters)

    def top_pages(
        self, site_id: int, start: int, end: int, limit: int, filters: tuple = ()
    ) -> list[PageRow]:
        with self.db.connection(TUNING) as conn:
            if self._rollups_answer(filters):
                return rollup_queries.top_pages(conn, site_id, start, end, limit)
            return segment_queries.top_pages(conn, site_id, start, end, limit, filters)

    def breakdown(
        self, site_id: int, start: int, end: int, prop: str, limit: int, filters: tuple = ()
    ) -> list[BreakdownRow]:
        with self.db.connection(TUNING) as conn:
            if self._rollups_answer(filters):
                return rollup_queries.breakdown(conn, site_id, start, end, prop, limit)
            return segment_queries.breakdown(conn, site_id, start, end, prop, limit, filters)

    def event_properties(
        self, site_id: int, start: int, end: int, event: str, limit: int, filters: tuple = ()
    ) -> list[BreakdownRow]:
        with self.db.connection(TUNING) as conn:
            if self._rollups_answer(filters):
                return rollup_queries.event_properties(conn, site_id, start, end, event, limit)
            return segment_queries.event_properties(
                conn, site_id, start, end, event, limit, filters
            )
