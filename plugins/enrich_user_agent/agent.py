"""Classify a user agent into the dashboard's browser, OS and device-type names.

Only ua-parser's browser and OS patterns are compiled, with RE2 (google-re2, which the bot
filter uses too): 5 MiB of `serve`'s memory. Its default parser (the Rust `regex` engine,
all three pattern sets) took 27 MiB, on the first event. The 633 device patterns name
phone and tablet models; the device type needs only the words a tablet's user agent
carries (iPad, Tablet, Kindle, an Android without "Mobile"). Uncached, a parse takes about
20 us instead of 11; the enricher's cache answers nearly every event.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ua_parser import Domain, Parser, load_lazy_builtins
from ua_parser.re2 import Resolver

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
# Words that mark a tablet's user agent (Android tablets are told apart by "Mobile" below;
# Windows touch PCs saying "Tablet PC" count as tablets too, as they did with ua-parser's
# device patterns).
TABLET_WORDS = ("iPad", "Tablet", "Kindle")
UNKNOWN = "Unknown"


class Classification(NamedTuple):
    browser: str
    os: str
    device: str  # "Desktop", "Mobile", "Tablet" or "Unknown"


@functools.cache
def parser() -> Parser:
    """Built once per process (0.1 s): the enricher builds it at start, not on an event."""
    user_agents, operating_systems, _devices = load_lazy_builtins()  # only these compiled
    return Parser(Resolver((user_agents, operating_systems, [])))


def classify(user_agent: str) -> Classification:
    result = parser()(user_agent, Domain.USER_AGENT | Domain.OS)
    family = result.user_agent.family if result.user_agent else UNKNOWN
    os_family = result.os.family if result.os else UNKNOWN
    browser = BROWSER_NAMES.get(family, family)
    os_name = OS_NAMES.get(os_family, os_family)
    return Classification(browser, os_name, _device_type(user_agent, os_name))


def _device_type(user_agent: str, os_name: str) -> str:
    if any(word in user_agent for word in TABLET_WORDS):
        return "Tablet"
    if "Macintosh" in user_agent and "Mobile/" in user_agent:
        return "Tablet"  # an iPad asking for desktop sites: no Mac says Mobile/
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
        parser()
        self.classify = functools.lru_cache(maxsize=cache_size)(classify)

    def enrich(self, event: Event, context: EnrichContext) -> Event:
        event.browser, event.os, event.device = self.classify(context.user_agent)
        return event
