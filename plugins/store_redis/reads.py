"""Read the live buckets back: counts summed, unique visitors from merged HyperLogLogs.

A range is read from as few keys as hold it exactly: whole UTC hours from hour buckets, the
rest from minute buckets. Ranges are minute-aligned (the query layer's are). Per-page
visitors exist per minute only, so top pages read minute keys. Each query is one call of
read.lua (one round trip; all of a site's keys are in one slot), two for top pages.
"""

from __future__ import annotations

from typing import Any

from appliance.core.aggregation import HOUR, MINUTE, bucket_start
from appliance.core.stores import BreakdownRow, Kpis, PageRow, SeriesPoint
from plugins.store_redis.fold import KeyList
from plugins.store_redis.keys import HOUR_KIND, MINUTE_KIND, Keys
from plugins.store_redis.scripts import LuaScript


def cover(start: int, end: int) -> list[tuple[str, int]]:
    """(kind, bucket start) of the buckets that together hold exactly [start, end)."""
    parts = []
    t = bucket_start(start, MINUTE)
    while t < end:
        if t % HOUR == 0 and t + HOUR <= end:
            parts.append((HOUR_KIND, t))
            t += HOUR
        else:
            parts.append((MINUTE_KIND, t))
            t += MINUTE
    return parts


def minutes(start: int, end: int) -> list[int]:
    return list(range(bucket_start(start, MINUTE), end, MINUTE))


class _Commands:
    """Read commands of one site for one read.lua call."""

    def __init__(self) -> None:
        self.keys = KeyList()
        self.commands: list[list[Any]] = []

    def add(self, name: str, keys: list[str], *args: str) -> None:
        self.commands.append([name, *(self.keys.ref(key) for key in keys), *args])


def _sum_counts(rows: list[list[str | None]]) -> tuple[int, int]:
    pageviews = sum(int(row[0] or 0) for row in rows)
    events = sum(int(row[1] or 0) for row in rows)
    return pageviews, events


def _ranked(flat: list[str]) -> list[tuple[str, int]]:
    """ZUNION's [member, score, ...] as (member, count), most first, then by name."""
    pairs = [(flat[i], int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


class Reader:
    def __init__(self, script: LuaScript, keys: Keys, cluster: bool) -> None:
        self.script = script
        self.keys = keys
        self.cluster = cluster

    async def _run(self, client: Any, commands: _Commands) -> list[Any]:
        [replies] = await self.script.run(
            client, self.cluster, [(commands.keys, commands.commands)]
        )
        return list(replies)

    def _counts(self, commands: _Commands, site: int, start: int, end: int) -> int:
        """Queue the counts' HMGETs, then PFCOUNT visitors and sessions; return how many."""
        parts = cover(start, end)
        for kind, bucket in parts:
            commands.add("HMGET", [self.keys.counts(site, kind, bucket)], "pageviews", "events")
        commands.add("PFCOUNT", [self.keys.visitors(site, kind, bucket) for kind, bucket in parts])
        commands.add("PFCOUNT", [self.keys.sessions(site, kind, bucket) for kind, bucket in parts])
        return len(parts) + 2

    async def kpis(self, client: Any, site: int, start: int, end: int) -> Kpis:
        """Counts only: bounce rate and duration are visit-level (the persistent store's)."""
        if start >= end:
            return Kpis(0, 0, 0, 0, 0.0, 0.0)
        commands = _Commands()
        self._counts(commands, site, start, end)
        *rows, visitors, sessions = await self._run(client, commands)
        pageviews, events = _sum_counts(rows)
        return Kpis(pageviews, int(visitors), int(sessions), events, 0.0, 0.0)

    async def timeseries(
        self, client: Any, site: int, buckets: list[int], end: int
    ) -> list[SeriesPoint]:
        if not buckets:
            return []
        spans = list(zip(buckets, [*buckets[1:], end], strict=True))
        commands = _Commands()
        sizes = [self._counts(commands, site, start, stop) for start, stop in spans]
        replies = await self._run(client, commands)
        points, offset = [], 0
        for (start, _), size in zip(spans, sizes, strict=True):
            *rows, visitors, _sessions = replies[offset : offset + size]
            offset += size
            pageviews, _events = _sum_counts(rows)
            if pageviews or visitors:
                points.append(SeriesPoint(start, pageviews, int(visitors)))
        return points

    async def top_pages(
        self, client: Any, site: int, start: int, end: int, limit: int
    ) -> list[PageRow]:
        """Ordered like the persistent store: pageviews, then visitors, then path."""
        spans = minutes(start, end)
        if not spans:
            return []
        union = _Commands()
        union.add("ZUNION", [self.keys.paths(site, MINUTE_KIND, m) for m in spans])
        [flat] = await self._run(client, union)
        ranked = _ranked(flat)
        if not ranked:
            return []
        # Every path tied with the last one that fits can still win on visitors.
        cutoff = ranked[min(limit, len(ranked)) - 1][1]
        candidates = [(path, count) for path, count in ranked if count >= cutoff]
        people = _Commands()
        for path, _ in candidates:
            people.add("PFCOUNT", [self.keys.path_visitors(site, m, path) for m in spans])
        visitors = await self._run(client, people)
        rows = [
            PageRow(path, count, int(seen))
            for (path, count), seen in zip(candidates, visitors, strict=True)
        ]
        rows.sort(key=lambda row: (-row.pageviews, -row.visitors, row.path))
        return rows[:limit]

    async def top_referrers(
        self, client: Any, site: int, start: int, end: int, limit: int
    ) -> list[BreakdownRow]:
        """Pageviews per referrer source (event-level; visit-level breakdowns are persistent)."""
        spans = minutes(start, end)
        if not spans:
            return []
        union = _Commands()
        union.add("ZUNION", [self.keys.referrers(site, MINUTE_KIND, m) for m in spans])
        [flat] = await self._run(client, union)
        return [BreakdownRow(source, 0, count, 0) for source, count in _ranked(flat)[:limit]]

    async def current_visitors(self, client: Any, site: int, now: float, window_s: int) -> int:
        """Distinct visitors of the minutes touching the last `window_s` seconds."""
        first = bucket_start(now - window_s, MINUTE)
        spans = range(first, bucket_start(now, MINUTE) + MINUTE, MINUTE)
        keys = [self.keys.visitors(site, MINUTE_KIND, m) for m in spans]
        return int(await client.pfcount(*keys))
