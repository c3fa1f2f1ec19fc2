"""Read campaign tags from the page URL's query string."""

from __future__ import annotations

import functools
from urllib.parse import parse_qsl, urlsplit

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event

MAX_LENGTH = 200
FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
SOURCE_ALIASES = ("ref", "source")


@functools.lru_cache(maxsize=4096)  # the same landing URLs come again and again
def campaign_tags(url: str) -> dict[str, str]:
    """The tags of a URL (shared between calls: treat the result as read-only)."""
    if "utm_" not in url and "ref=" not in url and "source=" not in url:
        return {}  # the common case: nothing to parse
    query = urlsplit(url).query
    params = {}
    for key, value in parse_qsl(query):
        key = key.lower()
        if value and key not in params:
            # %00 decodes to NUL, which no store can keep (Postgres refuses it in text)
            params[key] = value.replace("\x00", "").strip()[:MAX_LENGTH]
    tags = {field: params[field] for field in FIELDS if params.get(field)}
    if "utm_source" not in tags:
        alias = next((params[a] for a in SOURCE_ALIASES if params.get(a)), None)
        if alias:
            tags["utm_source"] = alias
    return tags


class UtmEnricher:
    name = "utm"
    order = 250  # before the referrer enricher, which falls back to utm_source

    def enrich(self, event: Event, context: EnrichContext) -> Event:
        for field, value in campaign_tags(event.url).items():
            setattr(event, field, value)
        return event
