"""User agent -> browser, OS and device type, with ua-parser's patterns compiled by RE2.

Settings: ``enrich.user_agent_cache`` (default 10000) - distinct user agents remembered;
real traffic repeats a few hundred of them, so nearly every event is a cache hit.
Block the plugin (``plugins.blocked = ["enrich_user_agent"]``) to leave the fields empty.
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from appliance.core.settings import is_int, require
from plugins.enrich_user_agent.agent import UserAgentEnricher


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {"enrich": {"user_agent_cache": 10_000}}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    problem = require(settings, "enrich.user_agent_cache", is_int(16, 10_000_000))
    return [problem] if problem else []


@hookimpl
def register_enrichers(appliance: Any) -> list[UserAgentEnricher]:
    return [UserAgentEnricher(cache_size=appliance.settings.enrich.user_agent_cache)]
