"""Postgres store at scale: load N events over D days for one site, then time each stats
endpoint over the last 30 days (p50/p95).

    python -m bench.postgres_queries                      # 10 million events, 90 days
    python -m bench.postgres_queries --events 1000000     # quicker
    python -m bench.postgres_queries --reuse              # skip the load, query again
    python -m bench.postgres_queries --exact              # a database without hll

Needs the PostgreSQL of `make services` (127.0.0.1:5432, role appliance). The data goes into
its own database (`appliance_bench` or `appliance_bench_exact`), loaded through the store's
real write path: flushes of `--flush` events in time order, each one transaction with COPY
into staging, visits, rollups and offsets, as the processor writes them. The endpoints are
timed through the stats API (Starlette in-process: routing, API-key auth against Postgres,
JSON), plus the dashboard-only queries at store level. Results: bench/results/postgres.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from appliance.core.aggregation import DAY, Batch, aggregate
from appliance.core.event import Event
from appliance.core.filters import PROPERTIES
from appliance.core.transport import Offset, Position

SERVER = "postgresql://appliance:appliance@127.0.0.1:5432"
RESULTS = Path(__file__).parent / "results" / "postgres.json"
DOMAIN = "bench.example"
KEY = "bench-api-key-0123456789abcdefghijklmnopqrstuvwxyz"

PATHS = ["/"] + [f"/{section}/{n}" for section in ("blog", "docs", "shop") for n in range(160)]
SOURCES = [
    "Direct / None",
    "Google",
    "Bing",
    "DuckDuckGo",
    "Twitter",
    "Facebook",
    "Reddit",
    "news.ycombinator.com",
    "LinkedIn",
    "GitHub",
] + [f"site{n}.example" for n in range(40)]
COUNTRIES = [
    "US",
    "DE",
    "GB",
    "FR",
    "IN",
    "BR",
    "CA",
    "NL",
    "JP",
    "ES",
    "IT",
    "PL",
    "SE",
    "AU",
    "CH",
    "AT",
    "BE",
    "DK",
    "NO",
    "FI",
    "",
] + [f"C{n}" for n in range(40)]
BROWSERS = ["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera", "Brave", "Vivaldi"]
OSES = ["Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS"]
DEVICES = ["desktop", "mobile", "tablet"]
SCREENS = [390, 412, 768, 1280, 1366, 1440, 1536, 1920, 2560, 0]
EVENTS = ["Signup", "Download", "Outbound Link: Click", "Newsletter"]
HOURS = range(24)  # more visits in the (UTC) afternoon and evening
HOUR_WEIGHTS = [2 + math.sin((hour - 9) / 24 * 2 * math.pi) * 1.6 for hour in HOURS]


def zipf_choice(rng: random.Random, items: list[str], skew: float = 1.1) -> str:
    """Popular items first: rank r is chosen with weight 1 / r^skew (cached per list)."""
    weights = _weights.get((id(items), skew))
    if weights is None:
        weights = _weights[(id(items), skew)] = _cumulative(len(items), skew)
    return items[_bisect(weights, rng.random() * weights[-1])]


_weights: dict[tuple[int, float], list[float]] = {}


def _cumulative(count: int, skew: float) -> list[float]:
    total, out = 0.0, []
    for rank in range(1, count + 1):
        total += 1 / rank**skew
        out.append(total)
    return out


def _bisect(cumulative: list[float], value: float) -> int:
    low, high = 0, len(cumulative) - 1
    while low < high:
        middle = (low + high) // 2
        if cumulative[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


def visit_events(rng: random.Random, start: float, number: int, day: int) -> list[Event]:
    """One visit: 1 + geometric pageviews (mean ~2.2), sometimes custom events."""
    person = rng.randrange(36_000)
    session = f"d{day}-v{person}-t{rng.randrange(2)}"  # the tracker's, kept past midnight

    def visitor(ts: float) -> str:  # rotates at each UTC midnight, as with the real salt
        return f"d{day + int(ts // DAY) - int(start // DAY)}-v{person}"

    attributes = {
        "referrer_source": zipf_choice(rng, SOURCES),
        "country": zipf_choice(rng, COUNTRIES),
        "browser": zipf_choice(rng, BROWSERS, 1.5),
        "os": zipf_choice(rng, OSES, 1.2),
        "device": rng.choice(DEVICES),
        "screen_width": rng.choice(SCREENS),
    }
    if rng.random() < 0.1:
        attributes |= {"utm_source": "newsletter", "utm_medium": "email",
                       "utm_campaign": f"week-{day // 7}"}  # fmt: skip
    if attributes["referrer_source"] != "Direct / None":
        attributes["referrer"] = f"https://{attributes['referrer_source'].lower()}/ref"
    events, ts = [], start
    pages = 1
    while rng.random() < 0.55 and pages < 30:
        pages += 1
    for n in range(pages):
        events.append(
            Event(event_id=f"{number}-{n}", ts=ts, site_id=1, name="pageview",
                  path=zipf_choice(rng, PATHS), visitor_id=visitor(ts), session_id=session,
                  **(attributes if n == 0 else {"browser": attributes["browser"],
                                                "country": attributes["country"]}))
        )  # fmt: skip
        if rng.random() < 0.06:
            events.append(
                Event(event_id=f"{number}-{n}c", ts=ts + 1, site_id=1,
                      name=zipf_choice(rng, EVENTS), path=events[-1].path,
                      visitor_id=visitor(ts + 1), session_id=session,
                      props={"plan": rng.choice(["free", "pro", "team"])})
            )  # fmt: skip
        ts += min(rng.expovariate(1 / 70), 1500)
    return events


def generate(total: int, days: int, end: float, seed: int = 1) -> Iterator[list[Event]]:
    """Each day's events in time order (visits crossing midnight finish the next day)."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    per_day = total / days
    start_day = int(end // DAY) - days
    pending: list[tuple[float, int, Event]] = []
    produced, number = 0, 0
    for index in range(days):
        day_start = (start_day + index) * DAY
        quota = round(per_day * (index + 1)) - produced
        made = 0
        while made < quota:
            hour = rng.choices(HOURS, weights=HOUR_WEIGHTS)[0]
            start = day_start + hour * 3600 + rng.random() * 3600
            for event in visit_events(rng, start, number, index):
                heapq.heappush(pending, (event.ts, number, event))
                made += 1
            number += 1
        produced += made
        day_end = day_start + DAY
        ready = []
        while pending and pending[0][0] < day_end:
            ready.append(heapq.heappop(pending)[2])
        yield ready
    yield [heapq.heappop(pending)[2] for _ in range(len(pending))]


# --- database and load ------------------------------------------------------------------


def recreate(name: str, template: str) -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def write_until_held(store: Any, batch: Batch) -> None:
    """Retry as the processor does when the server restarts (the test suite stops it)."""
    from appliance.core.stores import StoreUnavailable

    while True:
        try:
            store.write_batch(batch)
            return
        except StoreUnavailable as error:
            print(f"\n  {error}; retrying", file=sys.stderr)
            time.sleep(2)


def load(store: Any, total: int, days: int, end: float, flush: int) -> dict[str, float]:
    started = time.monotonic()
    offset, loaded = 0, 0
    for day_events in generate(total, days, end):
        for first in range(0, len(day_events), flush):
            chunk = day_events[first : first + flush]
            offsets = [Offset("bench", "0", offset + i) for i in range(len(chunk))]
            position = Position("bench", "0", offset, offset + len(chunk) - 1)
            # The processor folds each delivery once for all stores (aggregate()); this store
            # computes its rollups in SQL, so the load times the store alone.
            write_until_held(store, aggregate(chunk, [position], offsets))
            offset += len(chunk)
        loaded += len(day_events)
        elapsed = time.monotonic() - started
        print(f"\r  loaded {loaded:,} events in {elapsed:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    load_s = time.monotonic() - started
    with psycopg.connect(store.db.settings.dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {
        "events": loaded,
        "load_s": round(load_s, 1),
        "events_per_s": round(loaded / load_s),
        "vacuum_analyze_s": round(time.monotonic() - started - load_s, 1),
    }


def table_sizes(store: Any) -> dict[str, str]:
    with store.db.connection() as conn:
        rows = conn.execute(
            "SELECT t, pg_size_pretty(sum(pg_total_relation_size(c.oid)))"
            " FROM (SELECT CASE WHEN relname LIKE 'events%%' THEN 'events' ELSE relname END t,"
            " oid FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace) c"
            " GROUP BY t ORDER BY sum(pg_total_relation_size(c.oid)) DESC LIMIT 8"
        ).fetchall()
    return dict(rows)


# --- timing -----------------------------------------------------------------------------


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1)}


def timed(call: Any, runs: int) -> dict[str, float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def measure(appliance: Any, store: Any, end: float, runs: int, tz: str) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from appliance.app import create_app
    from appliance.core.periods import parse_range

    results: dict[str, Any] = {}
    span = parse_range("30d", now=end, tz=tz)
    headers = {"authorization": f"Bearer {KEY}"}
    with TestClient(create_app(appliance), base_url="http://bench", headers=headers) as client:

        def api(path: str) -> Any:
            def call() -> None:
                answer = client.get(path)
                assert answer.status_code == 200, answer.text

            return call

        # `period=30d` is relative to now; the data ends at `end`, so ask with from/to.
        rng = f"domain={DOMAIN}&from={_iso(span.start, tz)}&to={_iso(span.end, tz)}"
        endpoints = {
            "kpis": f"/api/analytics/kpis?{rng}",
            "timeseries (30 days)": f"/api/analytics/timeseries?{rng}&interval=day",
            "timeseries (720 hours)": f"/api/analytics/timeseries?{rng}&interval=hour",
            "top-pages": f"/api/analytics/top-pages?{rng}&limit=10",
        }
        endpoints |= {
            f"breakdown {prop}": f"/api/analytics/breakdown?{rng}&property={prop}&limit=10"
            for prop in PROPERTIES
        }
        filtered = "&filters=browser==Firefox"
        endpoints |= {
            "kpis, filtered browser==Firefox": f"/api/analytics/kpis?{rng}{filtered}",
            "top-pages, filtered browser==Firefox": f"/api/analytics/top-pages?{rng}{filtered}",
            "breakdown source, filtered page==/docs/3": (
                f"/api/analytics/breakdown?{rng}&property=source&filters=page==/docs/3"
            ),
        }
        for name, path in endpoints.items():
            results[name] = timed(api(path), runs if "filtered" not in name else max(5, runs // 4))
            print(f"  {name:<42} {results[name]}", file=sys.stderr)
    store_calls = {
        "event_properties Signup (dashboard)": lambda: store.event_properties(
            1, span.start, span.end, "Signup", 10, ()
        ),
        "latest_event_time (dashboard poll)": lambda: store.latest_event_time(1),
    }
    for name, call in store_calls.items():
        results[name] = timed(call, runs)
        print(f"  {name:<42} {results[name]}", file=sys.stderr)
    return results


def _iso(ts: int, tz: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ts, ZoneInfo(tz)).replace(tzinfo=None).isoformat()


def small_flushes(store: Any, end: float, runs: int) -> dict[str, float]:
    """The live case: a flush of 100 new events into the loaded database (after `end` and
    the queried range, so reruns of the bench see the same numbers)."""
    rng = random.Random(99)  # noqa: S311 (reproducible test data, not secrets)
    offset = store.applied_positions("bench").get("0", -1) + 1
    ts = max(end + 2 * 3600, (store.watermark() or end) + 1)
    samples = []
    for run in range(runs + 3):
        events: list[Event] = []
        while len(events) < 100:
            events += visit_events(rng, ts + len(events), 10**9 + offset + len(events), 10**4)
        events = sorted(events[:100], key=lambda event: event.ts)
        positions = [Position("bench", "0", offset, offset + 99)]
        offsets = [Offset("bench", "0", offset + i) for i in range(100)]
        started = time.perf_counter()
        store.write_batch(aggregate(events, positions, offsets))
        if run >= 3:
            samples.append((time.perf_counter() - started) * 1000)
        offset, ts = offset + 100, events[-1].ts + 1
    return percentiles(samples)


def build_appliance(dsn: str, data_dir: Path, tz: str) -> Any:
    from appliance.core.accounts import token_digest
    from appliance.core.runtime import Appliance

    appliance = Appliance.create(
        data_dir=str(data_dir), stores=["postgres"], account_store="postgres",
        plugins={"autoload": False}, log_level="warning",
        postgres={"dsn": dsn, "pool_max": 8},
    )  # fmt: skip
    accounts = appliance.accounts
    accounts.open()
    user = accounts.user_by_email("bench@example.com")
    if user is None:
        owner = accounts.create_user("bench@example.com", None, True)
        site = accounts.create_site(DOMAIN, owner.id)
        accounts.create_api_key(owner.id, "bench", token_digest(KEY))
        assert site.id == 1
    accounts.set_site_timezone(1, tz)
    accounts.close()
    return appliance


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--flush", type=int, default=20_000, help="events per write_batch")
    parser.add_argument("--runs", type=int, default=40, help="timed calls per endpoint")
    parser.add_argument("--tz", default="UTC", help="the site's time zone")
    parser.add_argument("--reuse", action="store_true", help="query the existing database")
    parser.add_argument("--exact", action="store_true", help="a database without hll")
    args = parser.parse_args(argv)

    from bench.common import postgres_store

    name = "appliance_bench_exact" if args.exact else "appliance_bench"
    dsn = f"{SERVER}/{name}"
    end = float(1_790_000_000 // DAY * DAY + 15 * 3600 + 1234)  # mid-afternoon, inside an hour
    if not args.reuse:
        recreate(name, "template0" if args.exact else "appliance_test")
    store = postgres_store(dsn)
    store.open()
    report: dict[str, Any] = {"events": args.events, "days": args.days, "tz": args.tz,
                              "sketches": store.sketches.enabled}  # fmt: skip
    if not args.reuse:
        print(f"loading {args.events:,} events over {args.days} days into {name}", file=sys.stderr)
        report["load"] = load(store, args.events, args.days, end, args.flush)
    report["sizes"] = table_sizes(store)
    import tempfile

    with tempfile.TemporaryDirectory() as data_dir:
        appliance = build_appliance(dsn, Path(data_dir), args.tz)
        print(f"timing ({args.runs} runs each, 30 days ending {end:.0f}):", file=sys.stderr)
        report["queries"] = measure(appliance, store, end, args.runs, args.tz)
    report["flush_100_events"] = small_flushes(store, end, args.runs)
    store.close()
    RESULTS.parent.mkdir(exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = ("exact" if args.exact else "sketches") + ("" if args.tz == "UTC" else f" {args.tz}")
    loaded = results.get("exact" if args.exact else "sketches", {}).get("load")
    if args.reuse and loaded:
        report["load"] = loaded  # the data measured now is that load's
    results[key] = report
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
