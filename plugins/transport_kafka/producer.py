"""The ingest side: 202 means the broker acknowledged the event.

`publish` queues a request's events in librdkafka (which sends from its own thread, batching
per partition for `linger_ms`) and returns a future that a thread serving delivery reports
settles when the broker has acknowledged all of them, or when one failed. librdkafka gives a
message up after `publish_timeout_s` (`message.timeout.ms`), so the future always settles
within that time: the request then answers 503, and the given-up event is never counted.
A full queue refuses the request whole at once (TransportFull).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, Producer

from appliance.core.event import Event
from appliance.core.transport import TransportFull
from plugins.transport_kafka.config import KafkaSettings
from plugins.transport_kafka.envelope import encode
from plugins.transport_kafka.logs import ThrottledLog

log = logging.getLogger(__name__)
librdkafka_log = logging.getLogger("plugins.transport_kafka.librdkafka")

POLL_WAIT_S = 0.1  # the report thread's longest sleep; reports wake it at once
STATS_INTERVAL_S = 60.0
DEAD_LETTER_WAIT_S = 10.0


@dataclass(slots=True)
class ProducerStats:
    published: int = 0  # events the broker acknowledged (answered 202)
    failed: int = 0  # messages the broker never took (events lost, or dead letters)
    dead_lettered: int = 0

    def line(self, queued: int) -> str:
        return (
            f"kafka producer: {self.published} events published, {queued} waiting for the"
            f" broker, {self.failed} failed deliveries, {self.dead_lettered} dead letters"
        )


class EventProducer:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topic = settings.topic
        self.capacity = settings.queue_max_messages
        self.stats = ProducerStats()
        self._producer: Producer | None = None
        self._closed = False
        self._fatal = False
        self._errors = ThrottledLog(log)
        self.last_error = ""  # the latest client error, for a start-up failure's message
        self._reports: threading.Thread | None = None
        self._reporting = threading.Event()
        self._settled: deque[Acknowledgements] = deque()  # complete, not yet told to the loop

    def start(self) -> None:
        """Create the client (it connects in the background; nothing here waits)."""
        self._producer = Producer(
            self.settings.producer_config()
            | {
                "on_delivery": self._on_failed_delivery,
                "error_cb": self._on_error,
                "logger": librdkafka_log,
            }
        )

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("kafka producer is not started")
        return self._producer

    def publish(self, events: list[Event]) -> asyncio.Future[str | None]:
        """Queue the events; the future settles with None (all acknowledged) or an error."""
        producer = self.producer
        if self._closed or self._fatal or len(producer) + len(events) > self.capacity:
            raise TransportFull(retry_after_s=1)
        acks = Acknowledgements(len(events), asyncio.get_running_loop(), self.stats, self._settled)
        topic = self.topic
        try:
            for event in events:
                key = str(event.site_id).encode()
                producer.produce(topic, encode(event), key, on_delivery=acks.report)
        except BufferError:
            # Only librdkafka's byte limit gets here (the count was checked above). What was
            # queued may still be delivered, but the request is answered 503 as a whole.
            acks.refuse("the producer queue is full")
            raise TransportFull(retry_after_s=1) from None
        return acks.future

    def dead_letter(self, message: Message, reason: str) -> None:
        """Put an unreadable message on the dead-letter topic, the reason in a header.

        Called from the consumer's thread; waits (bounded) for room in the queue.
        """
        headers = [
            ("error", reason.encode()),
            ("source", f"{message.topic()}/{message.partition()}/{message.offset()}".encode()),
        ]
        deadline = time.monotonic() + DEAD_LETTER_WAIT_S
        while True:
            try:
                self.producer.produce(
                    self.settings.dlq_topic, message.value(), message.key(), headers=headers
                )
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise
                self.producer.poll(0.1)
                self._tell_loops()
        self.stats.dead_lettered += 1
        log.warning(
            "kafka: message %s/%d/%d sent to %s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            self.settings.dlq_topic,
            reason,
        )

    def start_reports(self) -> None:
        """Serve delivery reports from a thread, so a request learns of its ack at once."""
        self._reporting.set()
        # A daemon: a transport nobody stopped (a crash, a failed test) must not hold the
        # interpreter open at exit.
        self._reports = threading.Thread(
            target=self._serve_reports, name="kafka-reports", daemon=True
        )
        self._reports.start()

    def stop_reports(self) -> None:
        self._reporting.clear()
        if self._reports is not None:
            self._reports.join(timeout=5)
            self._reports = None

    def _serve_reports(self) -> None:
        logged_at, last_line = time.monotonic(), ""
        while self._reporting.is_set():
            self.producer.poll(POLL_WAIT_S)
            self._tell_loops()
            if time.monotonic() - logged_at > STATS_INTERVAL_S:
                line = self.stats.line(self.queued())
                if line != last_line:
                    log.info("%s", line)
                logged_at, last_line = time.monotonic(), line

    def flush(self, timeout_s: float) -> int:
        """Wait (blocking) until the broker acknowledged everything queued; return what's left."""
        left = self.producer.flush(timeout_s) if self._producer is not None else 0
        self._tell_loops()
        return left

    def _tell_loops(self) -> None:
        """Settle the futures of every request completed by the last poll, with one wake-up
        of the event loop for all of them (not one per event: that costs a syscall each)."""
        if not self._settled:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[Acknowledgements]] = {}
        while True:  # the report thread and a flushing thread may both be here
            try:
                acks = self._settled.popleft()
            except IndexError:
                break
            by_loop.setdefault(acks.loop, []).append(acks)
        for loop, completed in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_all, completed)

    def close(self) -> None:
        """Refuse further events (the web server stopped taking requests)."""
        self._closed = True

    def queued(self) -> int:
        return len(self._producer) if self._producer is not None else 0

    def _on_failed_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        self.stats.failed += 1
        lost = "a dead letter" if message.topic() == self.settings.dlq_topic else "an event"
        self._errors.log(
            logging.ERROR,
            f"delivery:{error.code()}",
            "kafka: %s was not delivered and is lost: %s",
            lost,
            error.str(),
        )

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = error.str()
        if error.fatal():
            self._fatal = True  # the idempotent producer can't continue; ingest answers 503
            log.critical("kafka producer: fatal error, restart the process: %s", error.str())
            return
        self._errors.log(logging.WARNING, f"error:{error.code()}", "kafka: %s", error.str())


class Acknowledgements:
    """Counts one request's delivery reports; settles its future once all have come."""

    def __init__(
        self,
        count: int,
        loop: asyncio.AbstractEventLoop,
        stats: ProducerStats,
        settled: deque[Acknowledgements],
    ) -> None:
        self.waiting = count
        self.error: str | None = None
        self.loop = loop
        self.stats = stats
        self.settled = settled
        self.future: asyncio.Future[str | None] = loop.create_future()

    def report(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's callback (on the report thread, or a thread flushing the producer)."""
        if error is None:
            self.stats.published += 1
        else:
            self.stats.failed += 1
            self.error = self.error or error.str()
        self.waiting -= 1
        if self.waiting == 0:
            self.settled.append(self)  # the polling thread tells the loop after the poll

    def refuse(self, reason: str) -> None:
        self.error = reason
        self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self.future.done():
            self.future.set_result(self.error)


def _settle_all(completed: list[Acknowledgements]) -> None:
    for acks in completed:
        acks._settle()
