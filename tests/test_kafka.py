"""The Kafka transport: settings, and against the real broker: each event once per store
across redelivery and replay, dead letters, and a full producer queue answering 503."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from appliance.app import create_app
from appliance.core.event import Event
from appliance.core.processor import Processor
from appliance.core.runtime import Appliance
from appliance.core.settings import SettingsError, apply_defaults, load_settings
from appliance.core.stores import Store
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.transport_kafka.config import DEFAULTS, KafkaSettings
from plugins.transport_kafka.envelope import VERSION, decode, encode
from plugins.transport_kafka.topics import TopicSpec, ensure_topics
from plugins.transport_kafka.transport import KafkaTransport
from tests.conftest import Browser, event, make_client
from tests.kafka_broker import BOOTSTRAP, require_broker, unique

# --- settings (no broker needed) --------------------------------------------------------


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        ({}, "KAFKA.BOOTSTRAP_SERVERS: missing"),
        ({"bootstrap_servers": "localhost"}, "KAFKA.BOOTSTRAP_SERVERS: must be host:port"),
        ({"partitions": 0}, "KAFKA.PARTITIONS: must be between 1 and 10000"),
        ({"linger_ms": "soon"}, "KAFKA.LINGER_MS: must be"),
        ({"linger_ms": -0.5}, "KAFKA.LINGER_MS: must be"),
        ({"topic": "page views"}, "KAFKA.TOPIC: must be 1-249 letters"),
        ({"security_protocol": "SASL_SSL"}, "KAFKA.SASL_MECHANISM: missing"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
            "KAFKA.SASL_PASSWORD: missing (a secret: set APPLIANCE_KAFKA__SASL_PASSWORD",
        ),
        ({"ssl_ca_location": "/nonexistent/ca.pem"}, "KAFKA.SSL_CA_LOCATION: no such file"),
    ],
)
def test_bad_kafka_settings_stop_start_up_naming_the_key(
    tmp_path: Path, kafka: dict[str, Any], message: str
) -> None:
    if kafka and "bootstrap_servers" not in kafka:
        kafka = {"bootstrap_servers": BOOTSTRAP} | kafka
    with pytest.raises(SettingsError) as raised:
        Appliance.create(data_dir=str(tmp_path), transport="kafka", kafka=kafka)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_linger_takes_fractions_of_a_millisecond(tmp_path: Path) -> None:
    settings = {"bootstrap_servers": BOOTSTRAP, "linger_ms": 0.25}
    appliance = Appliance.create(data_dir=str(tmp_path), transport="kafka", kafka=settings)
    assert appliance.transport.settings.producer_config()["linger.ms"] == 0.25
    default = Appliance.create(
        data_dir=str(tmp_path / "default"),
        transport="kafka",
        kafka={"bootstrap_servers": BOOTSTRAP},
    )
    assert default.transport.settings.producer_config()["linger.ms"] == 0.5


def test_other_transports_never_read_the_kafka_section(tmp_path: Path) -> None:
    appliance = Appliance.create(data_dir=str(tmp_path), kafka={"partitions": 0})
    assert appliance.transport.name == "memory"


def test_local_profile_runs_kafka_with_a_separate_processor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", "local")
    appliance = Appliance.create(data_dir=str(tmp_path))
    assert appliance.transport.name == "kafka"
    assert appliance.settings.processor.embedded is False
    settings = appliance.transport.settings
    assert (settings.bootstrap_servers, settings.topic, settings.partitions) == (
        "127.0.0.1:9092",
        "page_views",
        6,
    )
    assert (settings.group_id, settings.dlq_topic) == ("appliance-processor", "page_views_dlq")


def test_production_profile_takes_the_sasl_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "APPLIANCE_ENV": "production",
        "APPLIANCE_TRANSPORT": "kafka",
        "APPLIANCE_KAFKA__BOOTSTRAP_SERVERS": "kafka.example.net:9003",
        "APPLIANCE_KAFKA__SASL_USERNAME": "appliance",
        "APPLIANCE_KAFKA__SASL_PASSWORD": "123456",  # digits: must stay a string
        "APPLIANCE_SECRET_KEY": "k3P9xQ2vZ7mB4nR8tW1yL6cF0hJ5sD2gA9eU3iO7",
    }.items():
        monkeypatch.setenv(key, value)
    appliance = Appliance.create(data_dir=str(tmp_path))
    config = appliance.transport.settings.producer_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("appliance", "123456")
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert "123456" not in repr(appliance.transport.settings)


# --- helpers ----------------------------------------------------------------------------


def kafka_settings(queue_size: int = 100_000, **kafka: Any) -> KafkaSettings:
    settings = load_settings(
        transport="kafka",
        ingest={"queue_size": queue_size},
        kafka={"bootstrap_servers": BOOTSTRAP, "session_timeout_ms": 6000} | kafka,
    )
    apply_defaults(settings, {"kafka": DEFAULTS})
    return KafkaSettings.from_settings(settings)


def make_events(first: int, count: int) -> list[Event]:
    return [
        Event(
            event_id=f"e{i}",
            ts=time.time(),
            site_id=1 + i % 4,  # the key: several sites, so several partitions
            name="pageview",
            path=f"/p{i % 5}",
            visitor_id=f"v{i % 7}",
            session_id=f"s{i % 11}",
        )
        for i in range(first, first + count)
    ]


def open_store(path: Path) -> SqliteAnalyticsStore:
    store = SqliteAnalyticsStore(path)
    store.open()
    return store


def counts(store: SqliteAnalyticsStore) -> tuple[int, int]:
    """(event rows, distinct event ids): equal when nothing was written twice."""
    with store.reader.locked() as conn:
        return tuple(
            conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        )


async def publish(settings: KafkaSettings, events: list[Event]) -> None:
    transport = KafkaTransport(settings)
    await transport.start()
    for start in range(0, len(events), 50):
        transport.publish(events[start : start + 50])
    await transport.stop()  # waits for the broker's acknowledgement
    await transport.close()
    assert transport.producer.stats.failed == 0


async def process_until(
    settings: KafkaSettings,
    stores: Sequence[Store],
    done: Callable[[], bool],
    max_batch_events: int = 500,
    timeout_s: float = 30,
) -> Processor:
    """Run a processor (one group member) until `done()`, then stop it gracefully."""
    transport = KafkaTransport(settings)
    processor = Processor(
        transport, stores, flush_interval_s=0.05, max_batch_events=max_batch_events
    )
    await transport.start()
    await processor.subscribe()
    task = asyncio.create_task(processor.run())
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not done within {timeout_s} s: {processor.stats}"
        assert not task.done(), task
        await asyncio.sleep(0.02)
    await transport.stop()
    processor.stop()
    await asyncio.wait_for(task, 30)
    await transport.close()
    return processor


def reset_group_to_earliest(group: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, 0) for p in range(partitions)]
    )
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(timeout=10)


# --- against the broker -----------------------------------------------------------------


def test_redelivered_overlaps_and_a_replay_count_each_event_once_per_store(
    tmp_path: Path,
) -> None:
    require_broker()
    topic, total = unique("overlap"), 3000
    settings = kafka_settings(topic=topic, partitions=3)
    behind = open_store(tmp_path / "behind.db")
    ahead = open_store(tmp_path / "ahead.db")
    late = open_store(tmp_path / "late.db")

    async def scenario() -> None:
        await publish(settings, make_events(0, total))

        # 1. One store gets part of the topic, cut on its own batch boundaries (a crash).
        await process_until(
            kafka_settings(topic=topic, partitions=3, group_id=unique("g1")),
            [behind],
            lambda: counts(behind)[0] >= 1000,
            max_batch_events=200,
        )
        held = counts(behind)[0]
        assert 1000 <= held < total

        # 2. A new group redelivers everything on other boundaries: `ahead` (empty) takes it
        #    all, `behind` only what it lacks, even where a batch overlaps what it holds.
        group = unique("g2")
        second = await process_until(
            kafka_settings(topic=topic, partitions=3, group_id=group),
            [ahead, behind],
            lambda: counts(ahead)[0] >= total and counts(behind)[0] >= total,
            max_batch_events=170,
        )
        assert second.stats.already_held == held

        # 3. Reset the group to the earliest offsets and replay: a new store fills, the
        #    others stay exactly as they were.
        reset_group_to_earliest(group, topic, 3)
        third = await process_until(
            kafka_settings(topic=topic, partitions=3, group_id=group),
            [ahead, behind, late],
            lambda: counts(late)[0] >= total,
        )
        assert third.stats.already_held == 2 * total

    asyncio.run(scenario())
    last_offsets = {str(p): end - 1 for p, end in end_offsets(topic, 3).items() if end}
    for store in (ahead, behind, late):
        assert counts(store) == (total, total)
        assert store.applied_positions(topic) == last_offsets
        store.close()


def test_a_cancelled_consume_holds_the_consumer_until_its_call_returns(tmp_path: Path) -> None:
    """The processor cancels a read-ahead when it stops early; librdkafka's call goes on in
    its thread, and close() must wait for it instead of closing the consumer under it."""
    require_broker()
    settings = kafka_settings(topic=unique("cancel"), group_id=unique("g"))
    calls: list[tuple[str, float, float]] = []

    def recorded(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            began = time.monotonic()
            try:
                return call(*args)
            finally:
                calls.append((name, began, time.monotonic()))

        return run

    async def scenario() -> None:
        transport = KafkaTransport(settings)
        await transport.start()
        processor = Processor(transport, [], flush_interval_s=0.05, max_batch_events=100)
        await processor.subscribe()
        consumer = transport.consumer
        assert consumer is not None
        consumer.consume = recorded("consume", consumer.consume)  # type: ignore[method-assign]
        consumer.close = recorded("close", consumer.close)  # type: ignore[method-assign]
        reading = asyncio.create_task(transport.consume(100, 1.5))  # nothing to read
        await asyncio.sleep(0.3)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        await transport.stop()
        await transport.close()

    asyncio.run(scenario())
    (_, _, consumed_until), (_, closing_from, _) = calls
    assert [name for name, _, _ in calls] == ["consume", "close"]
    assert closing_from >= consumed_until


def test_unreadable_messages_go_to_the_dead_letter_topic_and_processing_continues(
    tmp_path: Path,
) -> None:
    require_broker()
    topic = unique("dlq")
    settings = kafka_settings(topic=topic, partitions=1, group_id=unique("g"))
    store = open_store(tmp_path / "analytics.db")
    good = make_events(0, 3)
    future_version = msgspec.msgpack.encode((99, good[0]))
    messages = [encode(good[0]), b"not msgpack at all", encode(good[1]), future_version]
    messages.append(encode(good[2]))

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    ensure_topics(admin, [TopicSpec(topic, 1, -1), TopicSpec(settings.dlq_topic, 1, -1)], 10)
    raw = Producer({"bootstrap.servers": BOOTSTRAP, "log_level": 0})
    for value in messages:
        raw.produce(topic, value, b"1")
    assert raw.flush(10) == 0

    asyncio.run(process_until(settings, [store], lambda: counts(store)[0] >= 3))
    assert counts(store) == (3, 3)
    assert store.applied_positions(topic) == {"0": 4}  # past the dead letters too

    dead = read_all(settings.dlq_topic, expected=2)
    assert [message.value() for message in dead] == [messages[1], messages[3]]
    reasons = [dict(message.headers())["error"].decode() for message in dead]
    assert reasons[0].startswith("not an event envelope")
    assert reasons[1] == "unsupported envelope version 99 (this reads 1)"
    assert dict(dead[0].headers())["source"] == f"{topic}/0/1".encode()
    store.close()


def end_offsets(topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("w"), "log_level": 0})
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in range(partitions)
    }
    consumer.close()
    return ends


def read_all(topic: str, expected: int, timeout_s: float = 15) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < expected and time.monotonic() < deadline:
        found += [m for m in consumer.consume(expected, 0.5) if m.error() is None]
    consumer.close()
    return found


def test_messages_leave_default_fields_out_and_both_forms_read_the_same() -> None:
    sparse = Event(event_id="e1", ts=1.5, site_id=2, name="pageview", path="/", browser="Firefox")
    message = encode(sparse)
    assert set(msgspec.msgpack.decode(message)[1]) == {
        "event_id", "ts", "site_id", "name", "path", "browser"
    }  # fmt: skip
    # What an appliance that wrote every field put on the topic reads the same.
    written_in_full = msgspec.msgpack.encode([VERSION, msgspec.structs.asdict(sparse)])
    assert decode(message) == decode(written_in_full) == sparse
    first, second = decode(message), decode(message)
    first.props["plan"] = "pro"  # each decoded event gets a dict of its own
    assert second.props == {}


def test_the_defaults_messages_leave_out_are_pinned() -> None:
    """A message leaves out the fields at their default, so a reader fills in its own
    default: changing one changes what old messages say (it needs a new VERSION)."""
    unset = msgspec.NODEFAULT
    defaults = {
        field.name: field.default if field.default is not unset else field.default_factory()
        for field in msgspec.structs.fields(Event)
        if field.default is not unset or field.default_factory is not unset
    }
    text = [
        "visitor_id", "session_id", "referrer", "referrer_source", "referrer_medium", "url",
        "title", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
        "browser", "os", "device", "country", "region",
    ]  # fmt: skip
    numbers = {"screen_width": 0, "screen_height": 0}
    assert defaults == dict.fromkeys(text, "") | numbers | {"props": {}}


def test_full_producer_queue_answers_503_and_takes_nothing_of_the_request(
    tmp_path: Path,
) -> None:
    require_broker()
    topic = unique("full")
    appliance = Appliance.create(
        data_dir=str(tmp_path / "data"),
        transport="kafka",
        ingest={"queue_size": 20},
        processor={"embedded": False},
        kafka={"bootstrap_servers": BOOTSTRAP, "topic": topic, "partitions": 2},
    )
    with make_client(create_app(appliance), base_url="http://testserver") as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        refused = client.post("/api/events", json=[event(f"/{i}") for i in range(30)])
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.json()["error"]
        taken = client.post("/api/events", json=[event(f"/{i}") for i in range(10)])
        assert taken.status_code == 202, taken.text
    # The stop waited for the broker: exactly the 10 taken events are on the topic.
    assert sum(end_offsets(topic, 2).values()) == 10


def test_serve_with_the_embedded_processor_counts_through_the_broker(tmp_path: Path) -> None:
    """`processor.embedded = true` on Kafka: one process produces and consumes (one-box)."""
    require_broker()
    appliance = Appliance.create(
        data_dir=str(tmp_path / "data"),
        transport="kafka",
        processor={"embedded": True},
        kafka={
            "bootstrap_servers": BOOTSTRAP,
            "topic": unique("embedded"),
            "group_id": unique("g"),
        },
    )
    with make_client(create_app(appliance), base_url="http://testserver") as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        for i in range(5):
            assert client.post("/api/events", json=[event(f"/{i}")] * 4).status_code == 202

        def counted() -> int:
            kpis = client.get("/api/analytics/kpis?domain=example.com&period=today")
            return kpis.json()["pageviews"]

        deadline = time.monotonic() + 15
        while counted() < 20:
            assert time.monotonic() < deadline, counted()
            time.sleep(0.02)
    assert appliance.processor.stats.events == 20
    assert appliance.transport.consumer is None  # closed at the stop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_broker_answers_within_the_publish_timeout_and_counts_nothing() -> None:
    """No broker at all (a closed port): a request learns within publish_timeout_s that its
    events were not taken (ingest answers 503), and librdkafka has given them up by then."""
    settings = kafka_settings(
        bootstrap_servers=f"127.0.0.1:{free_port()}", publish_timeout_s=1, shutdown_flush_s=0
    )

    async def scenario() -> tuple[str | None, float]:
        transport = KafkaTransport(settings)
        await transport.start()
        started = time.monotonic()
        acknowledgement = transport.publish(make_events(0, 10))
        problem = await asyncio.wait_for(acknowledgement, 10)
        elapsed = time.monotonic() - started
        assert transport.producer.stats.failed == 10  # given up, so never delivered later
        await transport.stop()
        await transport.close()
        return problem, elapsed

    problem, elapsed = asyncio.run(scenario())
    assert problem and "timed out" in problem.lower()
    assert elapsed < 3
