"""Cookie-less visitor id: hash(daily rotating secret salt, site, IP, user agent).

No settings. Salts live in the account store and are deleted after a day, after which
nobody - the operator included - can link an id back to an IP or to the next day's id.
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from plugins.enrich_visitor_id.visitor import SaltRing, VisitorIdEnricher


@hookimpl
def register_enrichers(appliance: Any) -> list[VisitorIdEnricher]:
    return [VisitorIdEnricher(SaltRing(appliance.accounts))]


def _salt_rings(appliance: Any) -> list[SaltRing]:
    return [e.salts for e in appliance.enrichers if isinstance(e, VisitorIdEnricher)]


@hookimpl
async def startup(appliance: Any) -> None:
    for ring in _salt_rings(appliance):
        await ring.load()
        appliance.background(ring.refresh_forever(), name="visitor-salts")
