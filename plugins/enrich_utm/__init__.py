"""UTM parameters (source, medium, campaign, term, content) from the page URL.

No settings. ``ref`` and ``source`` query parameters count as ``utm_source`` when no
``utm_source`` is given (a common convention for links shared without full UTM tags).
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from plugins.enrich_utm.campaign import UtmEnricher


@hookimpl
def register_enrichers(appliance: Any) -> list[UtmEnricher]:
    return [UtmEnricher()]
