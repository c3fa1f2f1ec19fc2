"""The real Kafka broker the Kafka tests use, and names that keep tests apart.

`make test` starts the broker (`make services`). When it does not answer, the tests are
skipped with that advice, except in CI (CI=true), where a missing broker is a failure.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.servers import server_env

BOOTSTRAP = "127.0.0.1:9092"
_problem: list[str | None] = []  # checked once per session: [None] or [why not]


def require_broker() -> str:
    """The bootstrap address of a broker that answers; skip (fail in CI) when none does."""
    if not _problem:
        try:
            AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0}).list_topics(timeout=5)
            _problem.append(None)
        except KafkaException as error:
            _problem.append(
                f"no Kafka broker answers at {BOOTSTRAP} ({error.args[0].str()});"
                " start it with `make services`"
            )
    if _problem[0] is not None:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(_problem[0])
        pytest.skip(_problem[0])
    return BOOTSTRAP


def unique(prefix: str) -> str:
    """A topic or group name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def kafka_env(data_dir: Path, name: str) -> dict[str, str]:
    """`appliance serve` / `process` in the Kafka profile on a topic and consumer group of
    their own (`name` prefixes both), flushing every 50 ms, a killed member noticed in 6 s."""
    return server_env(data_dir) | {
        "APPLIANCE_TRANSPORT": "kafka",
        "APPLIANCE_PROCESSOR__EMBEDDED": "false",
        "APPLIANCE_PROCESSOR__FLUSH_INTERVAL_MS": "50",
        "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": require_broker(),
        "APPLIANCE_KAFKA__TOPIC": unique(name),
        "APPLIANCE_KAFKA__GROUP_ID": unique(f"{name}-processors"),
        "APPLIANCE_KAFKA__SESSION_TIMEOUT_MS": "6000",
    }
