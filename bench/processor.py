"""Section 3 (processor throughput) and 5 (memory of `process` under a backlog).

A backlog of N events (a realistic mix: 5 sites, 60 paths, a visitor per 3 events, 10 % custom
events, timestamps rising over the last minute in publish order, as ingest stamps them) is
published to a fresh topic first. Then `appliance process` (APPLIANCE_ENV=local: Postgres +
Redis, a fresh consumer group, database and Redis prefix) starts with one process, and again
with two in a new group and database, reading the same topic (6 partitions) from the start.
Events/s = events stored in Postgres (counted with SQL every 0.25 s) from the first stored
event to the last; the figure with start-up (interpreter, plugins, group join) included is
given beside it, and so is the CPU time per 1M events of the processes and of the Postgres
server processes serving their database (read from /proc between their start and the last
stored event): on 2 cores the two compete, and Postgres's share bounds what any processor
change can gain.

Last, the same events go through the Postgres store alone: its `write_batch` called in this
process in flushes of the processor's size, with no Kafka, no Redis and no processor. A
processor writes each flush in one transaction on one connection, after the one before, and
reads and Redis writes overlap that; so this rate is about the most any processor change can
reach on this machine without changing the store. And once more with the timestamps shuffled
over the minute, which no ingest publishes: the worst case for the visits (an event earlier
than its visit's start moves the start, and with it the visit's index entries).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psycopg

from appliance.core.event import Event
from bench.common import (
    KAFKA,
    PG_SERVER,
    Appliance,
    RssSampler,
    cpu_s,
    create_database,
    delete_topics,
    drop_database,
    postgres_store,
    unique,
)


def backlog_events(count: int) -> list[Event]:
    """The mix of bench.redis_flush, with timestamps rising in publish order over the same
    minute: ingest stamps each event with the time it received it, so a partition's events
    are in time order (give or take the clocks of several ingest processes)."""
    from bench.redis_flush import make_events

    events = make_events(count, 0, random.Random(11))  # noqa: S311
    for event, ts in zip(events, sorted(event.ts for event in events), strict=True):
        event.ts = ts
    return events


def shuffled_times(events: list[Event]) -> list[Event]:
    """The same events with their timestamps shuffled over the minute (no ingest publishes
    this: the worst case for visits, whose start and index entries then move)."""
    stamps = [event.ts for event in events]
    random.Random(12).shuffle(stamps)  # noqa: S311
    return [msgspec.structs.replace(e, ts=ts) for e, ts in zip(events, stamps, strict=True)]


def publish_backlog(topic: str, events: list[Event]) -> dict[str, Any]:
    from appliance.core.settings import apply_defaults, load_settings
    from plugins.transport_kafka.config import DEFAULTS, KafkaSettings
    from plugins.transport_kafka.transport import KafkaTransport

    settings = load_settings(transport="kafka", kafka={"bootstrap_servers": KAFKA, "topic": topic})
    apply_defaults(settings, {"kafka": DEFAULTS})
    count = len(events)

    async def body() -> float:
        transport = KafkaTransport(KafkaSettings.from_settings(settings))
        await transport.start()
        await asyncio.wait_for(transport._topics_ready.wait(), 30)  # noqa: SLF001
        started = time.monotonic()
        waiting: list[asyncio.Future[Any]] = []
        for first in range(0, count, 50):
            waiting.append(transport.publish(events[first : first + 50]))
            if len(waiting) >= 400:  # 20,000 events in flight at most
                errors = [e for e in await asyncio.gather(*waiting) if e]
                if errors:
                    raise RuntimeError(f"publish failed: {errors[0]}")
                waiting = []
        errors = [e for e in await asyncio.gather(*waiting) if e]
        if errors:
            raise RuntimeError(f"publish failed: {errors[0]}")
        took = time.monotonic() - started
        await transport.stop()
        await transport.close()
        return took

    took = asyncio.run(body())
    return {"events": count, "publish_s": round(took, 1)}


def postgres_cpu_s(database: str, monitor: int) -> float:
    """CPU seconds of the Postgres backends connected to `database` (a local server), but the
    bench's own `monitor` backend (its count(*) every 0.25 s is no cost of the processor)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            continue
        if command.startswith("postgres") and f" {database} " in command and int(pid) != monitor:
            total += cpu_s(int(pid))
    return total


def consume(topic: str, count: int, processes: int, timeout_s: float) -> dict[str, Any]:
    app = Appliance("local", sites=())
    app.env["APPLIANCE_KAFKA__TOPIC"] = topic  # the shared backlog
    app.topic = ""  # deleted by run(), not by this deployment
    with app:
        dsn = app.env["APPLIANCE_POSTGRES__DSN"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            monitor = conn.info.backend_pid
            postgres_before = postgres_cpu_s(app.database, monitor)
            workers = [app.start_processor() for _ in range(processes)]
            samplers = [RssSampler(w.pid).__enter__() for w in workers]
            first_at = stored = first_count = 0
            try:
                while stored < count:
                    if time.monotonic() - started > timeout_s:
                        break
                    if any(w.poll() is not None for w in workers):
                        raise RuntimeError("a processor exited")
                    time.sleep(0.25)
                    stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
                    if stored and not first_at:
                        first_at, first_count = time.monotonic(), stored
                done = time.monotonic()
                postgres_cpu = postgres_cpu_s(app.database, monitor) - postgres_before
                process_cpu = sum(cpu_s(w.pid) for w in workers)
            finally:
                for sampler in samplers:
                    sampler.__exit__()
    steady = (stored - first_count) / (done - first_at) if done > first_at else 0
    return {
        "processes": processes,
        "stored": stored,
        "complete": stored >= count,
        "events_per_s": round(steady),
        "events_per_s_per_process": round(steady / processes),
        "events_per_s_with_startup": round(stored / (done - started)),
        "startup_to_first_flush_s": round(first_at - started, 1) if first_at else None,
        "rss_process_backlog_mib": [round(s.max_mib, 1) for s in samplers],
        "process_cpu_s_per_1m": round(process_cpu / max(stored, 1) * 1e6, 1),
        "postgres_cpu_s_per_1m": round(postgres_cpu / max(stored, 1) * 1e6, 1),
        "sketches": app.sketches,
    }


def store_alone(events: list[Event]) -> dict[str, Any]:
    """The Postgres store's `write_batch` over `events`, in this process (see the module's
    docstring): events/s, and CPU per 1M events of this process and of Postgres."""
    from appliance.core.aggregation import Batch
    from appliance.core.gc_tuning import tuned_for_throughput
    from appliance.core.settings import load_settings
    from appliance.core.transport import Position

    flush = int(load_settings().processor.max_batch_events)
    name = unique("bench_store")
    sketches = create_database(name)
    try:
        dsn = f"{PG_SERVER}/{name}"
        store = postgres_store(dsn, pool_max=2)
        store.open()
        try:
            batches = [
                Batch(events[first : first + flush],
                      [Position("backlog", "0", first, min(first + flush, len(events)) - 1)])
                for first in range(0, len(events), flush)
            ]  # fmt: skip
            with tuned_for_throughput():  # as `appliance process` collects
                postgres_before, process_before = postgres_cpu_s(name, -1), time.process_time()
                started = time.monotonic()
                written = [store.write_batch(batch) for batch in batches]
                took = time.monotonic() - started
            postgres_cpu = postgres_cpu_s(name, -1) - postgres_before
            process_cpu = time.process_time() - process_before
            if not all(written):
                raise RuntimeError("a flush found its events stored already")
            with psycopg.connect(dsn) as conn:
                stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            store.close()
    finally:
        drop_database(name)
    return {
        "events": len(events),
        "stored": stored,
        "flush_events": flush,
        "events_per_s": round(len(events) / took),
        "process_cpu_s_per_1m": round(process_cpu / len(events) * 1e6, 1),
        "postgres_cpu_s_per_1m": round(postgres_cpu / len(events) * 1e6, 1),
        "sketches": sketches,
    }


def run(count: int, timeout_s: float) -> dict[str, Any]:
    topic = unique("bench_backlog")
    result: dict[str, Any] = {}
    try:
        print(f"  processor: publishing a backlog of {count:,} events", file=sys.stderr)
        result["backlog"] = publish_backlog(topic, backlog_events(count))
        for processes in (1, 2):
            print(f"  processor: {processes} process(es)", file=sys.stderr)
            try:
                result[f"processes_{processes}"] = consume(topic, count, processes, timeout_s)
            except Exception as error:
                result[f"processes_{processes}"] = {"skipped": f"{type(error).__name__}: {error}"}
        events = backlog_events(count)  # again: not held in memory while processes run
        for key, written in (("store_alone", events), ("store_alone_shuffled", None)):
            print(f"  processor: {key.replace('_', ' ')}", file=sys.stderr)
            try:
                result[key] = store_alone(written or shuffled_times(events))
            except Exception as error:
                result[key] = {"skipped": f"{type(error).__name__}: {error}"}
    except Exception as error:
        result["skipped"] = f"{type(error).__name__}: {error}"
    finally:
        delete_topics(topic, f"{topic}_dlq")
    return result
