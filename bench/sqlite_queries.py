"""Embedded (SQLite) store at scale: load N events over D days for one site, then time the
section-4 queries over the last 30 days (p50/p95), unfiltered and with one filter.

    python -m bench.sqlite_queries                      # 10 million events, 90 days
    python -m bench.sqlite_queries --events 1000000     # quicker
    python -m bench.sqlite_queries --reuse              # skip the load, query again
    python -m bench.sqlite_queries --load-only          # load now, time later with --reuse

The data is bench/postgres_queries.py's generator, written through the store's real write
path (`write_batch` after the processor's `aggregate`, flushes of 20,000 events, as
bench/queries.py loads SQLite), into bench/results/sqlite-data/ (git-ignored, kept for
`--reuse`). The queries go through the stats API in-process (bench/queries.py's timing).
Results: bench/results/sqlite.json, quoted by `make bench`'s queries section.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from appliance.core.aggregation import DAY
from bench.common import RESULTS
from bench.queries import load_sqlite, sqlite_appliance, time_api

DATA = RESULTS / "sqlite-data"
RESULT = RESULTS / "sqlite.json"
# A fixed end (as bench.postgres_queries's), mid-afternoon inside an hour: --reuse and the
# Postgres run query the same 30 days.
END = float(1_790_000_000 // DAY * DAY + 15 * 3600 + 1234)
FILTER = "browser==Firefox"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=40, help="timed calls per query")
    parser.add_argument("--reuse", action="store_true", help="query the loaded database")
    parser.add_argument("--load-only", action="store_true", help="load, keep, don't time")
    args = parser.parse_args(argv)

    from bench.postgres_queries import KEY

    database = DATA / "analytics.db"
    previous = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    report: dict[str, Any] = {"events": args.events, "days": args.days, "end": END}
    if args.reuse:
        if not database.exists():
            sys.exit(f"{database} is missing: run without --reuse first")
        report |= {key: previous[key] for key in ("events", "days", "load") if key in previous}
    else:
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        print(f"loading {args.events:,} events over {args.days} days", file=sys.stderr)
        load = load_sqlite(database, args.events, END, args.days)
        report["load"] = load | {"events_per_s": round(load["events"] / load["load_s"])}
    report["db_mib"] = round(sum(f.stat().st_size for f in DATA.glob("analytics.db*")) / 2**20)
    if args.load_only:
        RESULT.write_text(json.dumps(report, indent=2) + "\n")  # for --reuse
        print(json.dumps(report, indent=2))
        return
    appliance = sqlite_appliance(DATA)
    print(f"timing ({args.runs} runs each, 30 days ending {END:.0f}):", file=sys.stderr)
    report["queries"] = time_api(appliance, KEY, END, args.runs)
    print(f"filtered {FILTER}:", file=sys.stderr)
    report["filtered"] = {"filter": FILTER,
                          "queries": time_api(appliance, KEY, END, args.runs, FILTER)}  # fmt: skip
    report["store_calls"] = store_calls(database, args.runs)
    report["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def store_calls(database: Path, runs: int) -> dict[str, Any]:
    """Calls outside the five queries that read the whole store: the watermark (asked every
    0.5 s by the query layer when Redis is configured) and the dashboard's poll."""
    from bench.postgres_queries import timed
    from plugins.store_sqlite.analytics import SqliteAnalyticsStore

    store = SqliteAnalyticsStore(database)
    store.open()
    try:
        return {"watermark": timed(store.watermark, runs),
                "latest_event_time": timed(lambda: store.latest_event_time(1), runs)}  # fmt: skip
    finally:
        store.close()


if __name__ == "__main__":
    main()
