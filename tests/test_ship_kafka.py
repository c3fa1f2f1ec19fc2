"""The Kafka profile as operators run it, watched through its metrics: `serve` and `process`
in subprocesses against the real broker, produce latency and consumer lag moving with a
known load, the processor's own health/metrics port, a graceful stop (SIGTERM: flush,
commit, leave the group) that a restarted processor resumes after exactly, and JSON logs.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BROWSER_UA, PASSWORD
from tests.kafka_broker import kafka_env, unique
from tests.processes import answers, wait_until
from tests.servers import free_port

pytestmark = pytest.mark.e2e

APPLIANCE = [sys.executable, "-m", "appliance"]
TOKEN = "kafka-metrics-token-0123456789"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return kafka_env(tmp_path / "data", "ship") | {
        "APPLIANCE_METRICS__TOKEN": TOKEN,
        "APPLIANCE_LOG_FORMAT": "json",
    }


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APPLIANCE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def metrics(url: str) -> dict[str, float]:
    """{sample name{labels}: value}, labels as `name{k=v,...}` for the few tests need."""
    answer = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def lag(url: str) -> float | None:
    found = [v for k, v in metrics(url).items() if k.startswith("appliance_kafka_consumer_lag{")]
    return sum(found) if found else None


def send(url: str, count: int) -> None:
    with httpx.Client(base_url=url, timeout=10, headers={"user-agent": BROWSER_UA}) as client:
        for start in range(0, count, 10):
            batch = [{"domain": "shop.example", "path": f"/{i}"} for i in range(start, start + 10)]
            assert client.post("/api/events", json=batch).status_code == 202


def committed_lag(env: dict[str, str]) -> int:
    """Straight from the broker (not through the appliance's code): newest offsets minus the
    group's committed ones."""
    bootstrap = env["APPLIANCE_KAFKA__BOOTSTRAP_SERVERS"]
    group, topic = env["APPLIANCE_KAFKA__GROUP_ID"], env["APPLIANCE_KAFKA__TOPIC"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    committed = {tp.partition: tp.offset for tp in answer[group].result(10).topic_partitions}
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("lag-reader")})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        newest = {p: reader.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
                  for p in partitions}  # fmt: skip
    finally:
        reader.close()
    return sum(end - max(committed.get(p, 0), 0) for p, end in newest.items())


def test_lag_and_latency_move_with_the_load_and_sigterm_commits(
    env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    assert cli(env, "user", "add", "owner@example.com", "--password-stdin",
               stdin=PASSWORD + "\n").returncode == 0  # fmt: skip
    assert cli(env, "site", "add", "shop.example", "--owner", "owner@example.com").returncode == 0
    url = f"http://127.0.0.1:{free_port()}"
    server = spawn(env | {"APPLIANCE_PORT": url.rsplit(":", 1)[1]}, "serve", log="serve.log")
    wait_until(lambda: answers(url), 20, "serve answers")

    send(url, 100)  # 10 requests
    served = metrics(url)
    assert served["appliance_events_accepted_total"] == 100
    assert served["appliance_kafka_produce_latency_seconds_count"] == 10
    assert served["appliance_kafka_published_total"] == 100
    assert wait_until(lambda: lag(url) == 100, 15, "lag 100 with no processor")

    processor_port = free_port()
    processor_env = env | {"APPLIANCE_METRICS__PORT": str(processor_port)}
    processor = spawn(processor_env, "process", log="process-1.log")
    processor_url = f"http://127.0.0.1:{processor_port}"
    wait_until(lambda: answers(processor_url), 30, "the processor's health port answers")
    assert cli(processor_env, "healthcheck").returncode == 0  # the image's HEALTHCHECK
    wait_until(lambda: metrics(processor_url)["appliance_processor_events_total"] == 100, 30,
          "100 events processed")  # fmt: skip
    processed = metrics(processor_url)
    assert processed["appliance_processor_flush_duration_seconds_count"] >= 1
    assert wait_until(lambda: lag(url) == 0, 20, "lag back to 0")

    processor.send_signal(signal.SIGTERM)
    assert processor.wait(timeout=30) == 0
    assert committed_lag(env) == 0  # the last flush was committed before it left
    assert not answers(processor_url)
    assert cli(processor_env, "healthcheck").returncode == 1

    send(url, 50)  # nobody consumes: the broker keeps them, the lag says so
    assert wait_until(lambda: lag(url) == 50, 15, "lag 50 while no processor runs")
    restarted = spawn(processor_env, "process", log="process-2.log")
    wait_until(lambda: lag(url) == 0, 30, "the restarted processor caught up")
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=30) == 0
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) in (0, -signal.SIGTERM)

    with sqlite3.connect(tmp_path / "data" / "analytics.db") as db:
        counts = db.execute("SELECT count(*), count(DISTINCT event_id) FROM events")
        rows, distinct = counts.fetchone()
    assert rows == distinct == 150  # each event once, across the stop and the restart

    for log in ("serve.log", "process-1.log", "process-2.log"):
        entries = [json.loads(line) for line in (tmp_path / log).read_text().splitlines()]
        assert entries, log  # every line one JSON object (uvicorn's and plugins' too)
    first = [json.loads(line) for line in (tmp_path / "process-1.log").read_text().splitlines()]
    messages = [entry["message"] for entry in first]
    assert any(m.startswith("stopping: flushing") for m in messages)
    assert messages[-1] == "stopped"
    served_log = (tmp_path / "serve.log").read_text()
    assert '"route": "/api/events"' in served_log and "Application shutdown complete" in served_log
    assert TOKEN not in served_log
