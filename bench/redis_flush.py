"""Flush cost of the Redis real-time store: `python -m bench.redis_flush` (needs Redis:
`make services`, or `--url redis://...`; `--cluster` for a Redis Cluster URL).

A flush of N events (a realistic mix: 5 sites, 60 paths, a visitor for every 3 events, 10 %
custom events, 5 referrer sources, spread over the current minute) is written with
`RedisStore.write_batch`: one Lua call for all sites on one node. Reported per 1,000 events:
the whole write (median of the runs), the part spent folding the batch in Python, and the
rest (the script in Redis plus the round trip). SQLite's `write_batch` of the same batch is
measured beside it for scale. Writes bench/results/redis.json and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from appliance.core.aggregation import Batch, aggregate
from appliance.core.event import Event
from appliance.core.settings import apply_defaults, load_settings
from appliance.core.transport import Offset, Position
from bench.__main__ import RESULTS
from plugins.store_redis.config import DEFAULTS, RedisSettings
from plugins.store_redis.fold import KeyList, fold_sites, global_plan, site_plan
from plugins.store_redis.store import RedisStore
from plugins.store_sqlite.analytics import SqliteAnalyticsStore

SOURCES = ["Google", "Direct / None", "news.ycombinator.com", "Twitter", "duckduckgo.com"]


def make_events(count: int, first_offset: int, rng: random.Random) -> list[Event]:
    now = time.time()
    events = []
    for i in range(count):
        custom = rng.random() < 0.1
        events.append(
            Event(
                event_id=f"b{first_offset + i}",
                ts=now - rng.random() * 60,
                site_id=1 + int(rng.paretovariate(1.5)) % 5,
                name="Signup" if custom else "pageview",
                path=f"/page/{int(rng.paretovariate(1.2)) % 60}",
                visitor_id=f"visitor-{rng.randrange(count // 3 + 1)}",
                session_id=f"session-{rng.randrange(count // 2 + 1)}",
                referrer_source=rng.choice(SOURCES),
            )
        )
    return events


def make_batch(count: int, first_offset: int, rng: random.Random) -> Batch:
    events = make_events(count, first_offset, rng)
    last = first_offset + count - 1
    offsets = [Offset("bench", "0", first_offset + i) for i in range(count)]
    return aggregate(events, [Position("bench", "0", first_offset, last)], offsets)


def fold_only(store: RedisStore, batch: Batch) -> None:
    """What write_batch does in Python before the script runs."""
    import msgspec

    keylist = KeyList()
    folds = fold_sites(batch.events)
    plans = [
        site_plan(store.keys, keylist, site, fold, batch.positions, store.retention)
        for site, fold in folds.items()
    ]
    overall = global_plan(store.keys, keylist, folds.values(), batch.positions)
    msgspec.json.encode({"sites": plans, "global": overall})


async def measure(url: str, cluster: bool, size: int, runs: int) -> dict[str, Any]:
    settings = load_settings(stores=["sqlite", "redis"])
    apply_defaults(settings, {"redis": DEFAULTS})
    settings.set("redis.url", url)
    settings.set("redis.cluster", cluster)
    settings.set("redis.key_prefix", f"bench-{uuid.uuid4().hex[:8]}")
    store = RedisStore(RedisSettings.from_settings(settings))
    await store.open()
    rng = random.Random(7)  # noqa: S311 (a repeatable load, not a secret)
    batches = [make_batch(size, run * size, rng) for run in range(runs + 2)]
    writes, folds, sqlite_writes = [], [], []
    try:
        await store.write_batch(batches[0])  # load the script, warm the connection
        for batch in batches[1:-1]:
            started = time.perf_counter()
            fold_only(store, batch)
            folds.append(time.perf_counter() - started)
            started = time.perf_counter()
            await store.write_batch(batch)
            writes.append(time.perf_counter() - started)
        redelivered = time.perf_counter()
        await store.write_batch(batches[1])  # every site's guard says "held"
        redelivery = time.perf_counter() - redelivered
        memory = await store.client.info("memory")
        await _delete_keys(store)
    finally:
        await store.close()
    with tempfile.TemporaryDirectory() as directory:
        sqlite = SqliteAnalyticsStore(Path(directory) / "analytics.db")
        sqlite.open()
        for batch in batches[1:-1]:
            started = time.perf_counter()
            sqlite.write_batch(batch)
            sqlite_writes.append(time.perf_counter() - started)
        sqlite.close()
    per_1000 = 1000 / size
    write = statistics.median(writes) * per_1000 * 1000
    fold = statistics.median(folds) * per_1000 * 1000
    return {
        "events_per_flush": size,
        "runs": runs,
        "write_ms_per_1000_events": round(write, 2),
        "fold_ms_per_1000_events": round(fold, 2),
        "redis_ms_per_1000_events": round(write - fold, 2),
        "write_p95_ms_per_1000_events": round(
            sorted(writes)[int(0.95 * (len(writes) - 1))] * per_1000 * 1000, 2
        ),
        "redelivered_batch_ms": round(redelivery * 1000, 2),
        "sqlite_write_ms_per_1000_events": round(
            statistics.median(sqlite_writes) * per_1000 * 1000, 2
        ),
        "redis_used_memory_human": memory.get("used_memory_human"),
    }


async def _delete_keys(store: RedisStore) -> None:
    client = store.client
    async for key in client.scan_iter(f"{store.keys.prefix}:*", count=1000):
        await client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "redis": args.url.split("@")[-1],
        "cluster": args.cluster,
        "flushes": [
            asyncio.run(measure(args.url, args.cluster, size, args.runs))
            for size in (200, 1000, 5000)
        ],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("redis-cluster.json" if args.cluster else "redis.json")).write_text(
        json.dumps(results, indent=2) + "\n"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
