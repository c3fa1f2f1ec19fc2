"""Helpers shared by the benchmark sections: ports, wrk, RSS, appliance processes, Postgres."""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2 as httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
KAFKA = "127.0.0.1:9092"
REDIS = "redis://127.0.0.1:6379/0"
PG_SERVER = "postgresql://appliance:appliance@127.0.0.1:5432"
PG_HLL_SOURCE = "appliance_test"  # has the hll extension; the appliance role cannot create it
# All the load goes to one site: the per-site limiter (5,000/s, burst 50,000 by default)
# would answer 429 within seconds. A limit this high keeps its check in the hot path.
NO_SITE_LIMIT = {"APPLIANCE_INGEST__RATE_LIMIT_PER_SITE": "10000000",
                 "APPLIANCE_INGEST__BURST_PER_SITE": "100000000"}  # fmt: skip
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


def cpu_s(pid: int, reaped_children: bool = False) -> float:
    """User + system CPU seconds a process (all its threads) has used so far (0 once gone);
    with `reaped_children`, plus what its children that exited and were waited for used."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = [int(field) for field in stat[stat.rindex(")") + 2 :].split()[11:15]]
    return sum(fields if reaped_children else fields[:2]) / os.sysconf("SC_CLK_TCK")


def with_children(pid: int) -> list[int]:
    """The process and its child processes (serve's SQLite writer process is one): what a
    server costs includes them."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                pids += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return pids


def tree_rss_mib(pid: int) -> float:
    """Current resident memory of a process and its children, MiB."""
    total = 0.0
    for member in with_children(pid):
        with contextlib.suppress(OSError, KeyError):
            total += rss_mib(member)[0]
    return total


def tree_pss_mib(pid: int) -> float | None:
    """Proportional set size of a process and its children, MiB: shared pages (libpython,
    libcrypto... that the SQLite writer process maps too) split among the processes that map
    them, so the sum is what the tree costs the machine, where the RSS sum counts them twice.
    Pages shared with processes outside the tree (other Pythons on the host) are split with
    them too. None when /proc has no smaps_rollup (kernels before 4.14)."""
    total, read = 0.0, False
    for member in with_children(pid):
        with contextlib.suppress(OSError, StopIteration):
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
            total += int(next(line for line in rollup if line.startswith("Pss:")).split()[1])
            read = True
    return total / 1024 if read else None


class CpuMeter:
    """CPU seconds a process and its children used inside the block: a cost per request that
    moves less than requests/s on a noisy machine (it does not count time spent waiting for
    a core)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.used_s = pid, 0.0

    def __enter__(self) -> CpuMeter:
        self._own = cpu_s(self.pid, reaped_children=True)
        self._children = {child: cpu_s(child) for child in with_children(self.pid)[1:]}
        return self

    def __exit__(self, *exc: object) -> None:
        # A child started meanwhile counts from 0. One that exited and was waited for is in
        # its parent's figure with all its life, so what it had used before is taken off.
        now = {child: cpu_s(child) for child in with_children(self.pid)[1:]}
        self.used_s = cpu_s(self.pid, reaped_children=True) - self._own
        self.used_s += sum(used - self._children.get(child, 0.0) for child, used in now.items())
        self.used_s -= sum(used for child, used in self._children.items() if child not in now)


class RssSampler:
    """Samples the RSS of a process and its children every 0.2 s in a thread; `max_mib` is
    the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.max_mib, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_mib = max(self.max_mib, tree_rss_mib(self.pid))
            self._stop.wait(0.2)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and max of durations in seconds, as milliseconds."""
    ordered = sorted(samples_s)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000, 1)

    return {"samples": len(ordered), "p50_ms": rank(0.5), "p95_ms": rank(0.95),
            "p99_ms": rank(0.99), "max_ms": rank(1.0)}  # fmt: skip


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
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.M)
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def stop(process: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    """SIGTERM this one process (by its PID), SIGKILL it if it does not go."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return env | {"APPLIANCE_LOG_LEVEL": "warning", "APPLIANCE_PLUGINS__AUTOLOAD": "false"} | extra


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- Postgres: a database of our own, copied from the hll template --------------------------


def _admin() -> Any:
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10)


def create_database(name: str) -> bool:
    """Create `name` from appliance_test (hll sketches); returns False if it had to fall back
    to template0 (exact counts) because the template stayed busy."""
    import psycopg

    deadline = time.monotonic() + 15
    while True:
        try:
            with _admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{PG_HLL_SOURCE}"')
            return True
        except psycopg.errors.ObjectInUse:  # a test is connected to the template
            if time.monotonic() > deadline:
                with _admin() as conn:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
                return False
            time.sleep(0.3)


def drop_database(name: str) -> None:
    import psycopg

    deadline = time.monotonic() + 15
    while True:
        try:
            with _admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege):
            if time.monotonic() > deadline:
                print(f"bench: could not drop database {name}", file=sys.stderr)
                return
            time.sleep(0.3)


def postgres_store(dsn: str, pool_max: int = 8) -> Any:
    """A PostgresAnalyticsStore on `dsn` with the bench's pool settings (not opened yet)."""
    from plugins.store_postgres.analytics import PostgresAnalyticsStore
    from plugins.store_postgres.config import PostgresSettings
    from plugins.store_postgres.db import Database

    settings = PostgresSettings(
        dsn=dsn, sslmode="", pool_min=1, pool_max=pool_max, pool_timeout_s=30,
        connect_timeout_s=5, prepared_statements=True, retention_days=0,
    )  # fmt: skip
    return PostgresAnalyticsStore(Database(settings))


def delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    try:
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for first in range(0, len(keys), 500):
            client.delete(*keys[first : first + 500])
    finally:
        client.close()


def delete_topics(*topics: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": KAFKA})  # kept referenced until the answers
    try:
        futures = admin.delete_topics(list(topics), operation_timeout=10)
        for topic, future in futures.items():
            try:
                future.result(timeout=15)
            except Exception as error:
                print(f"bench: could not delete topic {topic}: {error}", file=sys.stderr)
    except Exception as error:
        print(f"bench: could not delete topics {topics}: {error}", file=sys.stderr)


# --- appliance processes -----------------------------------------------------------------------


class Appliance:
    """A fresh appliance deployment for one measurement: data dir, topic, group, database and
    Redis prefix of its own; `serve` and any number of `process` as subprocesses."""

    def __init__(self, profile: str, sites: tuple[str, ...] = ("bench.example",)) -> None:
        self.profile, self.sites = profile, sites
        self.data = Path(tempfile.mkdtemp(prefix=f"bench-{profile}-"))
        self.database = self.topic = self.redis_prefix = ""
        env = clean_env(APPLIANCE_DATA_DIR=str(self.data), **NO_SITE_LIMIT)
        if profile in ("kafka", "local"):
            self.topic = unique("bench")
            env |= {
                "APPLIANCE_TRANSPORT": "kafka",
                "APPLIANCE_PROCESSOR__EMBEDDED": "false",
                "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": KAFKA,
                "APPLIANCE_KAFKA__TOPIC": self.topic,
                "APPLIANCE_KAFKA__GROUP_ID": unique("bench_group"),
            }
        if profile == "local":  # Kafka + Postgres + Redis, as settings.toml's [local]
            self.database, self.redis_prefix = unique("bench_pg"), unique("bench")
            env |= {
                "APPLIANCE_ENV": "local",
                "APPLIANCE_POSTGRES__DSN": f"{PG_SERVER}/{self.database}",
                "APPLIANCE_REDIS__URL": REDIS,
                "APPLIANCE_REDIS__KEY_PREFIX": self.redis_prefix,
            }
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve: subprocess.Popen[bytes] | None = None
        self.processors: list[subprocess.Popen[bytes]] = []
        self.key = ""
        self.sketches = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "appliance", *args],
            input=stdin, env=self.env, text=True, capture_output=True, timeout=120,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"appliance {args[0]}: {done.stderr.strip()[-300:]}")
        return done.stdout

    def setup(self) -> None:
        if self.database:
            self.sketches = create_database(self.database)
            self.cli("migrate")
        self.cli("user", "add", "bench@example.com", "--password-stdin", stdin="bench pw 12345\n")
        for site in self.sites:
            self.cli("site", "add", site, "--owner", "bench@example.com")
        self.key = self.cli("token", "create", "bench@example.com").strip().splitlines()[-1]

    def start_serve(self) -> None:
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_ready(f"{self.url}/api/events", self.serve)

    def start_processor(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "process"], env=self.env, stdout=subprocess.DEVNULL
        )
        self.processors.append(process)
        return process

    def post(self, domain: str, path: str, client: httpx.Client | None = None) -> int:
        body = {"domain": domain, "path": path, "url": f"https://{domain}{path}"}
        send = client.post if client else httpx.post
        url = "/api/events" if client else f"{self.url}/api/events"
        return send(url, json=body, headers={"user-agent": BROWSER}).status_code

    def counted(self, domain: str = "bench.example", period: str = "today",
                client: httpx.Client | None = None) -> int:  # fmt: skip
        get = client.get if client else httpx.get
        base = "" if client else self.url
        kpis = get(
            f"{base}/api/analytics/kpis?domain={domain}&period={period}",
            headers={"authorization": f"Bearer {self.key}"},
        ).json()
        return kpis["pageviews"] + kpis["events"]

    def wait_counted(self, expected: int, timeout_s: float, domain: str = "bench.example") -> None:
        deadline = time.monotonic() + timeout_s
        while self.counted(domain) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.counted(domain)} of {expected} counted")
            time.sleep(0.05)

    def __enter__(self) -> Appliance:
        try:
            self.setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in [self.serve, *self.processors]:
            if process is not None:
                stop(process)
        import shutil

        shutil.rmtree(self.data, ignore_errors=True)
        if self.database:
            drop_database(self.database)
        if self.redis_prefix:
            with contextlib.suppress(Exception):
                delete_redis_keys(self.redis_prefix)
        if self.topic:
            delete_topics(self.topic, f"{self.topic}_dlq")
