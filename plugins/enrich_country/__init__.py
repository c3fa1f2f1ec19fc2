"""Client IP -> ISO country code, offline, with iptocc's bundled registry data.

No settings. The IP is read from the request context only; it is never copied into the
event. Private, loopback and unallocated addresses give an empty country ("unknown").
iptocc's data carries no regions, so ``region`` stays empty. Block ``enrich_country`` to
skip the look-up.
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from plugins.enrich_country.country import CountryEnricher


@hookimpl
def register_enrichers(appliance: Any) -> list[CountryEnricher]:
    return [CountryEnricher()]
