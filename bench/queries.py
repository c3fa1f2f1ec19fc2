"""Section 4: stats API latency over 30 days of data (p50/p95), embedded SQLite and Postgres.

The data is bench/postgres_queries.py's generator (one site, visits with Zipf-distributed
pages, sources, countries, browsers; 30 days) written through each store's real write path
in flushes of 5,000 events (SQLite: 20,000, a bulk load through the same path). The endpoints
are called through the stats API in-process (Starlette TestClient: routing, API-key auth, the
query, JSON). The sizes are what fits the 10-minute budget on 2 cores; `--sqlite-events` /
`--pg-events` change them. The 10M-event runs are separate commands, `python -m
bench.postgres_queries` (about 25 min of loading on this machine) and `python -m
bench.sqlite_queries` (about 10 min); their last result files, if present, are quoted beside
ours.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    create_database,
    drop_database,
    percentiles,
    postgres_store,
    unique,
)

DAYS = 30
FLUSH = 5000  # Postgres; the SQLite loader writes bigger flushes (SQLITE_FLUSH)
SQLITE_FLUSH = 20_000


def end_time() -> float:
    """Mid-afternoon yesterday (UTC), inside an hour: the 30 days end here."""
    day = 86_400
    return float(time.time() // day * day - day + 15 * 3600 + 1234)


def endpoints(rng: str, filters: str = "") -> dict[str, str]:
    """The five queries of the issue; `filters` (e.g. `browser==Firefox`) narrows each."""
    rng += f"&filters={filters}" if filters else ""
    return {
        "kpis": f"/api/analytics/kpis?{rng}",
        "timeseries (day)": f"/api/analytics/timeseries?{rng}&interval=day",
        "top-pages": f"/api/analytics/top-pages?{rng}&limit=10",
        "breakdown source": f"/api/analytics/breakdown?{rng}&property=source&limit=10",
        "breakdown country": f"/api/analytics/breakdown?{rng}&property=country&limit=10",
    }


def time_api(appliance: Any, key: str, end: float, runs: int, filters: str = "") -> dict[str, Any]:
    from starlette.testclient import TestClient

    from appliance.app import create_app
    from appliance.core.periods import parse_range
    from bench.postgres_queries import DOMAIN, _iso

    span = parse_range("30d", now=end, tz="UTC")
    rng = f"domain={DOMAIN}&from={_iso(span.start, 'UTC')}&to={_iso(span.end, 'UTC')}"
    headers = {"authorization": f"Bearer {key}"}
    results: dict[str, Any] = {}
    with TestClient(create_app(appliance), base_url="http://bench", headers=headers) as client:
        for name, path in endpoints(rng, filters).items():
            for _ in range(2):
                answer = client.get(path)
                assert answer.status_code == 200, answer.text
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                client.get(path)
                samples.append(time.perf_counter() - started)
            row = percentiles(samples)
            results[name] = {"p50_ms": row["p50_ms"], "p95_ms": row["p95_ms"]}
            print(f"    {name:<20} {results[name]}", file=sys.stderr)
    return results


def load_sqlite(path: Path, total: int, end: float, days: int = DAYS) -> dict[str, Any]:
    from appliance.core.aggregation import aggregate
    from appliance.core.transport import Offset, Position
    from bench.postgres_queries import generate
    from plugins.store_sqlite.analytics import SqliteAnalyticsStore

    store = SqliteAnalyticsStore(path)
    store.open()
    started, offset, write_s = time.monotonic(), 0, 0.0
    try:
        for day_events in generate(total, days, end):
            for first in range(0, len(day_events), SQLITE_FLUSH):
                chunk = day_events[first : first + SQLITE_FLUSH]
                offsets = [Offset("bench", "0", offset + i) for i in range(len(chunk))]
                position = Position("bench", "0", offset, offset + len(chunk) - 1)
                begun = time.monotonic()
                store.write_batch(aggregate(chunk, [position], offsets))
                write_s += time.monotonic() - begun
                offset += len(chunk)
            elapsed = time.monotonic() - started
            print(f"\r  loaded {offset:,} events in {elapsed:.0f} s", end="", file=sys.stderr)
    finally:
        print(file=sys.stderr)
        store.close()
    return {"events": offset, "load_s": round(time.monotonic() - started, 1),
            "write_events_per_s": round(offset / write_s) if write_s else None,
            "write_us_per_event": round(write_s / offset * 1e6, 1) if offset else None}  # fmt: skip


def bench_sqlite(total: int, runs: int) -> dict[str, Any]:
    from bench.postgres_queries import KEY

    end = end_time()
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        result: dict[str, Any] = {"load": load_sqlite(Path(directory) / "analytics.db", total, end)}
        result["queries"] = time_api(sqlite_appliance(Path(directory)), KEY, end, runs)
        result["db_mib"] = round((Path(directory) / "analytics.db").stat().st_size / 2**20, 1)
    return result


def sqlite_appliance(directory: Path) -> Any:
    """An embedded appliance on `directory`, with the bench site (id 1) and API key."""
    from appliance.core.accounts import token_digest
    from appliance.core.runtime import Appliance
    from bench.postgres_queries import DOMAIN, KEY

    appliance = Appliance.create(
        data_dir=str(directory), stores=["sqlite"], account_store="sqlite",
        plugins={"autoload": False}, log_level="warning",
    )  # fmt: skip
    accounts = appliance.accounts
    accounts.open()
    try:
        if accounts.user_by_email("bench@example.com") is None:
            owner = accounts.create_user("bench@example.com", None, True)
            site = accounts.create_site(DOMAIN, owner.id)
            assert site.id == 1, site
            accounts.create_api_key(owner.id, "bench", token_digest(KEY))
    finally:
        accounts.close()
    return appliance


def bench_postgres(total: int, runs: int) -> dict[str, Any]:
    from bench.postgres_queries import KEY, SERVER, build_appliance, load

    name = unique("bench_queries")
    sketches = create_database(name)
    dsn = f"{SERVER}/{name}"
    end = end_time()
    try:
        store = postgres_store(dsn)
        store.open()
        try:
            result: dict[str, Any] = {"sketches": sketches}
            result["load"] = load(store, total, DAYS, end, FLUSH)
            with tempfile.TemporaryDirectory() as data_dir:
                appliance = build_appliance(dsn, Path(data_dir), "UTC")
                result["queries"] = time_api(appliance, KEY, end, runs)
        finally:
            store.close()
    finally:
        drop_database(name)
    return result


def quoted_file(name: str, names: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The last results/`name` of a separate 10M run, to quote beside this run's figures:
    its events, date and queries (renamed from its own names to ours by `names`)."""
    path = RESULTS / name
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if name == "postgres.json":  # its hll run; "exact" is the variant without sketches
        data = data.get("sketches") or {}
    queries = data.get("queries", {})
    names = names or {ours: ours for ours in endpoints("")}
    quoted = {
        "file": str(path.relative_to(RESULTS.parent.parent)),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime)),
        "events": data.get("load", {}).get("events", data.get("events")),
        "queries": {ours: queries[theirs] for ours, theirs in names.items() if theirs in queries},
    }
    if data.get("filtered"):
        quoted["filtered"] = data["filtered"]
    return quoted


POSTGRES_NAMES = {"kpis": "kpis", "timeseries (day)": "timeseries (30 days)",
                  "top-pages": "top-pages", "breakdown source": "breakdown source",
                  "breakdown country": "breakdown country"}  # fmt: skip


def run(sqlite_events: list[int], pg_events: int, runs: int, sqlite_runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for count in sqlite_events:  # two sizes: the SQLite store's cost grows with the events
        print(f"  queries: SQLite, {count:,} events", file=sys.stderr)
        try:
            result[f"sqlite_{count}"] = bench_sqlite(count, sqlite_runs)
        except Exception as error:
            result[f"sqlite_{count}"] = {"skipped": f"{type(error).__name__}: {error}"}
    if pg_events:
        print(f"  queries: Postgres, {pg_events:,} events", file=sys.stderr)
        try:
            result["postgres"] = bench_postgres(pg_events, runs)
        except Exception as error:
            result["postgres"] = {"skipped": f"{type(error).__name__}: {error}"}
    result["postgres_file"] = quoted_file("postgres.json", POSTGRES_NAMES)
    result["sqlite_file"] = quoted_file("sqlite.json")  # python -m bench.sqlite_queries
    return result
