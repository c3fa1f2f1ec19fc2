"""The query layer: pick the store that answers a range, and shape gap-free results.

With a real-time store (role "realtime", e.g. Redis) beside the persistent one, a range is
split at one instant, the *split*:

    split = max(min(now - window, persistent watermark), real-time coverage start,
                now - real-time horizon), rounded down to a minute and kept within the range

The persistent store is complete up to its watermark and the real-time store from its
coverage start on, so between them every minute is held by at least one. The stitching rule:
**each bucket is answered whole by exactly one store** - by the real-time store when the
bucket starts at or after the split, else by the persistent store. A bucket is a time-series
point, or the whole range for totals (kpis) and lists (top pages). Nothing is counted twice
and nothing is missed, and unique visitors stay exact: a range that crosses the split is one
bucket read from the persistent store, which keeps the visitor ids (no sketches are merged
across stores). So the `realtime` period comes from Redis, `today` from the persistent store
except its newest hour points.

What only raw events can answer always goes to the persistent store: filtered queries
(filters select visits), breakdowns and event properties, and the visit-level KPIs (bounce
rate, visit duration; visits too when the range is longer than the 30-minute visit gap, over
which one session id can make several visits).

`realtime_status()` says how the real-time window is served: "off" (no real-time store),
"live", or "degraded" (the real-time store does not answer, or is catching up: further
behind the persistent store's watermark than its `max_lag_s`). Degraded queries are
answered by the persistent store alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.core.aggregation import MINUTE, bucket_start
from appliance.core.filters import Filter
from appliance.core.periods import TimeRange
from appliance.core.stores import BreakdownRow, Coverage, Kpis, PageRow, SeriesPoint, Store, call
from appliance.core.visits import VISIT_GAP_S

log = logging.getLogger(__name__)

LOG_EVERY_S = 60  # a real-time store that stays away is logged once a minute, not per query
HEALTH_CACHE_S = 0.5  # each request asks twice (status and split); the stores at most this often
AWAY_CACHE_S = 2.0  # a real-time store that failed is asked again after this (it may hang)

OFF, LIVE, DEGRADED = "off", "live", "degraded"


class NoQueryStore(RuntimeError):
    def __init__(self) -> None:
        super().__init__("no configured store answers queries (settings: STORES)")


@dataclass(frozen=True, slots=True)
class Stitch:
    """Where a range is split: the persistent store answers [start, split), the real-time
    store [split, end) (`realtime` is None when it answers nothing of this range)."""

    split: int
    realtime: Any
    status: str


class QueryLayer:
    def __init__(self, stores: Sequence[Store], clock: Callable[[], float] = time.time) -> None:
        self.stores = list(stores)
        self.clock = clock
        self.realtime = next((s for s in self.stores if s.role == "realtime"), None)
        self._logged_at = 0.0
        self._health_cache: tuple[float, tuple[str, Coverage | None, float | None]] | None = None

    def _persistent(self) -> Store:
        for store in self.stores:
            if store.role == "persistent":
                return store
        raise NoQueryStore()

    # --- where to split ----------------------------------------------------------------

    async def realtime_status(self) -> str:
        """ "off", "live" or "degraded" (see the module docstring)."""
        status, _, _ = await self._health()
        return status

    async def _health(self) -> tuple[str, Coverage | None, float | None]:
        """The real-time store's status, its coverage and the persistent watermark."""
        now = time.monotonic()
        if self._health_cache is not None:
            at, health = self._health_cache
            away = health[0] == DEGRADED and health[1] is None  # it did not answer
            if now - at < (AWAY_CACHE_S if away else HEALTH_CACHE_S):
                return health
        health = await self._read_health()
        self._health_cache = (now, health)
        return health

    async def _read_health(self) -> tuple[str, Coverage | None, float | None]:
        realtime = self.realtime
        if realtime is None:
            return OFF, None, None
        try:
            coverage: Coverage = await call(realtime.coverage)
        except Exception as error:
            self._log_away(error)
            return DEGRADED, None, None
        watermark = await call(self._persistent().watermark)
        behind = (
            watermark is not None
            and coverage.watermark is not None
            and watermark - coverage.watermark > realtime.max_lag_s
        )
        return (DEGRADED if behind else LIVE), coverage, watermark

    async def _stitch(self, start: int, end: int, filters: tuple[Filter, ...] = ()) -> Stitch:
        status, coverage, watermark = await self._health()
        if status != LIVE or filters or coverage is None or coverage.since is None:
            return Stitch(end, None, status)
        realtime = self.realtime
        now = self.clock()
        split = bucket_start(now - realtime.window_s, MINUTE)
        if watermark is not None:
            split = min(split, bucket_start(watermark, MINUTE))
        horizon = bucket_start(now - realtime.horizon_s, MINUTE) + MINUTE
        split = min(max(split, coverage.since, horizon, start), end)
        return Stitch(split, realtime if split < end else None, status)

    # --- queries -----------------------------------------------------------------------

    async def kpis(
        self, site_id: int, time_range: TimeRange, filters: tuple[Filter, ...] = ()
    ) -> Kpis:
        start, end = time_range.start, time_range.end
        stitch = await self._stitch(start, end, filters)
        visits = await call(self._persistent().kpis, site_id, start, end, filters)
        if stitch.realtime is None or stitch.split > start:
            return visits
        counts = await self._realtime(stitch.realtime.kpis, site_id, start, end, ())
        if counts is None:
            return visits
        return Kpis(
            pageviews=counts.pageviews,
            visitors=counts.visitors,
            # Within one visit gap a session id is one visit; beyond it only raw events tell.
            sessions=counts.sessions if end - start <= VISIT_GAP_S else visits.sessions,
            events=counts.events,
            bounce_rate=visits.bounce_rate,
            avg_duration_s=visits.avg_duration_s,
        )

    async def timeseries(
        self, site_id: int, time_range: TimeRange, filters: tuple[Filter, ...] = ()
    ) -> list[SeriesPoint]:
        buckets = time_range.buckets()
        stitch = await self._stitch(time_range.start, time_range.end, filters)
        first_live = next((i for i, t in enumerate(buckets) if t >= stitch.split), len(buckets))
        if stitch.realtime is None:
            first_live = len(buckets)
        older, newer = buckets[:first_live], buckets[first_live:]
        found: list[SeriesPoint] = []
        if older:
            older_end = newer[0] if newer else time_range.end
            persistent = self._persistent()
            found += await call(persistent.timeseries, site_id, older, older_end, filters)
        if newer:
            live = await self._realtime(
                stitch.realtime.timeseries, site_id, newer, time_range.end, ()
            )
            if live is None:
                store = self._persistent()
                live = await call(store.timeseries, site_id, newer, time_range.end, filters)
            found += live
        by_bucket = {point.t: point for point in found}
        return [by_bucket.get(t) or SeriesPoint(t, 0, 0) for t in buckets]

    async def top_pages(
        self, site_id: int, time_range: TimeRange, limit: int, filters: tuple[Filter, ...] = ()
    ) -> list[PageRow]:
        start, end = time_range.start, time_range.end
        stitch = await self._stitch(start, end, filters)
        store = stitch.realtime if stitch.realtime is not None and stitch.split <= start else None
        if store is not None:
            rows = await self._realtime(store.top_pages, site_id, start, end, limit, ())
            if rows is not None:
                return rows
        return await call(self._persistent().top_pages, site_id, start, end, limit, filters)

    async def breakdown(
        self,
        site_id: int,
        time_range: TimeRange,
        prop: str,
        limit: int,
        filters: tuple[Filter, ...] = (),
    ) -> list[BreakdownRow]:
        """Visit-level: always the persistent store (it keeps raw events)."""
        store = self._persistent()
        start, end = time_range.start, time_range.end
        return await call(store.breakdown, site_id, start, end, prop, limit, filters)

    async def event_properties(
        self,
        site_id: int,
        time_range: TimeRange,
        event: str,
        limit: int,
        filters: tuple[Filter, ...] = (),
    ) -> list[BreakdownRow]:
        """Needs the events' props: always the persistent store."""
        store = self._persistent()
        start, end = time_range.start, time_range.end
        return await call(store.event_properties, site_id, start, end, event, limit, filters)

    async def current_visitors(self, site_id: int, now: float, window_s: int = 300) -> int:
        """Distinct visitors seen in the last `window_s` seconds: merged HyperLogLogs of the
        real-time store's minutes when it covers them, else the persistent store's events."""
        first_minute = bucket_start(now - window_s, MINUTE)
        stitch = await self._stitch(first_minute, int(now) + 1)
        if stitch.realtime is not None and stitch.split <= first_minute:
            live = await self._realtime(stitch.realtime.current_visitors, site_id, now, window_s)
            if live is not None:
                return live
        recent = TimeRange(int(now) - window_s, int(now) + 1, window_s)
        return (await call(self._persistent().kpis, site_id, recent.start, recent.end, ())).visitors

    async def latest_event_time(self, site_id: int) -> float | None:
        """The newest of the stores' answers; a real-time store that fails is left out."""
        latest = []
        for store in self._queryable():
            try:
                latest.append(await call(store.latest_event_time, site_id))
            except Exception:
                if store.role != "realtime":
                    raise
        return max((t for t in latest if t is not None), default=None)

    async def _realtime(self, method: Callable[..., Any], *args: Any) -> Any:
        """A real-time read, or None when the store fails mid-query (the caller falls back
        to the persistent store)."""
        try:
            return await call(method, *args)
        except Exception as error:
            self._log_away(error)
            self._health_cache = (time.monotonic(), (DEGRADED, None, None))
            return None

    def _log_away(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._logged_at > LOG_EVERY_S:
            self._logged_at = now
            log.warning(
                "%s does not answer (%s: %s); the persistent store answers the real-time"
                " window", getattr(self.realtime, "name", "real-time store"),
                type(error).__name__, error,
            )  # fmt: skip

    def _queryable(self) -> list[Store]:
        return [store for store in self.stores if store.role != "sink"]
