"""Classify a user agent into the dashboard's browser, OS and device-type names."""

from __future__ import annotations

import functools
from typing import NamedTuple

import ua_parser

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event

# ua-parser names variants separately; a dashboard wants "Chrome", not five Chromes.
BROWSER_NAMES = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chromium": "Chrome",
    "Chrome Mobile WebView": "Chrome WebView",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari WebView",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Samsung Internet": "Samsung Internet",
}
OS_NAMES = {"Mac OS X": "macOS", "Ubuntu": "Linux", "Fedora": "Linux", "Debian": "Linux"}
MOBILE_OS = {"iOS", "Android", "Windows Phone", "KaiOS", "BlackBerry OS"}
UNKNOWN = "Unknown"


class Classification(NamedTuple):
    browser: str
    os: str
    device: str  # "Desktop", "Mobile", "Tablet" or "Unknown"


def classify(user_agent: str) -> Classification:
    result = ua_parser.parse(user_agent)
    family = result.user_agent.family if result.user_agent else UNKNOWN
    os_family = result.os.family if result.os else UNKNOWN
    device = result.device
    browser = BROWSER_NAMES.get(family, family)
    os_name = OS_NAMES.get(os_family, os_family)
    return Classification(browser, os_name, _device_type(user_agent, os_name, device))


def _device_type(user_agent: str, os_name: str, device: ua_parser.Device | None) -> str:
    model = f"{device.family} {device.brand or ''}" if device else ""
    if "Tablet" in model or "iPad" in model or "Tablet" in user_agent or "Kindle" in user_agent:
        return "Tablet"
    if os_name == "Android":
        # Android phones say "Mobile"; Android tablets don't.
        return "Mobile" if "Mobile" in user_agent else "Tablet"
    if os_name in MOBILE_OS or "Mobile" in user_agent:
        return "Mobile"
    if os_name in ("Windows", "macOS", "Linux", "Chrome OS", "FreeBSD", "OpenBSD"):
        return "Desktop"
    return UNKNOWN


class UserAgentEnricher:
    name = "user_agent"
    order = 100

    def __init__(self, cache_size: int) -> None:
        self.classify = functools.lru_cache(maxsize=cache_size)(classify)

    def enrich(self, event: Event, context: EnrichContext) -> Event:
        event.browser, event.os, event.device = self.classify(context.user_agent)
        return event
