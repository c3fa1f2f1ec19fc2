"""The enricher contract: CPU-only steps run on every accepted event, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.core.event import Event, IncomingEvent


@dataclass(slots=True)
class EnrichContext:
    """What an enricher may read about the request. The IP lives only here, never in an Event."""

    incoming: IncomingEvent
    client_ip: str
    user_agent: str
    site_domain: str  # the registered domain, normalized ("example.com")


class Enricher(Protocol):
    name: str
    order: int  # lower runs first; the visitor id runs late (900) so it sees the final event

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        """Return the (possibly modified) event, or None to drop it (it then counts as filtered)."""
        ...
