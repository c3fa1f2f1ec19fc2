"""Soak: `appliance serve` (embedded profile) at a steady rate for ten minutes, RSS sampled.

On demand, not in CI (`make soak`, or `pytest -m soak`; APPLIANCE_SOAK_S shortens it). The
load is a steady audience: 5,000 client addresses (the per-address rate limit is on), 500
user agents, 5,000 sessions, 500 paths, 300 referrers - all of them seen within the first
minute, so every cache and table keyed by them is full by the end of the warm-up (the first
fifth). From then on memory must not keep growing: the least-squares slope of RSS over the
rest, times its duration, stays under SOAK_GROWTH_MIB; and every event answered 202 is
counted.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import BROWSER_UA
from tests.processes import wait_until
from tests.servers import Server, cli, free_port, server_env

pytestmark = [pytest.mark.soak, pytest.mark.e2e]

DURATION_S = float(os.environ.get("APPLIANCE_SOAK_S", "600"))
REQUESTS_PER_S, PER_REQUEST = 100, 5
AUDIENCE = 5_000  # clients (address, session); user agents repeat every 500
GROWTH_MIB = float(os.environ.get("SOAK_GROWTH_MIB", "8"))
SAMPLE_EVERY_S = 2.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, value): MiB per second."""
    ts, values = [t for t, _ in points], [v for _, v in points]
    mean_t, mean_v = statistics.fmean(ts), statistics.fmean(values)
    var = sum((t - mean_t) ** 2 for t in ts)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def user_agent(n: int) -> str:
    return BROWSER_UA.replace("Chrome/", f"Chrome/{100 + n % 40}.{n}.", 1)


@pytest.mark.timeout(DURATION_S + 300)  # the suite's 300 s limit is for ordinary tests
def test_memory_stays_flat_under_a_steady_load(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data") | {
        "APPLIANCE_INGEST__TRUSTED_PROXIES": '["127.0.0.1"]',
        "APPLIANCE_INGEST__RATE_LIMIT_PER_IP": "100",
        "APPLIANCE_LOG_ACCESS": "false",
    }
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin="x" * 12 + "\n")
    cli(env, "site", "add", "soak.example", "--owner", "owner@example.com")
    key = cli(env, "token", "create", "owner@example.com").strip().splitlines()[-1]
    server = Server(env, free_port(), tmp_path / "serve.log")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    accepted = 0
    samples: list[tuple[float, float]] = []
    stop = time.monotonic() + DURATION_S
    started = time.monotonic()
    rng = random.Random(7)

    def sample() -> None:
        while time.monotonic() < stop:
            samples.append((time.monotonic() - started, rss_mib(pid)))
            time.sleep(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            sent = 0
            while time.monotonic() < stop:
                n = sent % AUDIENCE  # each client in turn: all seen in the first minute
                batch = [
                    {
                        "domain": "soak.example",
                        "path": f"/p/{rng.randrange(500)}",
                        "sessionId": f"s{n}",
                        "referrer": f"https://ref{rng.randrange(300)}.example/",
                    }
                    for _ in range(PER_REQUEST)
                ]
                headers = {
                    "user-agent": user_agent(n % 500),
                    "x-forwarded-for": f"10.0.{n // 250}.{1 + n % 250}",
                }
                answer = http.post("/api/events", json=batch, headers=headers)
                assert answer.status_code == 202, answer.text
                accepted += answer.json()["accepted"]
                sent += 1
                ahead = started + sent / REQUESTS_PER_S - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        auth = {"authorization": f"Bearer {key}", "user-agent": BROWSER_UA}

        def counted() -> int:
            answer = httpx.get(
                f"{server.url}/api/analytics/kpis?domain=soak.example&period=today",
                headers=auth,
                timeout=30,
            )
            return answer.json()["pageviews"]

        wait_until(lambda: counted() >= accepted, 30, f"{accepted} events counted")
        assert counted() == accepted
    finally:
        server.stop()
    sampler.join(timeout=10)

    steady = [point for point in samples if point[0] >= DURATION_S / 5]
    assert len(steady) >= 10, "too few samples: run longer (APPLIANCE_SOAK_S)"
    growth = slope(steady) * (steady[-1][0] - steady[0][0])
    rss = [value for _, value in steady]
    report = (
        f"soak {DURATION_S:.0f} s, {accepted:,} events: RSS after warm-up "
        f"{min(rss):.1f}..{max(rss):.1f} MiB, trend {growth:+.1f} MiB over the steady part"
    )
    print(report)
    (tmp_path.parent / "soak-report.txt").write_text(report + "\n")
    assert growth < GROWTH_MIB, report
