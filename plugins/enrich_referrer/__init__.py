"""Referrer -> source and medium; same-site referrers ignored; referrer spam dropped.

The source list (``data/sources.json``) and the spam list (``data/spam.txt``) ship with the
plugin: no maintained, packaged list exists on PyPI (referer-parser's data dates from 2016).
Settings: ``enrich.referrer_spam_extra`` (list of extra spam domains, default empty).
Without a referrer, ``utm_source`` (if any) is the source, else "Direct / None".
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from appliance.core.settings import is_list, require
from plugins.enrich_referrer.sources import ReferrerEnricher, SourceTable


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {"enrich": {"referrer_spam_extra": []}}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    if not settings.get("enrich.referrer_spam_extra"):
        return []
    problem = require(settings, "enrich.referrer_spam_extra", is_list)
    return [problem] if problem else []


@hookimpl
def register_enrichers(appliance: Any) -> list[ReferrerEnricher]:
    extra_spam = appliance.settings.enrich.referrer_spam_extra or []
    return [ReferrerEnricher(SourceTable.load(extra_spam))]
