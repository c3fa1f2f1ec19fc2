"""The Kafka profile as it runs: `appliance serve` ingests, `appliance process` consumes.

20,000 events go through the real server and the real broker while a second processor
joins (a rebalance) and the first is killed with SIGKILL mid-stream and restarted; the
stats API must then count every event answered 202 exactly once.
"""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import BROWSER_UA, PASSWORD
from tests.kafka_broker import kafka_env, require_broker
from tests.processes import APPLIANCE, answers, wait_until
from tests.servers import cli, free_port

pytestmark = pytest.mark.e2e

EVENTS, PER_REQUEST = 20_000, 50
SITES = ("shop.example", "blog.example", "docs.example")  # three keys: several partitions


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The Kafka profile on a topic and group of this test's own."""
    return kafka_env(tmp_path / "data", "e2e") | {"APPLIANCE_PROCESSOR__MAX_BATCH_EVENTS": "500"}


@pytest.mark.security
def test_killed_and_rebalanced_processors_count_each_accepted_event_once(
    env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    require_broker()
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    for site in SITES:
        cli(env, "site", "add", site, "--owner", "owner@example.com")
    key = cli(env, "token", "create", "owner@example.com").strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = spawn(env, "serve", "--port", str(port), log="serve.log")
    wait_until(lambda: answers(url) or server.poll() is not None, 20, "server start")
    assert server.poll() is None, (tmp_path / "serve.log").read_text()
    first = spawn(env, "process", log="process-a.log")

    client = httpx.Client(base_url=url, timeout=10, headers={"user-agent": BROWSER_UA})
    auth = {"authorization": f"Bearer {key}"}

    def pageviews() -> int:
        return sum(
            client.get(f"/api/analytics/kpis?domain={site}&period=today", headers=auth).json()[
                "pageviews"
            ]
            for site in SITES
        )

    accepted = 0
    sent = threading.Event()

    def send() -> None:
        nonlocal accepted
        with httpx.Client(base_url=url, timeout=10, headers={"user-agent": BROWSER_UA}) as http:
            for request in range(EVENTS // PER_REQUEST):
                batch = [
                    {"domain": SITES[request % 3], "path": f"/p{(request + i) % 9}"}
                    for i in range(PER_REQUEST)
                ]
                answer = http.post("/api/events", json=batch)
                assert answer.status_code == 202, answer.text
                accepted += answer.json()["accepted"]
                time.sleep(0.01)  # a load that lasts a few seconds
        sent.set()

    # The CLI added the sites from another process; the server sees them within a second.
    wait_until(
        lambda: (
            client.post("/api/events", json={"domain": "shop.example", "path": "/"}).status_code
            == 202
        ),
        10,
        "site in the ingest cache",
    )
    accepted += 1
    sender = threading.Thread(target=send)
    sender.start()
    wait_until(lambda: accepted >= EVENTS // 4, 30, "a quarter sent")
    second = spawn(env, "process", log="process-b.log")  # joins the group: a rebalance
    log_b = tmp_path / "process-b.log"
    wait_until(lambda: "kafka: assigned" in log_b.read_text(), 20, "the second one assigned")
    assert not sent.is_set(), "the load ended before the rebalance; send more or slower"
    wait_until(lambda: pageviews() > 0, 20, "first events counted")
    first.send_signal(signal.SIGKILL)  # mid-stream, most likely mid-flush
    assert first.wait(timeout=10) == -signal.SIGKILL
    counted_at_kill = pageviews()
    restarted = spawn(env, "process", log="process-a2.log")
    sender.join(timeout=60)
    assert sent.is_set(), "sender failed"
    assert 0 < counted_at_kill < accepted

    wait_until(lambda: pageviews() >= accepted, 60, f"{accepted} events counted")
    time.sleep(1)  # anything counted twice would show up now
    assert pageviews() == accepted == EVENTS + 1

    for processor in (second, restarted):
        processor.send_signal(signal.SIGTERM)
    assert [p.wait(timeout=30) for p in (second, restarted)] == [0, 0]
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    client.close()
    with sqlite3.connect(tmp_path / "data" / "analytics.db") as db:
        rows, distinct = db.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
        ).fetchone()
    assert rows == distinct == accepted
    # The restarted processor resumed after what the store held, not from the start.
    resumed = (tmp_path / "process-a2.log").read_text()
    assert re.search(r"kafka: assigned .*@\d+", resumed), resumed


def test_process_without_a_broker_stops_with_one_line(env: dict[str, str]) -> None:
    result = subprocess.run(
        [*APPLIANCE, "process"],
        env=env
        | {
            "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "APPLIANCE_KAFKA__STARTUP_TIMEOUT_S": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("appliance: kafka: no broker answered at 127.0.0.1:")
    assert "within 1 s" in last and "KAFKA.BOOTSTRAP_SERVERS" in last
    assert "Traceback" not in result.stderr


SERVICES = Path(__file__).resolve().parents[1] / "services"


def broker(action: str) -> None:
    """Stop or start the shared broker with the project's own scripts."""
    script = SERVICES / ("down.sh" if action == "stop" else "up.sh")
    subprocess.run(["bash", str(script), "kafka"], check=True, capture_output=True, timeout=180)
    if action == "stop":
        with socket.socket() as probe:
            refused = probe.connect_ex(("127.0.0.1", 9092)) != 0
        assert refused, (
            "services/down.sh did not stop the broker on 9092 (was it started from another"
            " checkout's .services folder? run `make services-down` there)"
        )


@pytest.mark.security
def test_broker_outage_answers_503_never_202_and_every_202_counts_once(
    env: dict[str, str],
    spawn: Callable[..., subprocess.Popen[bytes]],
    request: pytest.FixtureRequest,
) -> None:
    require_broker()
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    cli(env, "site", "add", "shop.example", "--owner", "owner@example.com")
    key = cli(env, "token", "create", "owner@example.com").strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = spawn(env, "serve", "--port", str(port), log="serve.log")
    wait_until(lambda: answers(url) or server.poll() is not None, 20, "server start")
    spawn(env, "process", log="process.log")
    client = httpx.Client(base_url=url, timeout=10, headers={"user-agent": BROWSER_UA})
    request.addfinalizer(client.close)  # closed on failure too
    wait_until(
        lambda: (
            client.post("/api/events", json={"domain": "shop.example", "path": "/"}).status_code
            == 202
        ),
        20,
        "the first event taken",
    )
    accepted, refused, during_outage = 1, 0, []
    down = threading.Event()
    stop = threading.Event()

    def send() -> None:
        nonlocal accepted, refused
        with httpx.Client(base_url=url, timeout=10, headers={"user-agent": BROWSER_UA}) as http:
            while not stop.is_set():
                was_down = down.is_set()
                answer = http.post(
                    "/api/events", json=[{"domain": "shop.example", "path": "/o"}] * 5
                )
                if answer.status_code == 202:
                    accepted += 5
                    if was_down and down.is_set():
                        during_outage.append(answer.status_code)
                else:
                    assert answer.status_code == 503, answer.text
                    assert answer.headers["retry-after"]
                    refused += 1
                time.sleep(0.02)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(2)
        broker("stop")
        down.set()
        time.sleep(10)
        down.clear()
    finally:
        broker("start")
    time.sleep(4)
    stop.set()
    sender.join(timeout=30)
    assert refused > 0, "the outage never showed as 503"
    assert during_outage == [], "a 2xx while the broker was down"
    auth = {"authorization": f"Bearer {key}"}

    def pageviews() -> int:
        kpis = client.get("/api/analytics/kpis?domain=shop.example&period=today", headers=auth)
        return kpis.json()["pageviews"]

    wait_until(lambda: pageviews() >= accepted, 90, f"{accepted} events counted")
    time.sleep(1)
    assert pageviews() == accepted
