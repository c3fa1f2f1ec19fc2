"""Kafka transport: ingest produces to a topic; `appliance process` consumes it as a group.

Settings: ``transport = "kafka"`` and the ``kafka`` section (config.py lists every key;
the README's "Kafka profile" shows a run). Needs confluent-kafka (the ``kafka`` extra);
it is imported only when this transport is selected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import hookimpl
from plugins.transport_kafka.config import DEFAULTS, NAME, KafkaSettings, problems

if TYPE_CHECKING:
    from appliance.core.checks import Check
    from plugins.transport_kafka.metrics import KafkaCollector
    from plugins.transport_kafka.transport import KafkaTransport


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {"kafka": dict(DEFAULTS)}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    return problems(settings)


@hookimpl
def register_transport(appliance: Any) -> KafkaTransport | None:
    settings = appliance.settings
    if settings.transport != NAME:
        return None
    from plugins.transport_kafka.transport import KafkaTransport

    return KafkaTransport(KafkaSettings.from_settings(settings))


@hookimpl
def register_checks(appliance: Any) -> list[Check]:
    if appliance.settings.transport != NAME:
        return []
    from plugins.transport_kafka.check import broker_check

    return [broker_check(KafkaSettings.from_settings(appliance.settings))]


@hookimpl
def register_metrics(appliance: Any) -> list[KafkaCollector]:
    if appliance.settings.transport != NAME:
        return []
    from plugins.transport_kafka.metrics import KafkaCollector

    return [KafkaCollector(appliance.transport)]
