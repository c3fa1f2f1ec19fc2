"""Enrichment cost per event on a realistic mix: 10 % never-seen user agents.

Runs every built-in enricher exactly as ingest does (sorted by order) on prepared events, so
the figure is the enrichment share of the ingest path. `python -m bench.enrich` alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event, IncomingEvent
from appliance.core.runtime import Appliance

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "user_agents.jsonl"
REFERRERS = [
    "",
    "",
    "https://www.google.com/",
    "https://t.co/x",
    "https://news.ycombinator.com/",
    "https://duckduckgo.com/",
    "https://example.com/pricing",
    "https://blog.someone.dev/p",
]
URLS = [
    "https://example.com/",
    "https://example.com/docs",
    "https://example.com/?utm_source=nl&utm_campaign=x",
]


def _workload(count: int, unique_share: float, seed: int = 7) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    agents = [json.loads(line)["ua"] for line in FIXTURE.read_text().splitlines()]
    browsers = [ua for ua in agents if ua.startswith("Mozilla/5.0 (") and "bot" not in ua.lower()]
    items = []
    for n in range(count):
        if rng.random() < unique_share:  # a user agent nobody sent before: cache miss
            ua = rng.choice(browsers).replace("Safari/", f"Safari/{n}.", 1)
        else:
            ua = rng.choice(browsers)
        ip = ".".join(str(rng.randint(1, 223)) for _ in range(4))
        items.append((ua, ip, rng.choice(REFERRERS), rng.choice(URLS)))
    return items


def run(events: int = 20_000, unique_share: float = 0.10) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data:
        appliance = Appliance.create(data_dir=data, plugins={"autoload": False})
        appliance.accounts.open()
        try:
            enrichers = appliance.enrichers
            for enricher in enrichers:
                if hasattr(enricher, "salts"):
                    asyncio.run(enricher.salts.load())
            incoming = IncomingEvent(domain="example.com", path="/")

            def one_pass(items: list[tuple[str, str, str, str]]) -> list[float]:
                timings = []
                for ua, ip, referrer, url in items:
                    event = Event(event_id="e", ts=time.time(), site_id=1, name="pageview",
                                  path="/", referrer=referrer, url=url)  # fmt: skip
                    context = EnrichContext(incoming, ip, ua, "example.com")
                    started = time.perf_counter_ns()
                    for enricher in enrichers:
                        if enricher.enrich(event, context) is None:
                            break
                    timings.append((time.perf_counter_ns() - started) / 1000)
                return timings

            one_pass(_workload(5_000, 0.0, seed=1))  # warm-up: the common agents are cached
            timings = one_pass(_workload(events, unique_share))
        finally:
            appliance.accounts.close()
    timings.sort()
    return {
        "events": events,
        "unique_user_agents": unique_share,
        "mean_us": statistics.fmean(timings),
        "p50_us": timings[len(timings) // 2],
        "p99_us": timings[int(len(timings) * 0.99)],
        "enrichers": [e.name for e in enrichers],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
