"""Create the event topic and its dead-letter topic when they are missing.

Runs in a worker thread (the admin client blocks). A topic that exists is left alone, even
with another partition count: changing it would move sites between partitions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int  # -1: the broker's default


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float) -> list[str]:
    """Create the missing topics; return their names. KafkaException if no broker answers."""
    existing = admin.list_topics(timeout=timeout_s).topics
    for spec in specs:
        found = existing.get(spec.name)
        if found is not None and found.error is None and len(found.partitions) != spec.partitions:
            log.warning(
                "kafka: topic %s has %d partitions, settings say %d; keeping %d",
                spec.name,
                len(found.partitions),
                spec.partitions,
                len(found.partitions),
            )
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor) for s in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another process won
                raise
    return created
