"""The store contract: sinks written on every flush, some of which also answer queries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.core.aggregation import Batch


class StoreUnavailable(Exception):
    """A store's server cannot be reached right now; the message says which and why.

    Raise it (instead of a driver's error) from queries and account methods: the web layer
    answers 503 with the message rather than a stack trace. The processor retries a flush
    that raised it, like any other failed write.
    """


@dataclass(frozen=True, slots=True)
class Kpis:
    pageviews: int
    visitors: int
    sessions: int
    events: int
    bounce_rate: float  # share of sessions with exactly one pageview, 0..1
    avg_duration_s: float  # mean of (last - first event) per session


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    t: int  # bucket start, epoch seconds
    pageviews: int
    visitors: int


@dataclass(frozen=True, slots=True)
class PageRow:
    path: str
    pageviews: int
    visitors: int


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    value: str
    visitors: int
    pageviews: int
    events: int  # custom events


class Store(Protocol):
    """Methods may be sync (run in a worker thread) or async."""

    name: str
    # "persistent" answers history, "realtime" the newest window, "sink" only receives.
    role: str

    def open(self) -> Any: ...

    def close(self) -> Any: ...

    def write_batch(self, batch: Batch) -> Any:
        """Apply the batch once: a batch whose positions were applied already changes nothing."""
        ...

    def watermark(self) -> Any:
        """Newest event time (epoch seconds) this store holds completely, or None."""
        ...

    # Queries take `filters`, a tuple of appliance.core.filters.Filter (a visit segment).

    def kpis(self, site_id: int, start: int, end: int, filters: tuple) -> Any: ...

    def timeseries(self, site_id: int, buckets: list[int], end: int, filters: tuple) -> Any:
        """SeriesPoints for the buckets that have data (the query layer fills the gaps).

        `buckets` are ascending bucket starts (epoch seconds; local days may be 23-25 h long),
        the last bucket ends at `end`.
        """
        ...

    def top_pages(self, site_id: int, start: int, end: int, limit: int, filters: tuple) -> Any: ...

    def breakdown(
        self, site_id: int, start: int, end: int, prop: str, limit: int, filters: tuple
    ) -> Any:
        """BreakdownRows grouped by `prop` (see appliance.core.filters), by visitors desc."""
        ...

    def event_properties(
        self, site_id: int, start: int, end: int, event: str, limit: int, filters: tuple
    ) -> Any:
        """BreakdownRows of "key: value" props of the custom event `event`, by visitors desc."""
        ...

    def latest_event_time(self, site_id: int) -> Any:
        """Time of the site's newest stored event (the dashboard refreshes when it moves)."""
        ...


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a real-time store holds: every event from `since` on (a minute start, epoch
    seconds; None: nothing complete yet), the newest at `watermark` (epoch seconds)."""

    since: int | None
    watermark: float | None


class RealtimeStore(Store, Protocol):
    """A store with role "realtime": it answers the newest window of unfiltered counts.

    The query layer reads it for [split, end) only (see appliance/core/query.py); the
    processor writes it after the persistent stores and never lets it hold up a commit
    (see appliance/core/realtime_feed.py). `kpis` fills pageviews, visitors, sessions and
    events (visit-level fields are the persistent store's); `breakdown` and
    `event_properties` are never asked.
    """

    window_s: int  # the newest window it serves (the query layer's default split)
    horizon_s: int  # how far back its minute buckets reach (their TTL)
    max_lag_s: int  # further behind the persistent store's watermark: degraded
    backlog_limit: int  # events the processor keeps for it while it is away

    def coverage(self) -> Any:
        """A Coverage; raises when the store cannot be reached."""
        ...

    def reset_coverage(self) -> Any:
        """Events before the next batch may be missing (the processor dropped some)."""
        ...

    def current_visitors(self, site_id: int, now: float, window_s: int) -> Any:
        """Distinct visitors in the minutes touching [now - window_s, now]."""
        ...


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Await an async store method, or run a sync one off the event loop."""
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    return await asyncio.to_thread(method, *args)
