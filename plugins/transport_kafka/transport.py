"""The Kafka transport: the producer and (in `appliance process`) the consumer, as one Transport.

`start` never waits for the broker: the topics are created by a background task that keeps
trying (and logs why), and ingest queues meanwhile. `subscribe` does wait, up to
`kafka.startup_timeout_s`, and then fails with one line: a processor with no broker has
nothing to do, and a supervisor restarting it is clearer than a silent wait. Once running,
both sides ride out a broker outage (librdkafka reconnects; the processor retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from appliance.core.event import Event
from appliance.core.transport import Delivery, ResumeOffsets, TransportUnavailable
from plugins.transport_kafka.config import KafkaSettings
from plugins.transport_kafka.consumer import EventConsumer
from plugins.transport_kafka.logs import ThrottledLog
from plugins.transport_kafka.metrics import produce_latency_histogram
from plugins.transport_kafka.producer import EventProducer, librdkafka_log
from plugins.transport_kafka.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)
T = TypeVar("T")

TOPIC_ATTEMPT_S = 2.0  # one try at reaching a broker; short, so a stop is never held long
TOPIC_RETRY_PAUSE_S = 1.0


class KafkaTransport:
    name = "kafka"
    redelivers = True  # the broker keeps what was not committed

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.producer = EventProducer(settings)
        self.consumer: EventConsumer | None = None
        self._topics_ready = asyncio.Event()
        self._last_topic_error = ""
        self._topics_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._dead_letters_seen = 0
        # The consumer is called from worker threads one at a time: the processor reads the
        # next delivery while the last one's commit may still run. A thread lock, taken in
        # the worker: a cancelled caller must not let close() in while its call still runs.
        self._consumer_lock = threading.Lock()
        self.produce_latency = produce_latency_histogram()  # shown by metrics.py

    async def start(self) -> None:
        self.producer.start()
        self.producer.start_reports()
        self._topics_task = asyncio.create_task(self._create_topics(), name="kafka-topics")

    def publish(self, events: list[Event]) -> asyncio.Future[str | None]:
        started = time.monotonic()
        acknowledged = self.producer.publish(events)
        acknowledged.add_done_callback(
            lambda _: self.produce_latency.observe(time.monotonic() - started)
        )
        return acknowledged

    async def subscribe(self, resume_offsets: ResumeOffsets) -> None:
        timeout_s = self.settings.startup_timeout_s
        try:
            await asyncio.wait_for(self._topics_ready.wait(), timeout_s)
        except TimeoutError:
            reason = self._last_topic_error or self.producer.last_error or "no answer"
            raise TransportUnavailable(
                f"kafka: no broker answered at {self.settings.bootstrap_servers} within"
                f" {timeout_s:g} s ({reason}); check KAFKA.BOOTSTRAP_SERVERS and that the"
                " broker runs"
            ) from None
        consumer = EventConsumer(
            self.settings, resume_offsets, self.producer.dead_letter, asyncio.get_running_loop()
        )
        await asyncio.to_thread(consumer.open)
        self.consumer = consumer
        log.info(
            "kafka: consuming %s as group %s from %s",
            self.settings.topic,
            self.settings.group_id,
            self.settings.bootstrap_servers,
        )

    async def consume(self, max_events: int, timeout_s: float) -> Delivery:
        if self.consumer is None:
            raise RuntimeError("subscribe() before consume()")
        if self._stopping:
            # The broker keeps the rest for the next start. Wait a little, as a consume with
            # a timeout does: a caller looping on this must still let the stop proceed.
            await asyncio.sleep(min(timeout_s, 0.05))
            return Delivery()
        return await self._call_consumer(self.consumer.consume, max_events, timeout_s)

    async def commit(self, delivery: Delivery) -> None:
        if self.consumer is None:
            return
        dead_letters = self.producer.stats.dead_lettered
        if dead_letters != self._dead_letters_seen:
            # A dead letter must be on its topic before the offset moves past its message.
            left = await asyncio.to_thread(self.producer.flush, self.settings.shutdown_flush_s)
            if left:
                raise RuntimeError(f"kafka: {left} messages not acknowledged; commit postponed")
            self._dead_letters_seen = dead_letters
        await self._call_consumer(self.consumer.commit, delivery)

    async def stop(self) -> None:
        """Refuse new events and wait (up to `shutdown_flush_s`) for the broker to take the rest."""
        self._stopping = True
        self.producer.close()
        # The topics task keeps trying meanwhile: queued events need their topic to exist.
        left = await asyncio.to_thread(self.producer.flush, self.settings.shutdown_flush_s)
        await _cancel(self._topics_task)
        await asyncio.to_thread(self.producer.stop_reports)
        if left:
            log.error(
                "kafka: %d accepted events were not acknowledged by %s within %g s and are lost",
                left,
                self.settings.bootstrap_servers,
                self.settings.shutdown_flush_s,
            )
        if self.producer.stats.published or self.producer.stats.dead_lettered:
            log.info("%s", self.producer.stats.line(left))

    async def close(self) -> None:
        await asyncio.to_thread(self.producer.stop_reports)
        await _cancel(self._topics_task)
        if self.consumer is not None:
            await self._call_consumer(self.consumer.close)
            self.consumer = None

    async def _call_consumer(self, call: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._consumer_lock:
                return call(*args)

        return await asyncio.to_thread(locked)

    def pending(self) -> int:
        return self.producer.queued()

    async def _create_topics(self) -> None:
        """Create the topics once a broker answers; until then, retry and say why."""
        specs = [
            TopicSpec(
                self.settings.topic, self.settings.partitions, self.settings.replication_factor
            ),
            TopicSpec(self.settings.dlq_topic, 1, self.settings.replication_factor),
        ]
        admin = AdminClient(
            self.settings.client_config()
            | {"logger": librdkafka_log, "error_cb": _reported_by_the_retry_loop}
        )
        warnings = ThrottledLog(log)
        while True:
            try:
                created = await asyncio.to_thread(ensure_topics, admin, specs, TOPIC_ATTEMPT_S)
            except KafkaException as error:
                self._last_topic_error = error.args[0].str()
                warnings.log(
                    logging.WARNING,
                    "unreachable",
                    "kafka: no broker answers at %s yet (%s); events are queued meanwhile",
                    self.settings.bootstrap_servers,
                    self._last_topic_error,
                )
                await asyncio.sleep(TOPIC_RETRY_PAUSE_S)
                continue
            if created:
                log.info("kafka: created topics %s", ", ".join(created))
            self._topics_ready.set()
            return


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _reported_by_the_retry_loop(error: object) -> None:
    """The admin client's connection errors: `_create_topics` logs them, throttled."""
