"""The Kafka transport's figures for /metrics: producer counts, produce latency and the
consumer group's lag.

Lag is asked of the broker when Prometheus scrapes (at most every `LAG_MAX_AGE_S`): the
newest offset of each partition minus the group's committed offset. A processor that is
stuck (a store failing) stops committing, so its lag grows even though it consumes
nothing; every process reports the same group-wide figure (aggregate with `max`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from plugins.transport_kafka.config import KafkaSettings

if TYPE_CHECKING:
    from plugins.transport_kafka.transport import KafkaTransport

log = logging.getLogger(__name__)

LAG_TIMEOUT_S = 2.0
LAG_MAX_AGE_S = 5.0


def produce_latency_histogram() -> Histogram:
    """From publish to the broker's acknowledgement (or the give-up), per request."""
    return Histogram(
        "appliance_kafka_produce_latency_seconds",
        "Time from publishing a request's events to the broker's acknowledgement",
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        registry=None,
    )


class GroupLag:
    """The consumer group's lag per partition, from one admin client kept for it."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._admin: AdminClient | None = None
        self._lock = threading.Lock()
        self._measured_at = float("-inf")
        self._lag: dict[int, int] | None = None

    def measure(self) -> dict[int, int] | None:
        """{partition: events not yet committed by the group}; None when the broker did
        not answer (the gauge is then left out rather than reported as zero)."""
        with self._lock:
            if time.monotonic() - self._measured_at >= LAG_MAX_AGE_S:
                try:
                    self._lag = self._query()
                except KafkaException as error:
                    log.debug("kafka: lag not measured: %s", error)
                    self._lag = None
                self._measured_at = time.monotonic()
            return self._lag

    def _query(self) -> dict[int, int] | None:
        admin = self._client()
        topic, group = self.settings.topic, self.settings.group_id
        found = admin.list_topics(timeout=LAG_TIMEOUT_S).topics.get(topic)
        if found is None or found.error is not None:
            return None  # not created yet: nothing to lag behind
        partitions = list(found.partitions)
        answer = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=LAG_TIMEOUT_S
        )[group].result(timeout=LAG_TIMEOUT_S)
        committed = {
            tp.partition: tp.offset
            for tp in answer.topic_partitions or ()
            if tp.topic == topic and tp.offset >= 0
        }
        newest = self._offsets(admin, partitions, OffsetSpec.latest())
        missing = [p for p in partitions if p not in committed]
        # Never committed: the group starts at the earliest offset still kept.
        earliest = self._offsets(admin, missing, OffsetSpec.earliest()) if missing else {}
        start = committed | earliest
        return {p: max(0, newest[p] - start[p]) for p in partitions}

    def _offsets(
        self, admin: AdminClient, partitions: list[int], spec: OffsetSpec
    ) -> dict[int, int]:
        topic = self.settings.topic
        futures = admin.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions}, request_timeout=LAG_TIMEOUT_S
        )
        return {tp.partition: f.result(timeout=LAG_TIMEOUT_S).offset for tp, f in futures.items()}

    def _client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(
                self.settings.client_config() | {"error_cb": _reported_as_a_missing_gauge}
            )
        return self._admin


class KafkaCollector:
    """Read at scrape time; nothing here runs on the ingest path."""

    def __init__(self, transport: KafkaTransport) -> None:
        self.transport = transport
        self.lag = GroupLag(transport.settings)

    def describe(self) -> list[Metric]:
        return []  # registering must not ask the broker anything

    def collect(self) -> Iterator[Metric]:
        stats = self.transport.producer.stats
        for name, help_text, value in (
            ("published", "Events the broker acknowledged", stats.published),
            ("failed_deliveries", "Messages the broker never took", stats.failed),
            ("dead_lettered", "Unreadable messages sent to the dead-letter topic",
             stats.dead_lettered),
        ):  # fmt: skip
            yield CounterMetricFamily(f"appliance_kafka_{name}", help_text, value=value)
        yield from self.transport.produce_latency.collect()
        lag = self.lag.measure()
        if lag is not None:
            gauge = GaugeMetricFamily(
                "appliance_kafka_consumer_lag",
                "Events in the topic not yet committed by the processors' group",
                labels=["topic", "partition"],
            )
            for partition, behind in sorted(lag.items()):
                gauge.add_metric([self.transport.settings.topic, str(partition)], behind)
            yield gauge


def _reported_as_a_missing_gauge(error: KafkaError) -> None:
    """Connection errors: the lag gauge is simply absent from that scrape."""
