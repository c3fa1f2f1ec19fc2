"""Run every benchmark whose components exist; write bench/results/latest.{md,json}.

    python -m bench                       # everything, under 10 minutes on 2 cores
    python -m bench --only ingest         # one section (repeatable: --only a --only b)

Sections: ingest (1, plus serve's memory and the tracker's size), freshness (2),
processor (3, plus process's memory), queries (4). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# Re-exported: bench.kafka_pipeline and bench.redis_flush import these from here.
from bench.common import RESULTS, free_port, run_wrk  # noqa: F401

SECTIONS = ("ingest", "freshness", "processor", "queries")


def services_up() -> dict[str, bool]:
    import socket

    up = {}
    for name, port in (("postgres", 5432), ("redis", 6379), ("kafka", 9092)):
        with socket.socket() as sock:
            sock.settimeout(1)
            up[name] = sock.connect_ex(("127.0.0.1", port)) == 0
    return up


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section")
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--broker-warmup", type=int, default=20, help="seconds of load before the Kafka targets"
    )
    parser.add_argument("--fresh-seconds", type=float, default=20, help="probing per profile")
    parser.add_argument("--fresh-rate", type=int, default=1000, help="background events/s")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="processor backlog events")
    parser.add_argument(
        "--more-connections",
        type=int,
        default=128,
        help="Starlette and Kafka again at this many connections (0: no)",
    )
    parser.add_argument("--sqlite-events", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--pg-events", type=int, default=200_000, help="0: only reuse the file")
    parser.add_argument("--query-runs", type=int, default=20, help="timed calls (Postgres)")
    parser.add_argument("--sqlite-runs", type=int, default=10, help="timed calls (SQLite)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="for latest.md and .json")
    args = parser.parse_args()
    sections = args.only or list(SECTIONS)
    started = time.monotonic()
    up = services_up()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "seconds": args.seconds,
        "connections": args.connections,
        "broker_warmup_s": args.broker_warmup,
        "services": up,
        "not_run": {},
    }
    need = {"ingest": ("kafka",), "freshness": ("kafka", "postgres", "redis"),
            "processor": ("kafka", "postgres", "redis"), "queries": ()}  # fmt: skip
    for section in sections:
        missing = [name for name in need[section] if not up[name]]
        if section == "ingest" and shutil.which("wrk") is None:
            missing.append("wrk (apt-get install wrk)")
        if missing:  # the section still runs what it can; say what is missing
            results["not_run"][section] = "missing: " + ", ".join(missing) + " (`make services`)"
        print(f"bench: {section} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        if section == "ingest":
            from bench import enrich, ingest

            results["enrichment"] = enrich.run()
            results["ingest"] = ingest.run(
                args.seconds, args.connections, args.more_connections, args.broker_warmup
            )
        elif section == "freshness":
            from bench import freshness

            results["freshness"] = freshness.run(args.fresh_seconds, args.fresh_rate)
        elif section == "processor":
            from bench import processor

            results["processor"] = processor.run(args.backlog, timeout_s=150)
        elif section == "queries":
            from bench import queries

            sizes = [int(size) for size in args.sqlite_events.split(",") if size]
            results["queries"] = queries.run(
                sizes, args.pg_events, args.query_runs, args.sqlite_runs
            )
    results["took_s"] = round(time.monotonic() - started, 1)
    from bench import report

    print(report.write(results, args.out))


if __name__ == "__main__":
    main()
