"""The processor side: a group member that resumes after what the stores hold.

Every method blocks, so the transport calls them from a worker thread, one at a time.
Partition assignment and revocation happen inside `consume`. Under a backlog the processor
reads the next delivery while it writes the last one, so partitions may be revoked while a
delivery of theirs is being written: its commit then leaves them out, and their next owner
resumes after what the stores hold, or before it and they skip it: each store checks
and records its applied offsets in the write itself (Postgres locks their rows), so of two
owners writing one range, the second finds it held. On
assignment each partition resumes at the first offset some store lacks (asked of the
processor, on the event loop) or at the committed offset, whichever is later; the stores
skip anything they hold, so offsets committed late (a crash between write and commit) or
lost (a rebalance) never double-count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from appliance.core.event import Event
from appliance.core.transport import Delivery, PartitionOffsets, Position, ResumeOffsets
from plugins.transport_kafka.config import KafkaSettings
from plugins.transport_kafka.envelope import EnvelopeError, decode
from plugins.transport_kafka.logs import ThrottledLog

log = logging.getLogger(__name__)
librdkafka_log = logging.getLogger("plugins.transport_kafka.librdkafka")

RESUME_TIMEOUT_S = 60.0
COMMITTED_TIMEOUT_S = 10.0
# The group moved on (or this member left it: stores down for longer than the poll
# interval): the partitions' next owner, maybe this one after its next poll, resumes after
# what the stores hold. Raising instead would retry a commit that can never succeed.
REBALANCE_ERRORS = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError._ASSIGNMENT_LOST,
    KafkaError._MAX_POLL_EXCEEDED,
}

DeadLetter = Callable[[Message, str], None]


class EventConsumer:
    def __init__(
        self,
        settings: KafkaSettings,
        resume_offsets: ResumeOffsets,
        dead_letter: DeadLetter,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic
        self._resume_offsets = resume_offsets
        self._dead_letter = dead_letter
        self._loop = loop
        self._consumer: Consumer | None = None
        self._assigned: set[int] = set()
        self._errors = ThrottledLog(log)

    def open(self) -> None:
        self._consumer = Consumer(
            self.settings.consumer_config() | {"error_cb": self._on_error, "logger": librdkafka_log}
        )
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("kafka consumer is not open")
        return self._consumer

    def consume(self, max_events: int, timeout_s: float) -> Delivery:
        messages = self._receive(max_events, timeout_s)
        spans: dict[int, list[int]] = {}  # partition -> [first, last] offset consumed
        events: list[Event] = []
        partitions: list[int] = []  # partitions[i], numbers[i]: where events[i] came from
        numbers: list[int] = []
        assigned = self._assigned  # changes only inside librdkafka calls, not in this loop
        current, span = -1, [0, 0]  # the partition of the message before, and its span
        try:
            for message in messages:
                if message.error() is not None:
                    self._on_error(message.error())
                    continue
                partition, offset = message.partition(), message.offset()
                if partition != current:  # fetched in runs: look a partition up once per run
                    if partition not in assigned:
                        continue  # revoked while this call ran; its new owner reads it
                    current = partition
                    span = spans.setdefault(partition, [offset, offset])
                span[1] = offset
                try:
                    event = decode(message.value())
                except EnvelopeError as problem:
                    self._dead_letter(message, str(problem))
                    continue
                events.append(event)
                partitions.append(partition)
                numbers.append(offset)
        except BaseException:
            self._rewind(spans)  # consumed but not handed out: read these again
            raise
        positions = [
            Position(self.topic, str(partition), first, last)
            for partition, (first, last) in spans.items()
        ]
        offsets = PartitionOffsets(self.topic, partitions, numbers)
        return Delivery(events=events, positions=positions, offsets=offsets)

    def _receive(self, max_events: int, timeout_s: float) -> list[Message]:
        """What is fetched already, else the first message within `timeout_s` and what is
        fetched with it. (A batch `consume` would wait out its timeout to fill the batch,
        which an idle appliance would see as latency.)"""
        consumer = self.consumer
        messages = consumer.consume(num_messages=max_events, timeout=0)
        if messages or timeout_s <= 0:
            return messages
        first = consumer.poll(timeout_s)
        if first is None:
            return []
        if max_events == 1:
            return [first]
        return [first, *consumer.consume(num_messages=max_events - 1, timeout=0)]

    def commit(self, delivery: Delivery) -> None:
        """Commit the offsets after `delivery`; a group that moved on is logged, not raised."""
        offsets = [
            TopicPartition(position.topic, int(position.partition), position.last + 1)
            for position in delivery.positions
            if int(position.partition) in self._assigned
        ]
        if not offsets:
            return
        try:
            results = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() not in REBALANCE_ERRORS:
                raise
            log.warning("kafka: commit skipped, the group is rebalancing: %s", error.args[0].str())
            return
        for result in results or ():
            if result.error is not None:
                if result.error.code() not in REBALANCE_ERRORS:
                    raise KafkaException(result.error)
                log.warning(
                    "kafka: commit of partition %d skipped: %s", result.partition, result.error
                )

    def close(self) -> None:
        """Leave the group at once, so the other processors take the partitions now."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        names = [str(tp.partition) for tp in partitions]
        try:
            resume = asyncio.run_coroutine_threadsafe(
                self._resume_offsets(self.topic, names), self._loop
            ).result(RESUME_TIMEOUT_S)
            committed = consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
        except Exception:
            # Resuming at the committed offsets is still exact: the stores skip what they hold.
            log.exception("kafka: could not read the stores' offsets; resuming at committed ones")
            resume, committed = {}, partitions
        starts = []
        for tp, done in zip(partitions, committed, strict=True):
            start = resume.get(str(tp.partition), 0)
            if start > max(done.offset, 0):
                tp.offset = start
            at = tp.offset if tp.offset >= 0 else done.offset
            starts.append(f"{tp.partition}@{at if at >= 0 else 'earliest'}")
        consumer.assign(partitions)
        self._assigned.update(tp.partition for tp in partitions)
        log.info("kafka: assigned %s partitions %s", self.topic, ", ".join(starts))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.difference_update(tp.partition for tp in partitions)
        log.info("kafka: revoked %s partitions %s", self.topic, [tp.partition for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.difference_update(tp.partition for tp in partitions)
        log.warning("kafka: lost %s partitions %s", self.topic, [tp.partition for tp in partitions])

    def _rewind(self, spans: dict[int, list[int]]) -> None:
        for partition, (first, _) in spans.items():
            try:
                self.consumer.seek(TopicPartition(self.topic, partition, first))
            except KafkaException:
                log.exception("kafka: could not rewind partition %d", partition)

    def _on_error(self, error: KafkaError) -> None:
        self._errors.log(logging.WARNING, f"error:{error.code()}", "kafka: %s", error.str())
