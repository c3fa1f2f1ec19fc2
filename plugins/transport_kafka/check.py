"""`appliance doctor` and `/readyz` for Kafka: a metadata request with the configured
address, protocol and credentials.

One admin client is kept per check and reused by later runs (`/readyz` asks often; a new
librdkafka client each time would cost threads and a fresh TLS/SASL handshake).
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from appliance.core.checks import Check, CheckFailed
from plugins.transport_kafka.config import KafkaSettings


class BrokerCheck:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._admin: AdminClient | None = None
        self._errors: list[str] = []
        self._lock = threading.Lock()  # one metadata request at a time per client

    def run(self, timeout_s: float) -> str:
        with self._lock:
            admin = self._client()
            admin.poll(0)
            self._errors.clear()
            try:
                metadata = admin.list_topics(timeout=timeout_s)
            except KafkaException as error:
                admin.poll(0)  # serves error_cb: the connection's own reason
                reason = self._reason() or error.args[0].str()
                raise CheckFailed(
                    f"no broker answered at {self.settings.bootstrap_servers} within"
                    f" {timeout_s:g} s ({reason})",
                    fix_for(reason),
                ) from None
        topic = metadata.topics.get(self.settings.topic)
        if topic is None or topic.error is not None:
            topic_text = f"topic {self.settings.topic} not created yet (serve creates it)"
        else:
            topic_text = f"topic {self.settings.topic} has {len(topic.partitions)} partitions"
        return (
            f"{len(metadata.brokers)} broker(s) answered at {self.settings.bootstrap_servers}"
            f" ({self.settings.security['security.protocol']}); {topic_text}"
        )

    def _client(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.settings.client_config() | {"error_cb": self._on_error})
        return self._admin

    def _on_error(self, error: KafkaError) -> None:
        self._errors.append(error.str())

    def _reason(self) -> str:
        """The most telling error: a connection's, not librdkafka's 'all brokers are down'."""
        telling = [text for text in self._errors if "brokers are down" not in text]
        return (telling or self._errors or [""])[-1]


def fix_for(reason: str) -> str:
    lowered = reason.lower()
    if "sasl" in lowered or "authenticat" in lowered:
        return "check KAFKA.SASL_USERNAME, KAFKA.SASL_PASSWORD and KAFKA.SASL_MECHANISM"
    if "ssl" in lowered or "certificate" in lowered or "handshake" in lowered:
        return "check KAFKA.SECURITY_PROTOCOL and KAFKA.SSL_CA_LOCATION"
    return (
        "start the broker, or correct KAFKA.BOOTSTRAP_SERVERS (production: the broker's"
        " external listener, e.g. :9003) and let this host reach that port"
    )


def broker_check(settings: KafkaSettings) -> Check:
    return Check("kafka", BrokerCheck(settings).run)
