"""Run every benchmark whose components exist; write bench/results/latest.{md,json}.

Today: ingest throughput and latency of the embedded profile against a trivial Starlette
endpoint served by the same uvicorn settings, measured in the same run with wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

from bench import enrich

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
UVICORN_FLAGS = [
    "--log-level",
    "warning",
    "--no-access-log",
    "--no-server-header",
    "--no-proxy-headers",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def run_wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(HERE / "events.lua"), url]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not match:
            raise RuntimeError(f"no p{label} in wrk output:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def bench_baseline(seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--port",
            str(port),
            *UVICORN_FLAGS,
        ],
        cwd=HERE.parent,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/events"
        wait_ready(url, server)
        result = run_wrk(url, seconds, connections)
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(server.pid)
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def bench_embedded(seconds: int, connections: int) -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="appliance-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env |= {
        "APPLIANCE_DATA_DIR": str(data),
        "APPLIANCE_LOG_LEVEL": "warning",
        "APPLIANCE_PLUGINS__AUTOLOAD": "false",
    }

    def cli(*args: str, stdin: str | None = None) -> str:
        command = [sys.executable, "-m", "appliance", *args]
        return subprocess.run(
            command, input=stdin, env=env, check=True, text=True, capture_output=True
        ).stdout

    cli("user", "add", "bench@example.com", "--password-stdin", stdin="bench password 123\n")
    cli("site", "add", "bench.example", "--owner", "bench@example.com")
    key = cli("token", "create", "bench@example.com").strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/api/events", server)
        result = run_wrk(f"{base}/api/events", seconds, connections)
        result["rss_mib"], result["peak_rss_mib"] = rss_mib(server.pid)
        # Every 202 must be counted: wait for the processor to drain, then compare.
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/healthz").json()["pending_events"] and time.monotonic() < deadline:
            time.sleep(0.2)
        health = httpx.get(f"{base}/healthz").json()
        kpis = httpx.get(
            f"{base}/api/analytics/kpis?domain=bench.example&period=today",
            headers={"authorization": f"Bearer {key}"},
        ).json()
        result["accepted"] = health["ingest"]["accepted"]
        result["stored"] = kpis["pageviews"] + kpis["events"]
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def write_report(results: dict[str, object]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = results["ingest"]
    base = rows["baseline_starlette"]
    lines = [
        "# Benchmark results",
        "",
        f"{results['when']} · {results['machine']} · wrk 1 thread, "
        f"{results['connections']} connections, {results['seconds']} s per run, "
        "server: one uvicorn process",
        "",
        "## Ingest: POST /api/events",
        "",
        "| target | requests/s | ratio to baseline | p50 ms | p99 ms | non-2xx | RSS MiB (peak) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['rps']:.0f} | {row['rps'] / base['rps']:.2f} "
            f"| {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['errors']} "
            f"| {row['rss_mib']:.0f} ({row['peak_rss_mib']:.0f}) |"
        )
    enrich = results["enrichment"]
    lines += [
        "",
        "## Enrichment (all built-in enrichers, in-process)",
        "",
        f"{enrich['events']} events, {enrich['unique_user_agents']:.0%} never-seen user agents:"
        f" mean {enrich['mean_us']:.1f} us, p50 {enrich['p50_us']:.1f} us,"
        f" p99 {enrich['p99_us']:.1f} us per event.",
    ]
    embedded = rows["appliance_embedded"]
    lines += [
        "",
        f"Embedded: {embedded['accepted']} events accepted, {embedded['stored']} counted "
        "by the stats API after the drain.",
    ]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing (apt-get install wrk)")
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "seconds": args.seconds,
        "connections": args.connections,
        "enrichment": enrich.run(),
        "ingest": {
            "baseline_starlette": bench_baseline(args.seconds, args.connections),
            "appliance_embedded": bench_embedded(args.seconds, args.connections),
        },
    }
    write_report(results)


if __name__ == "__main__":
    main()
