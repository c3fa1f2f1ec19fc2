"""The `kafka` settings section: defaults, checks that name the key, and librdkafka configs.

Nothing here imports confluent-kafka, so settings are checked (and the embedded profile
runs) without it installed.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.core.settings import is_int, is_number, one_of, require

NAME = "kafka"

DEFAULTS: dict[str, Any] = {
    "bootstrap_servers": "",  # required: "host:port[,host:port...]"
    "topic": "page_views",
    "dlq_topic": "",  # empty: "<topic>_dlq"
    "partitions": 6,  # used when the topic is created
    "replication_factor": -1,  # -1: the broker's default.replication.factor
    "group_id": "appliance-processor",
    "client_id": "appliance",
    "security_protocol": "PLAINTEXT",
    "sasl_mechanism": "",  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with SASL_*
    "sasl_username": "",
    "sasl_password": "",  # a secret: APPLIANCE_KAFKA__SASL_PASSWORD or .secrets.toml
    "ssl_ca_location": "",  # CA bundle file; empty: the system's
    "linger_ms": 0.5,  # measured: 0.5 beat 1, 0.2 and 0 at 32 and at 128 connections
    "compression": "lz4",
    # A request waits at most this long for the broker's acknowledgement, then answers 503;
    # librdkafka gives the message up at the same moment, so a 503'd event is never counted.
    "publish_timeout_s": 2,
    "shutdown_flush_s": 10,  # how long a stopping `serve` waits for the broker
    "startup_timeout_s": 15,  # how long `appliance process` waits for a broker at start
    "session_timeout_ms": 10000,  # a killed processor's partitions move after this
}

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"[^\s:,]+:\d{1,5}")


def _host_ports(value: Any) -> str | None:
    servers = str(value).split(",")
    if all(_HOST_PORT.fullmatch(server.strip()) for server in servers):
        return None
    return "must be host:port, comma-separated"


def _topic_name(value: Any) -> str | None:
    if isinstance(value, str) and _TOPIC.fullmatch(value):
        return None
    return "must be 1-249 letters, digits, '.', '_' or '-'"


def _not_zero(value: Any) -> str | None:
    return "must be -1 (broker default) or at least 1" if value == 0 else None


def _existing_file(value: Any) -> str | None:
    return None if Path(str(value)).is_file() else "no such file"


def problems(settings: Any) -> list[str]:
    """One line per bad key, only when `transport = "kafka"` (other profiles never read it)."""
    if settings.get("transport") != NAME:
        return []
    if importlib.util.find_spec("confluent_kafka") is None:
        return ["TRANSPORT: kafka needs confluent-kafka (pip install 'appliance[kafka]')"]
    checks = [
        require(settings, "kafka.bootstrap_servers", _host_ports),
        require(settings, "kafka.topic", _topic_name),
        (
            require(settings, "kafka.dlq_topic", _topic_name)
            if settings.get("kafka.dlq_topic")
            else None
        ),
        require(settings, "kafka.partitions", is_int(1, 10_000)),
        require(settings, "kafka.replication_factor", is_int(-1, 100), _not_zero),
        require(settings, "kafka.group_id"),
        require(settings, "kafka.client_id"),
        require(settings, "kafka.security_protocol", one_of(PROTOCOLS)),
        require(settings, "kafka.linger_ms", is_number(0, 60_000)),
        require(settings, "kafka.compression", one_of(COMPRESSIONS)),
        require(settings, "kafka.publish_timeout_s", is_int(1, 300)),
        require(settings, "kafka.shutdown_flush_s", is_int(0, 600)),
        require(settings, "kafka.startup_timeout_s", is_int(1, 600)),
        require(settings, "kafka.session_timeout_ms", is_int(6000, 3_600_000)),
    ]
    if str(settings.get("kafka.security_protocol", "")).startswith("SASL"):
        checks += [
            require(settings, "kafka.sasl_mechanism", one_of(SASL_MECHANISMS)),
            require(settings, "kafka.sasl_username"),
            None
            if settings.get("kafka.sasl_password")
            else "KAFKA.SASL_PASSWORD: missing (a secret: set APPLIANCE_KAFKA__SASL_PASSWORD"
            " or put it in .secrets.toml)",
        ]
    if settings.get("kafka.ssl_ca_location"):
        checks.append(require(settings, "kafka.ssl_ca_location", _existing_file))
    return [problem for problem in checks if problem]


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topic: str
    dlq_topic: str
    partitions: int
    replication_factor: int
    group_id: str
    client_id: str
    security: dict[str, str] = field(repr=False)  # security.*, sasl.*, ssl.*: has the secret
    linger_ms: float
    compression: str
    publish_timeout_s: float
    queue_max_messages: int  # ingest.queue_size: events held before ingest answers 503
    shutdown_flush_s: float
    startup_timeout_s: float
    session_timeout_ms: int

    @classmethod
    def from_settings(cls, settings: Any) -> KafkaSettings:
        kafka = settings.kafka
        security = {"security.protocol": str(kafka.security_protocol)}
        if str(kafka.security_protocol).startswith("SASL"):
            security |= {
                "sasl.mechanism": str(kafka.sasl_mechanism),
                "sasl.username": str(kafka.sasl_username),
                "sasl.password": str(kafka.sasl_password),
            }
        if kafka.ssl_ca_location:
            security["ssl.ca.location"] = str(kafka.ssl_ca_location)
        return cls(
            bootstrap_servers=str(kafka.bootstrap_servers),
            topic=str(kafka.topic),
            dlq_topic=str(kafka.dlq_topic or f"{kafka.topic}_dlq"),
            partitions=int(kafka.partitions),
            replication_factor=int(kafka.replication_factor),
            group_id=str(kafka.group_id),
            client_id=str(kafka.client_id),
            security=security,
            linger_ms=float(kafka.linger_ms),
            compression=str(kafka.compression),
            publish_timeout_s=float(kafka.publish_timeout_s),
            queue_max_messages=int(settings.ingest.queue_size),
            shutdown_flush_s=float(kafka.shutdown_flush_s),
            startup_timeout_s=float(kafka.startup_timeout_s),
            session_timeout_ms=int(kafka.session_timeout_ms),
        )

    def client_config(self) -> dict[str, Any]:
        """What every client (producer, consumer, admin) shares."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            # Errors reach us through error_cb (logged, throttled); librdkafka's own log
            # would repeat each failed connection every few seconds.
            "log_level": 2,
            **self.security,
        }

    def producer_config(self) -> dict[str, Any]:
        return self.client_config() | {
            "enable.idempotence": True,  # retries never duplicate or reorder
            "acks": "all",
            "linger.ms": self.linger_ms,
            "compression.type": self.compression,
            "message.timeout.ms": int(self.publish_timeout_s * 1000),
            "queue.buffering.max.messages": self.queue_max_messages,
            "allow.auto.create.topics": False,  # the topic is created with our partition count
            "delivery.report.only.error": False,  # each request awaits its events' reports
        }

    def consumer_config(self) -> dict[str, Any]:
        return self.client_config() | {
            "group.id": self.group_id,
            "enable.auto.commit": False,  # committed only once every store holds a batch
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group counts what was published before it
            "session.timeout.ms": self.session_timeout_ms,
            # A member learns of a rebalance on its next heartbeat: keep that prompt.
            "heartbeat.interval.ms": min(1000, self.session_timeout_ms // 3),
        }
