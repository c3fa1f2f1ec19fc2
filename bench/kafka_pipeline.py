"""Kafka profile figures: `python -m bench.kafka_pipeline` (needs the broker: `make services`).

1. pipeline: events published through the Kafka transport, consumed by one processor and
   written to SQLite, in one process without HTTP: events/s, first publish to last stored.
2. serve + process: wrk POSTs /api/events to `appliance serve` (transport kafka) while a
   separate `appliance process` consumes: ingest requests/s, then events/s from the first
   request until the stats API counts every accepted event.
3. latency: one event at a time, time from its 202 to the stats API counting it (p50/p95),
   for isolated events (0.5 s apart) and for a steady trickle (50 ms apart), where the
   processor's flush interval (200 ms) batches them.

Writes bench/results/kafka.json and prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx

from appliance.core.event import Event
from appliance.core.processor import Processor
from appliance.core.settings import apply_defaults, load_settings
from bench.__main__ import RESULTS, free_port, run_wrk
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.transport_kafka.config import DEFAULTS, KafkaSettings
from plugins.transport_kafka.transport import KafkaTransport

BOOTSTRAP = "127.0.0.1:9092"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def kafka_settings(topic: str) -> KafkaSettings:
    settings = load_settings(
        transport="kafka", kafka={"bootstrap_servers": BOOTSTRAP, "topic": topic}
    )
    apply_defaults(settings, {"kafka": DEFAULTS})
    return KafkaSettings.from_settings(settings)


def bench_pipeline(count: int) -> dict[str, float]:
    settings = kafka_settings(f"bench-{uuid.uuid4().hex[:8]}")
    store = SqliteAnalyticsStore(Path(tempfile.mkdtemp(prefix="kafka-bench-")) / "a.db")
    store.open()
    now = time.time()
    events = [
        Event(event_id=uuid.uuid4().hex, ts=now, site_id=1 + i % 8, name="pageview",
              path=f"/p{i % 20}", visitor_id=f"v{i % 500}", session_id=f"s{i % 900}")
        for i in range(count)
    ]  # fmt: skip

    async def run() -> dict[str, float]:
        transport = KafkaTransport(settings)
        processor = Processor(transport, [store], flush_interval_s=0.2, max_batch_events=5000)
        await transport.start()
        await processor.subscribe()
        task = asyncio.create_task(processor.run())
        started = time.monotonic()
        for first in range(0, count, 50):
            while True:
                try:
                    transport.publish(events[first : first + 50])
                    break
                except Exception:  # queue full: let librdkafka send
                    await asyncio.sleep(0.001)
        published = time.monotonic() - started
        while processor.stats.events < count:
            await asyncio.sleep(0.01)
        stored = time.monotonic() - started
        await transport.stop()
        processor.stop()
        await task
        await transport.close()
        return {
            "events": count,
            "publish_events_per_s": round(count / published),
            "end_to_end_events_per_s": round(count / stored),
            "flushes": processor.stats.flushes,
        }

    try:
        return asyncio.run(run())
    finally:
        store.close()


class Profile:
    """`appliance serve` + `appliance process` on a fresh data dir and topic."""

    def __init__(self) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="kafka-profile-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        self.env = env | {
            "APPLIANCE_DATA_DIR": str(self.data),
            "APPLIANCE_LOG_LEVEL": "warning",
            "APPLIANCE_PLUGINS__AUTOLOAD": "false",
            "APPLIANCE_TRANSPORT": "kafka",
            "APPLIANCE_PROCESSOR__EMBEDDED": "false",
            "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "APPLIANCE_KAFKA__TOPIC": f"bench-{uuid.uuid4().hex[:8]}",
            "APPLIANCE_KAFKA__GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [sys.executable, "-m", "appliance", *args],
            input=stdin, env=self.env, check=True, text=True, capture_output=True,
        ).stdout  # fmt: skip

    def __enter__(self) -> Profile:
        self.cli("user", "add", "bench@example.com", "--password-stdin", stdin="bench pw 12345\n")
        self.cli("site", "add", "bench.example", "--owner", "bench@example.com")
        self.key = self.cli("token", "create", "bench@example.com").strip().splitlines()[-1]
        for args in (["serve", "--port", str(self.port)], ["process"]):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "appliance", *args],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                body = {"domain": "bench.example", "path": "/warmup"}
                headers = {"user-agent": BROWSER}
                if (
                    httpx.post(f"{self.url}/api/events", json=body, headers=headers).status_code
                    == 202
                ):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Kafka profile did not start")
            time.sleep(0.1)
        self.wait_counted(1, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)

    def counted(self) -> int:
        kpis = httpx.get(
            f"{self.url}/api/analytics/kpis?domain=bench.example&period=today",
            headers={"authorization": f"Bearer {self.key}"},
        ).json()
        return kpis["pageviews"] + kpis["events"]

    def wait_counted(self, expected: int, timeout_s: float) -> float:
        started = time.monotonic()
        while self.counted() < expected:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"only {self.counted()} of {expected} counted")
            time.sleep(0.005)
        return time.monotonic()


def bench_serve_and_process(seconds: int, connections: int) -> dict[str, float]:
    with Profile() as profile:
        before = profile.counted()
        started = time.monotonic()
        result = run_wrk(f"{profile.url}/api/events", seconds, connections)
        accepted = result["requests"] - result["errors"]
        done = profile.wait_counted(before + accepted, 120)
        result["events_accepted"] = accepted
        result["end_to_end_events_per_s"] = round(accepted / (done - started))
        result["drain_after_load_s"] = round(done - started - seconds, 2)
        return result


def bench_latency(samples: int, spacing_s: float) -> dict[str, float]:
    with Profile() as profile, httpx.Client(base_url=profile.url) as client:
        latencies = []
        for i in range(samples):
            before = profile.counted()
            answer = client.post(
                "/api/events",
                json={"domain": "bench.example", "path": f"/l{i}"},
                headers={"user-agent": BROWSER},
            )
            assert answer.status_code == 202
            accepted_at = time.monotonic()
            latencies.append(profile.wait_counted(before + 1, 10) - accepted_at)
            time.sleep(spacing_s)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "samples": samples,
        "spacing_s": spacing_s,
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


def main() -> None:
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "pipeline": bench_pipeline(100_000),
        "serve_and_process": bench_serve_and_process(seconds=5, connections=32),
        "visible_after_202_isolated": bench_latency(samples=60, spacing_s=0.5),
        "visible_after_202_steady": bench_latency(samples=100, spacing_s=0.05),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kafka.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
