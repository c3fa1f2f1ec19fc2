"""The real-time store: each flush lands in Redis in one round trip, exactly once per site.

Exactly once: every site has an offset guard (`{site:S}:applied`), checked and moved by the
same Lua script that adds the site's counts, so a redelivered batch changes nothing. On one
Redis node a single script call applies every site of the batch and then the appliance-wide
offsets (`{applied}`), atomically. On a cluster a script may only touch one slot, so each
site's script runs on its own slot (all in one pipeline, one round trip per node) and the
appliance-wide offsets move in a second call only after every site succeeded: those offsets
may lag the site guards (the processor then resends, and the guards skip), never lead them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from appliance.core.aggregation import Batch
from appliance.core.event import Event
from appliance.core.settings import SettingsError
from appliance.core.stores import BreakdownRow, Coverage, Kpis, PageRow, SeriesPoint
from appliance.core.transport import Offset, Position, unapplied_part
from plugins.store_redis import reads
from plugins.store_redis.config import RedisSettings
from plugins.store_redis.connection import check, describe, is_unreachable, make_client
from plugins.store_redis.fold import (
    KeyList,
    Retention,
    SiteFold,
    fold_sites,
    global_plan,
    site_plan,
)
from plugins.store_redis.keys import Keys
from plugins.store_redis.scripts import LuaScript

log = logging.getLogger(__name__)

ATTEMPTS = 3  # partial overlaps re-folded; more means another writer keeps moving the guards

SitePart = tuple[SiteFold, list[Position]]  # a site's fold, and the positions guarding it


def _of_site(batch: Batch, site_id: int) -> tuple[list[Event], Sequence[Offset]]:
    """The batch's events of one site with their offsets (only a partly held site needs
    them, so they are not sorted out for every write)."""
    if len(batch.offsets) != len(batch.events):
        return [event for event in batch.events if event.site_id == site_id], []
    pairs = [
        (event, offset)
        for event, offset in zip(batch.events, batch.offsets, strict=True)
        if event.site_id == site_id
    ]
    return [event for event, _ in pairs], [offset for _, offset in pairs]


class RedisStore:
    name = "redis"
    role = "realtime"

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.retention = Retention(settings.minute_ttl_s, settings.hour_ttl_s)
        # What the query layer and the processor read off a realtime store.
        self.window_s = settings.window_s
        self.horizon_s = settings.minute_ttl_s
        self.max_lag_s = settings.max_lag_s
        self.backlog_limit = settings.catch_up_events
        self._client: Any = None
        self._apply_script = LuaScript("apply.lua")
        self._reader = reads.Reader(LuaScript("read.lua"), self.keys, settings.cluster)

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect; wrong settings stop start-up, a Redis that is away only degrades."""
        self._client = make_client(self.settings)
        try:
            await check(self._client, self.settings)
        except Exception as error:
            line = describe(error, self.settings)
            if not is_unreachable(error):
                await self.close()
                raise SettingsError(line) from None
            log.warning("%s; the real-time window is degraded until it answers", line)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("redis store is not open")
        return self._client

    # --- writes ------------------------------------------------------------------------

    async def write_batch(self, batch: Batch) -> bool:
        """Apply what each site of the batch lacks; False when every site held all of it."""
        folds = fold_sites(batch.events)
        pending: dict[int, SitePart] = {
            site: (fold, list(batch.positions)) for site, fold in folds.items()
        }
        applied_any = False
        for _ in range(ATTEMPTS):
            states = await self._apply(pending, folds.values(), batch.positions)
            applied_any |= "new" in states.values()
            partial = [site for site, state in states.items() if state == "partial"]
            if not partial:
                return applied_any
            if self.settings.cluster:  # the other sites' scripts ran: they hold the batch
                pending = {site: pending[site] for site in partial}
            guards = await self._site_guards(partial)
            for site in partial:
                events, offsets = _of_site(batch, site)
                kept, positions, _ = unapplied_part(
                    events, list(batch.positions), offsets, guards[site]
                )
                pending[site] = (fold_sites(kept).get(site, SiteFold()), positions)
            pending = {site: part for site, part in pending.items() if part[1]}
        raise RuntimeError("redis: the offset guards kept moving while a batch was applied")

    async def _apply(
        self,
        pending: dict[int, SitePart],
        folds: Iterable[SiteFold],
        positions: Sequence[Position],
    ) -> dict[int, str]:
        """Run apply.lua: one call on a single node, one per site plus one on a cluster.
        `folds` is the whole batch's, for the appliance-wide coverage."""
        sites = list(pending)
        if not self.settings.cluster:
            keylist = KeyList()
            plan = {
                "sites": [self._site_plan(keylist, site, pending[site]) for site in sites],
                "global": global_plan(self.keys, keylist, folds, positions),
            }
            [states] = await self._run([(keylist, plan)])
            return dict(zip(sites, states or [], strict=True))
        calls = []
        for site in sites:
            keylist = KeyList()
            calls.append((keylist, {"sites": [self._site_plan(keylist, site, pending[site])]}))
        results = await self._run(calls) if calls else []
        states = {site: result[0] for site, result in zip(sites, results, strict=True)}
        if "partial" not in states.values():
            keylist = KeyList()
            plan = {"global": global_plan(self.keys, keylist, folds, positions)}
            await self._run([(keylist, plan)])
        return states

    def _site_plan(self, keylist: KeyList, site: int, part: SitePart) -> dict[str, Any]:
        fold, positions = part
        return site_plan(self.keys, keylist, site, fold, positions, self.retention)

    async def _run(self, calls: Sequence[tuple[KeyList, dict[str, Any]]]) -> list[Any]:
        return await self._apply_script.run(self.client, self.settings.cluster, calls)

    async def _site_guards(self, sites: list[int]) -> dict[int, dict[tuple[str, str], int]]:
        pipe = self.client.pipeline(transaction=False)
        for site in sites:
            pipe.hgetall(self.keys.site_guard(site))
        guards = {}
        for site, fields in zip(sites, await pipe.execute(), strict=True):
            held = {}
            for name, last in fields.items():
                topic, partition = name.split(" ", 1)
                held[(topic, partition)] = int(last)
            guards[site] = held
        return guards

    async def applied_positions(self, topic: str) -> dict[str, int]:
        """Last offset per partition that every site holds (the processor resumes after it)."""
        fields = await self.client.hgetall(self.keys.offsets(topic))
        return {partition: int(last) for partition, last in fields.items()}

    async def delete_site(self, site_id: int) -> None:
        """Drop a deleted site's keys (they would expire anyway: 24 h / 30 days)."""
        try:
            pattern = f"{self.keys.site(site_id)}:*"
            batch: list[str] = []
            async for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) == 500:
                    await self.client.delete(*batch)
                    batch.clear()
            if batch:
                await self.client.delete(*batch)
        except Exception as error:
            log.warning(
                "%s; site %d's keys are left to expire", describe(error, self.settings), site_id
            )

    # --- coverage ----------------------------------------------------------------------

    async def coverage(self) -> Coverage:
        """Since when Redis holds every event, and its newest one."""
        since, watermark = await self.client.hmget(self.keys.meta(), ["since", "watermark"])
        return Coverage(
            since=int(since) if since is not None else None,
            watermark=float(watermark) if watermark is not None else None,
        )

    async def watermark(self) -> float | None:
        return (await self.coverage()).watermark

    async def reset_coverage(self) -> None:
        """Events before the next batch may be missing: be complete only from that batch on."""
        await self.client.hdel(self.keys.meta(), "since")

    # --- queries (no filters: a realtime store only answers unfiltered ranges) ---------

    async def kpis(self, site_id: int, start: int, end: int, filters: tuple = ()) -> Kpis:
        return await self._reader.kpis(self.client, site_id, start, end)

    async def timeseries(
        self, site_id: int, buckets: list[int], end: int, filters: tuple = ()
    ) -> list[SeriesPoint]:
        return await self._reader.timeseries(self.client, site_id, buckets, end)

    async def top_pages(
        self, site_id: int, start: int, end: int, limit: int, filters: tuple = ()
    ) -> list[PageRow]:
        return await self._reader.top_pages(self.client, site_id, start, end, limit)

    async def top_referrers(
        self, site_id: int, start: int, end: int, limit: int
    ) -> list[BreakdownRow]:
        return await self._reader.top_referrers(self.client, site_id, start, end, limit)

    async def current_visitors(self, site_id: int, now: float, window_s: int) -> int:
        return await self._reader.current_visitors(self.client, site_id, now, window_s)

    async def latest_event_time(self, site_id: int) -> float | None:
        latest = await self.client.get(self.keys.latest(site_id))
        return float(latest) if latest is not None else None

    async def breakdown(self, *args: Any) -> list[BreakdownRow]:
        raise NotImplementedError("breakdowns are visit-level: the persistent store answers them")

    async def event_properties(self, *args: Any) -> list[BreakdownRow]:
        raise NotImplementedError("event properties need raw events: the persistent store")

    async def ping(self) -> None:
        """For tests and health checks: raise when Redis does not answer."""
        await asyncio.wait_for(self.client.ping(), self.settings.timeout_s)
