"""The country enricher."""

from __future__ import annotations

import iptocc

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event


def country_of(ip: str) -> str:
    """ISO 3166 alpha-2 code, or "" for private, reserved or malformed addresses."""
    return iptocc.country_code(ip) or ""


class CountryEnricher:
    name = "country"
    order = 200

    def enrich(self, event: Event, context: EnrichContext) -> Event:
        event.country = country_of(context.client_ip)
        return event
