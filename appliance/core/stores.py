"""The store contract: sinks written on every flush, some of which also answer queries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.core.aggregation import Batch


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

    def kpis(self, site_id: int, start: int, end: int) -> Any: ...

    def timeseries(self, site_id: int, start: int, end: int, interval: int) -> Any:
        """Points only for buckets that have data; the query layer fills the gaps."""
        ...

    def top_pages(self, site_id: int, start: int, end: int, limit: int) -> Any: ...


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Await an async store method, or run a sync one off the event loop."""
    if inspect.iscoroutinefunction(method):
        return await method(*args)
    return await asyncio.to_thread(method, *args)
