"""What /metrics shows: one Prometheus registry per appliance, read mostly at scrape time.

The ingest path pays for one histogram observation per request (and a counter bump for a
refused one) in the request middleware (appliance/web/metrics.py); everything else is read
from counters the core keeps anyway (ingest, processor, real-time feed) or from plugins'
collectors (`register_metrics`) when Prometheus scrapes. Label values are few and fixed:
route templates, never paths; refusal reasons, never messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance import __version__
from appliance.core.plugins import flatten

CONTENT_TYPE = CONTENT_TYPE_LATEST

# The status /api/events answers when it refuses a request, and what that means.
REJECTION_REASONS = {
    400: "invalid",
    404: "unknown_domain",
    413: "too_large",
    415: "unsupported_type",
    429: "rate_limited",
    503: "unavailable",
}

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Built once per running appliance: by `create_app`, or by `appliance process`."""

    def __init__(self, appliance: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_seconds = Histogram(
            "appliance_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "appliance_events_rejected",
            "Requests to /api/events refused, by reason (their events are all refused)",
            ["reason"],
            registry=self.registry,
        )
        for reason in REJECTION_REASONS.values():
            self.events_rejected.labels(reason)  # present at 0 before the first refusal
        self.flush_seconds = Histogram(
            "appliance_processor_flush_duration_seconds",
            "Time to write one delivery to every store and commit it",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        appliance.processor.flush_observers.append(self.flush_seconds.observe)
        self.registry.register(CoreCollector(appliance))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        for collector in flatten(appliance.manager.hook.register_metrics(appliance=appliance)):
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (may block briefly: plugins ask brokers)."""
        return generate_latest(self.registry)


class CoreCollector:
    """Ingest, transport and processor counts, read when Prometheus scrapes."""

    def __init__(self, appliance: Any) -> None:
        self.appliance = appliance

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        appliance = self.appliance
        ingest, processor = appliance.ingest.stats, appliance.processor.stats
        info = GaugeMetricFamily(
            "appliance_info", "The running version and transport", labels=["version", "transport"]
        )
        info.add_metric([__version__, appliance.transport.name], 1)
        yield info
        yield counter("events_accepted", "Events taken by the transport (answered 202)",
                      ingest.accepted)  # fmt: skip
        yield counter("events_filtered", "Events dropped by an enricher (bots, spam)",
                      ingest.filtered)  # fmt: skip
        yield GaugeMetricFamily(
            "appliance_transport_pending_events",
            "Events published but not yet committed by a processor (the queue's depth)",
            value=appliance.transport.pending(),
        )
        yield counter("processor_flushes", "Deliveries written to every store", processor.flushes)
        yield counter("processor_events", "Events written by this process", processor.events)
        yield counter("processor_flush_errors", "Failed flush attempts (retried)",
                      processor.store_errors)  # fmt: skip
        yield counter("processor_consume_errors", "Failed reads from the transport (retried)",
                      processor.consume_errors)  # fmt: skip
        errors = CounterMetricFamily(
            "appliance_store_write_errors", "Failed writes, by store", labels=["store"]
        )
        for store in appliance.stores:
            if getattr(store, "role", "") != "realtime":
                errors.add_metric([store.name], processor.store_write_errors.get(store.name, 0))
        yield errors
        feed = appliance.processor.realtime.stats
        yield counter("realtime_write_errors", "Failed writes to a real-time store (caught up"
                      " later)", feed.errors)  # fmt: skip
        yield GaugeMetricFamily(
            "appliance_realtime_backlog_events",
            "Events kept for a real-time store that is away",
            value=feed.backlog_events,
        )


def counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"appliance_{name}", help_text, value=value)
