"""Is this user agent a machine? CrawlerDetect's maintained patterns, matched with RE2.

CrawlerDetect itself matches its ~1,500 patterns as one Python regex: about 160 us per new
user agent. The same patterns compiled with RE2 (google-re2) take about 35 us, which keeps
the mean enrichment cost under budget when 10 % of user agents are new. The few patterns
RE2 cannot express (look-arounds) stay with Python's `re`; a test checks that this detector
and CrawlerDetect agree.
"""

from __future__ import annotations

import functools
import re

import re2
from crawlerdetect.providers.crawlers import data as crawler_patterns
from crawlerdetect.providers.exclusions import data as exclusion_patterns

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event

# Automation that CrawlerDetect treats as a browser, and generic HTTP clients.
_EXTRA = re.compile(
    r"HeadlessChrome|PhantomJS|Electron/.*Headless|Lighthouse|Chrome-Lighthouse|"
    r"puppeteer|playwright|Cypress|python-requests|python-httpx|aiohttp|Go-http-client|"
    r"curl/|Wget/|okhttp|axios/|node-fetch|UptimeRobot|Pingdom|StatusCake|Datadog",
    re.IGNORECASE,
)


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = 256 << 20  # the crawler alternation needs more than the 8 MiB default
    options.log_errors = False
    return options


class CrawlerPatterns:
    """CrawlerDetect's algorithm: strip the exclusions, then search the crawler patterns."""

    def __init__(self) -> None:
        options = _re2_options()
        simple = [p for p in crawler_patterns if "(?" not in p]
        special = [p for p in crawler_patterns if "(?" in p]
        self._crawlers = re2.compile("(?:" + "|".join(simple) + ")", options)
        self._special = re.compile("|".join(special), re.IGNORECASE) if special else None
        self._exclusions = re2.compile("(?:" + "|".join(exclusion_patterns) + ")", options)

    def is_crawler(self, user_agent: str) -> bool:
        agent = self._exclusions.sub("", user_agent.strip())
        if not agent:
            return False
        if self._crawlers.search(agent) is not None:
            return True
        return self._special is not None and self._special.search(agent) is not None


class BotFilter:
    name = "bots"
    order = 10  # first: a dropped event costs no further enrichment

    def __init__(self, cache_size: int) -> None:
        patterns = CrawlerPatterns()

        @functools.lru_cache(maxsize=cache_size)
        def is_bot(user_agent: str) -> bool:
            if len(user_agent.strip()) < 8:
                return True
            return bool(_EXTRA.search(user_agent)) or patterns.is_crawler(user_agent)

        self.is_bot = is_bot

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        return None if self.is_bot(context.user_agent) else event
