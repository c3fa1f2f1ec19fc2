"""The real server as a subprocess: CLI setup, 1,000 events, exact counts within a second."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import BROWSER_UA
from tests.servers import APPLIANCE, Server, cli, free_port, server_env

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return server_env(tmp_path / "data")


@pytest.fixture
def start_server(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with extra environment; any still running at teardown is killed."""
    started: list[Server] = []

    def start(**extra_env: str) -> Server:
        running = Server(env | extra_env, free_port(), tmp_path / f"server-{len(started)}.log")
        started.append(running)
        running.start()
        return running

    yield start
    for running in started:
        if running.process is not None:
            running.stop(signal.SIGKILL)


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def provision(env: dict[str, str]) -> str:
    """User, site and API key through the CLI; returns the key."""
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    cli(env, "site", "add", "shop.example", "--owner", "owner@example.com")
    return cli(env, "token", "create", "owner@example.com").strip().splitlines()[-1]


def test_thousand_events_are_counted_exactly_within_a_second(
    server: Server, env: dict[str, str]
) -> None:
    key = provision(env)
    auth = {"authorization": f"Bearer {key}"}
    paths = [f"/page-{i % 7}" for i in range(1000)]
    agents = [f"Mozilla/5.0 visitor-{i % 50}" for i in range(1000)]

    with httpx.Client(
        base_url=server.url, timeout=10, headers={"user-agent": BROWSER_UA}
    ) as client:
        # The CLI wrote the site from another process; the server picks it up within a second.
        deadline = time.monotonic() + 5
        while (
            client.post(
                "/api/events", json={"domain": "shop.example", "path": "/warmup"}
            ).status_code
            != 202
        ):
            assert time.monotonic() < deadline, "site never reached the ingest cache"
            time.sleep(0.1)

        def post(i: int) -> int:
            return client.post(
                "/api/events",
                json={"domain": "shop.example", "path": paths[i], "sessionId": f"s{i % 100}"},
                headers={"user-agent": agents[i]},
            ).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(post, range(1000)))
        last_202 = time.monotonic()
        assert statuses == [202] * 1000

        expected_pages = {f"/page-{n}": paths.count(f"/page-{n}") for n in range(7)}
        while True:
            kpis = client.get(
                "/api/analytics/kpis?domain=shop.example&period=realtime", headers=auth
            ).json()
            series = client.get(
                "/api/analytics/timeseries?domain=shop.example&period=realtime", headers=auth
            ).json()
            top = client.get(
                "/api/analytics/top-pages?domain=shop.example&period=realtime&limit=20",
                headers=auth,
            ).json()
            pages = {row["path"]: row["pageviews"] for row in top["pages"]}
            if (
                kpis["pageviews"] == 1001
                and sum(p["pageviews"] for p in series["points"]) == 1001
                and pages.get("/page-0") == expected_pages["/page-0"]
            ):
                break
            assert time.monotonic() - last_202 < 1.0, f"not visible within 1 s: {kpis}"
            time.sleep(0.02)
        visible_after = time.monotonic() - last_202

    assert visible_after < 1.0
    assert kpis["visitors"] == 51  # 50 user agents from one IP, plus the warm-up's
    assert kpis["sessions"] == 101  # 100 session ids + the warm-up's visitor session
    pages.pop("/warmup")
    assert pages == expected_pages
    assert len(series["points"]) == 30


def test_sigterm_flushes_everything_accepted(
    start_server: Callable[..., Server], env: dict[str, str]
) -> None:
    # A long flush interval: only the graceful stop can have written most of these.
    server = start_server(APPLIANCE_PROCESSOR__FLUSH_INTERVAL_MS="60000")
    key = provision(env)
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"user-agent": BROWSER_UA}
    ) as client:
        deadline = time.monotonic() + 5
        while (
            client.post("/api/events", json={"domain": "shop.example", "path": "/0"}).status_code
            != 202
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        batch = [{"domain": "shop.example", "path": f"/{i}"} for i in range(50)]
        for _ in range(20):
            assert client.post("/api/events", json=batch).status_code == 202
        health = client.get("/healthz").json()
        assert health["pending_events"] >= 800, health
    # uvicorn re-raises the signal after its graceful shutdown.
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log.read_text()
    server.start()
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"user-agent": BROWSER_UA}
    ) as client:
        kpis = client.get(
            "/api/analytics/kpis?domain=shop.example&period=today",
            headers={"authorization": f"Bearer {key}"},
        ).json()
    server.stop()
    assert kpis["pageviews"] == 1001


def test_cli_reports_bad_settings_in_one_line(env: dict[str, str]) -> None:
    result = subprocess.run(
        [*APPLIANCE, "plugins"],
        env=env | {"APPLIANCE_PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "PORT" in lines[0] and "APPLIANCE_PORT" in lines[0]


def test_cli_plugins_lists_builtins(env: dict[str, str]) -> None:
    output = cli(env, "plugins")
    for name in (
        "store_sqlite",
        "transport_memory",
        "auth_local",
        "enrich_visitor_id",
        "panels_core",
    ):
        assert name in output
    assert "builtin" in output
