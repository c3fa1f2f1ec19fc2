"""Section 1 (ingest throughput and latency), 5 (memory of serve) and 6 (tracker size).

wrk (1 thread, the Lua script's realistic events) against, in one run:
- nginx `return 204;` (1 worker process),
- the trivial Starlette endpoint (bench/baseline_app.py) under one uvicorn process with the
  appliance's uvicorn settings,
- `appliance serve` embedded (in-process queue, processor and SQLite, one process),
- `appliance serve` with the Kafka transport (202 after the broker's ack) and a separate
  `appliance process` writing SQLite.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.common import (
    HERE,
    UVICORN_FLAGS,
    Appliance,
    CpuMeter,
    RssSampler,
    free_port,
    run_wrk,
    stop,
    tree_pss_mib,
    tree_rss_mib,
    wait_ready,
)

# Every target gets the same unmeasured load first: connections, caches (user agents, sites)
# and, for Kafka, the producer's broker connections are warm when the measurement starts.
WARMUP_S = 2
# A broker JVM that just started is ~35 % slower for its first half-minute of load (JIT):
# one throwaway Kafka deployment takes this much load before the first Kafka target.
BROKER_WARMUP_S = 20
# Lets the bench read serve's /metrics (the Kafka profile's ack latency); any 16+ characters.
METRICS_TOKEN = "bench-metrics-token-0123456789"  # noqa: S105 (loopback, throwaway)
ACK_LATENCY = "appliance_kafka_produce_latency_seconds"

NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 204; }}
    }}
}}
"""


def bench_nginx(seconds: int, connections: int) -> dict[str, Any]:
    binary = next((p for p in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(p).exists()), None)
    if binary is None:
        return {"skipped": "nginx is not installed (apt-get install -y nginx-light)"}
    directory = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    port = free_port()
    (directory / "nginx.conf").write_text(NGINX_CONF.format(dir=directory, port=port))
    server = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(directory / "nginx.conf")],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/events"
        wait_ready(url, server)
        run_wrk(url, WARMUP_S, connections)
        result = run_wrk(url, seconds, connections)
        result["processes"] = "nginx: 1 master + 1 worker"
        return result
    finally:
        stop(server)  # SIGTERM to the master: it stops its worker
        shutil.rmtree(directory, ignore_errors=True)


def bench_starlette(seconds: int, connections: int) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--port", str(port),
         *UVICORN_FLAGS],
        cwd=HERE.parent,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/events"
        wait_ready(url, server)
        run_wrk(url, WARMUP_S, connections)
        with RssSampler(server.pid) as rss, CpuMeter(server.pid) as cpu:
            result = run_wrk(url, seconds, connections)
        result["rss_load_mib"] = round(rss.max_mib, 1)
        result["cpu_us_per_request"] = per_request_us(cpu.used_s, result)
        result["processes"] = "uvicorn: 1"
        return result
    finally:
        stop(server)


def tracker_size(url: str) -> dict[str, int]:
    raw = httpx.get(f"{url}/tracker.js").content
    served = httpx.get(f"{url}/tracker.js", headers={"accept-encoding": "gzip"})
    return {
        "raw_bytes": len(raw),
        "gzip9_bytes": len(gzip.compress(raw, 9)),
        "served_content_encoding": served.headers.get("content-encoding", "identity"),
        "served_bytes_with_accept_gzip": int(served.headers.get("content-length", len(raw))),
    }


def bench_appliance(profile: str, seconds: int, connections: int) -> dict[str, Any]:
    with Appliance(profile) as app:
        app.env["APPLIANCE_METRICS__TOKEN"] = METRICS_TOKEN
        app.start_serve()
        if profile != "embedded":
            app.start_processor()
        time.sleep(2)  # idle: start-up done, nothing sent yet but the readiness probe
        idle = tree_rss_mib(app.serve.pid)
        tracker = tracker_size(app.url) if profile == "embedded" else None
        warmup = run_wrk(f"{app.url}/api/events", WARMUP_S, connections)
        before = settled_count(app, warmup["requests"] - warmup["errors"])
        # The CPU counts until every 202 is stored: a writer still behind when wrk stops
        # must not make a request look cheaper.
        acks_before = ack_latency_totals(app.url) if profile == "kafka" else None
        with CpuMeter(app.serve.pid) as cpu:
            with RssSampler(app.serve.pid) as rss:
                result = run_wrk(f"{app.url}/api/events", seconds, connections)
            accepted = result["requests"] - result["errors"]
            started = time.monotonic()
            try:
                app.wait_counted(before + accepted, 90)
            except RuntimeError as error:
                result["drain_error"] = str(error)
            result["drain_after_load_s"] = round(time.monotonic() - started, 2)
        result["cpu_us_per_request"] = per_request_us(cpu.used_s, result)
        if acks_before is not None:  # every request is answered by now
            result["ack_ms_mean"] = mean_ms(acks_before, ack_latency_totals(app.url))
        time.sleep(2)  # idle again, every 202 stored
        result["rss_idle_after_load_mib"] = round(tree_rss_mib(app.serve.pid), 1)
        pss = tree_pss_mib(app.serve.pid)
        result["pss_idle_after_load_mib"] = round(pss, 1) if pss is not None else None
        result["rss_idle_mib"] = round(idle, 1)
        result["rss_load_mib"] = round(rss.max_mib, 1)
        result["processes"] = (
            "appliance serve: 1 (ingest + processor) + its SQLite writer process"
            if profile == "embedded"
            else "appliance serve: 1 + appliance process: 1 (SQLite)"
        )
        result["accepted"] = accepted
        result["stored"] = app.counted() - before
        if tracker:
            result["tracker"] = tracker
        return result


def ack_latency_totals(url: str) -> tuple[float, float]:
    """(sum of seconds, count) of serve's publish-to-ack histogram, from /metrics."""
    answer = httpx.get(
        f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    answer.raise_for_status()
    totals = {}
    for line in answer.text.splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"{ACK_LATENCY}_{part} "):
                totals[part] = float(line.split()[-1])
    return totals["sum"], totals["count"]


def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """The mean of what was observed between two readings of a histogram, in ms."""
    count = after[1] - before[1]
    return round((after[0] - before[0]) / count * 1000, 2) if count else None


def per_request_us(cpu_s: float, result: dict[str, Any]) -> float:
    """The server's CPU per 2xx answer (its threads and child processes), microseconds."""
    accepted = result["requests"] - result["errors"]
    return round(cpu_s / max(accepted, 1) * 1e6, 1)


def warm_broker(connections: int, seconds: int = BROKER_WARMUP_S) -> None:
    """Load the broker through a throwaway deployment, so no target pays for its JIT."""
    with Appliance("kafka") as app:
        app.start_serve()
        app.start_processor()
        run_wrk(f"{app.url}/api/events", seconds, connections)


def settled_count(app: Appliance, at_least: int, timeout_s: float = 60) -> int:
    """The count once the warm-up's events are all stored and no straggler moves it."""
    app.wait_counted(at_least, timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        count = app.counted()
        time.sleep(0.5)
        if app.counted() == count or time.monotonic() > deadline:
            return count


def run(
    seconds: int,
    connections: int,
    more_connections: int = 0,
    broker_warmup_s: int = BROKER_WARMUP_S,
) -> dict[str, Any]:
    """The four targets at `connections`; with `more_connections`, Starlette and the Kafka
    profile again at that many (the Kafka profile is bound by the broker's ack latency: with
    C connections it cannot exceed C / latency requests/s)."""
    rows: dict[str, Any] = {}
    plan: list[tuple[str, int, Any]] = [
        ("nginx_204", connections, bench_nginx),
        ("starlette_trivial", connections, bench_starlette),
        ("appliance_embedded", connections, lambda s, c: bench_appliance("embedded", s, c)),
        ("appliance_kafka", connections, lambda s, c: bench_appliance("kafka", s, c)),
    ]
    if more_connections:
        plan += [
            (f"starlette_trivial@{more_connections}", more_connections, bench_starlette),
            (f"appliance_kafka@{more_connections}", more_connections,
             lambda s, c: bench_appliance("kafka", s, c)),
        ]  # fmt: skip
    if broker_warmup_s:
        print("  ingest: warming the Kafka broker (not measured)", file=sys.stderr)
        try:
            warm_broker(connections, broker_warmup_s)
        except Exception as error:  # the Kafka targets will say what is wrong
            print(f"  ingest: broker warm-up failed: {error}", file=sys.stderr)
    for name, count, call in plan:
        print(f"  ingest: {name}", file=sys.stderr)
        try:
            rows[name] = call(seconds, count) | {"connections": count}
        except Exception as error:  # report the others
            rows[name] = {"skipped": f"{type(error).__name__}: {error}", "connections": count}
    return rows
