"""The query layer: pick the store that answers a range, and shape gap-free results.

Today only persistent stores exist, so each query goes to the first one. The seam for the
real-time store is here: a store reports its role and watermark, and a range is split at the
persistent store's watermark (older from it, newer from the real-time store).
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.core.filters import Filter
from appliance.core.periods import TimeRange
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint, Store, call


class NoQueryStore(RuntimeError):
    def __init__(self) -> None:
        super().__init__("no configured store answers queries (settings: STORES)")


class QueryLayer:
    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = list(stores)

    def _store_for(self, time_range: TimeRange) -> Store:
        for store in self.stores:
            if store.role == "persistent":
                return store
        raise NoQueryStore()

    async def kpis(
        self, site_id: int, time_range: TimeRange, filters: tuple[Filter, ...] = ()
    ) -> Kpis:
        store = self._store_for(time_range)
        return await call(store.kpis, site_id, time_range.start, time_range.end, filters)

    async def timeseries(
        self, site_id: int, time_range: TimeRange, filters: tuple[Filter, ...] = ()
    ) -> list[SeriesPoint]:
        store = self._store_for(time_range)
        buckets = time_range.buckets()
        found = await call(store.timeseries, site_id, buckets, time_range.end, filters)
        by_bucket = {point.t: point for point in found}
        return [by_bucket.get(t) or SeriesPoint(t, 0, 0) for t in buckets]

    async def top_pages(
        self, site_id: int, time_range: TimeRange, limit: int, filters: tuple[Filter, ...] = ()
    ) -> list[PageRow]:
        store = self._store_for(time_range)
        start, end = time_range.start, time_range.end
        return await call(store.top_pages, site_id, start, end, limit, filters)

    async def breakdown(
        self,
        site_id: int,
        time_range: TimeRange,
        prop: str,
        limit: int,
        filters: tuple[Filter, ...] = (),
    ) -> list[BreakdownRow]:
        store = self._store_for(time_range)
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
        store = self._store_for(time_range)
        start, end = time_range.start, time_range.end
        return await call(store.event_properties, site_id, start, end, event, limit, filters)

    async def current_visitors(self, site_id: int, now: float, window_s: int = 300) -> int:
        """Distinct visitors seen in the last `window_s` seconds."""
        recent = TimeRange(int(now) - window_s, int(now) + 1, window_s)
        return (await self.kpis(site_id, recent)).visitors

    async def latest_event_time(self, site_id: int) -> float | None:
        latest = [await call(store.latest_event_time, site_id) for store in self._queryable()]
        return max((t for t in latest if t is not None), default=None)

    def _queryable(self) -> list[Store]:
        return [store for store in self.stores if store.role != "sink"]
