"""Is this user agent a machine? CrawlerDetect plus what it leaves to us."""

from __future__ import annotations

import functools
import re

from crawlerdetect import CrawlerDetect

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event

# Automation that CrawlerDetect treats as a browser, and generic HTTP clients.
_EXTRA = re.compile(
    r"HeadlessChrome|PhantomJS|Electron/.*Headless|Lighthouse|Chrome-Lighthouse|"
    r"puppeteer|playwright|Cypress|python-requests|python-httpx|aiohttp|Go-http-client|"
    r"curl/|Wget/|okhttp|axios/|node-fetch|UptimeRobot|Pingdom|StatusCake|Datadog",
    re.IGNORECASE,
)


class BotFilter:
    name = "bots"
    order = 10  # first: a dropped event costs no further enrichment

    def __init__(self, cache_size: int) -> None:
        detector = CrawlerDetect()

        @functools.lru_cache(maxsize=cache_size)
        def is_bot(user_agent: str) -> bool:
            if len(user_agent.strip()) < 8:
                return True
            return bool(_EXTRA.search(user_agent)) or detector.isCrawler(user_agent)

        self.is_bot = is_bot

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        return None if self.is_bot(context.user_agent) else event
