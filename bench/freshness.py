"""Section 2: time from a 202 to the event being visible through the stats API.

A separate load process (bench/loadgen.py) sends ~1,000 events/s to bench.example. Meanwhile
this process posts one probe event at a time to a second site, probe.example, and polls
`GET /api/analytics/kpis?domain=probe.example&period=realtime` every 5 ms until the count
grows: the probe's 202 to visible. The probes go to their own site so the background load
does not hide them; they share the queue/topic, processor and stores with it.

Profiles: embedded (in-process queue, SQLite) and local (Kafka + Postgres + Redis:
`APPLIANCE_ENV=local`, one `appliance process`, a fresh topic, group, database and Redis
prefix).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

import httpx2 as httpx

from bench.common import Appliance, RssSampler, percentiles, stop


def measure(profile: str, seconds: float, rate: int) -> dict[str, Any]:
    with Appliance(profile, sites=("bench.example", "probe.example")) as app:
        app.start_serve()
        if profile != "embedded":
            app.start_processor()
        with httpx.Client(base_url=app.url, timeout=10) as client:
            app.post("probe.example", "/warmup", client)
            deadline = time.monotonic() + 30
            while app.counted("probe.example", "realtime", client) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the warm-up event never became visible")
                time.sleep(0.05)
            load = subprocess.Popen(
                [sys.executable, "-m", "bench.loadgen", app.url, str(rate), str(seconds + 2)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            latencies, timeouts = [], 0
            try:
                time.sleep(1)  # the load reaches its rate
                end = time.monotonic() + seconds
                with RssSampler(app.serve.pid) as rss:
                    while time.monotonic() < end:
                        before = app.counted("probe.example", "realtime", client)
                        status = app.post("probe.example", f"/probe/{len(latencies)}", client)
                        accepted = time.monotonic()
                        if status != 202:
                            raise RuntimeError(f"probe answered {status}")
                        while app.counted("probe.example", "realtime", client) <= before:
                            if time.monotonic() - accepted > 10:
                                timeouts += 1
                                break
                            time.sleep(0.005)
                        else:
                            latencies.append(time.monotonic() - accepted)
                        time.sleep(random.uniform(0, 0.1))  # noqa: S311 (not in phase with flushes)
                out, _ = load.communicate(timeout=60)
            finally:
                stop(load)
    result = percentiles(latencies) | {"timeouts_10s": timeouts}
    result["load"] = json.loads(out.strip().splitlines()[-1])
    result["rss_serve_load_mib"] = round(rss.max_mib, 1)
    return result


def run(seconds: float, rate: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for profile, name in (("embedded", "embedded"), ("local", "kafka_postgres_redis")):
        print(f"  freshness: {name}", file=sys.stderr)
        try:
            rows[name] = measure(profile, seconds, rate)
        except Exception as error:
            rows[name] = {"skipped": f"{type(error).__name__}: {error}"}
    return rows
