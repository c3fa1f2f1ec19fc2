"""The built-in enrichers: user agents, bots, countries, referrer sources and UTM tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event, IncomingEvent
from appliance.core.runtime import Appliance
from plugins.enrich_bots.detector import BotFilter
from plugins.enrich_country.country import country_of
from plugins.enrich_referrer.sources import DIRECT, ReferrerEnricher, SourceTable
from plugins.enrich_user_agent.agent import classify
from plugins.enrich_utm.campaign import campaign_tags
from tests.conftest import BROWSER_UA, Browser, event, make_client, wait_for

FIXTURE = Path(__file__).parent / "fixtures" / "user_agents.jsonl"
AGENTS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def test_user_agent_fixture_accuracy() -> None:
    browsers = [row for row in AGENTS if not row["bot"]]
    assert len(AGENTS) >= 200 and len(browsers) >= 150
    bots = BotFilter(cache_size=1024)
    dropped = [row["ua"] for row in browsers if bots.is_bot(row["ua"])]
    assert dropped == [], "real browsers must never be dropped as bots"
    right = [
        row
        for row in browsers
        if tuple(classify(row["ua"])) == (row["browser"], row["os"], row["device"])
    ]
    accuracy = len(right) / len(browsers)
    print(f"browser/OS/device accuracy: {accuracy:.1%} of {len(browsers)}")
    assert accuracy >= 0.98
    missed = [row["ua"] for row in AGENTS if row["bot"] and not bots.is_bot(row["ua"])]
    print(f"bots caught: {1 - len(missed) / (len(AGENTS) - len(browsers)):.1%}")
    assert missed == []


def test_device_type_of_every_fixture_agent() -> None:
    """Device types come from our own rules on the user agent's words (ua-parser's device
    patterns are not loaded): tablets (iPad, desktop-mode iPad, Kindle, Android without
    "Mobile", Firefox's "Tablet;") must all be told apart from phones and desktops."""
    browsers = [row for row in AGENTS if not row["bot"]]
    assert {row["device"] for row in browsers} >= {"Desktop", "Mobile", "Tablet"}
    wrong = [
        (row["ua"], found)
        for row in browsers
        if (found := classify(row["ua"]).device) != row["device"]
    ]
    assert wrong == []


def test_bot_patterns_agree_with_crawlerdetect() -> None:
    from crawlerdetect import CrawlerDetect

    from plugins.enrich_bots.detector import CrawlerPatterns

    reference, ours = CrawlerDetect(), CrawlerPatterns()
    samples = [row["ua"] for row in AGENTS] + [
        "YandexSearch/1.0", "Mozilla/5.0 (compatible; YandexBot/3.0)", "Yandex", "  ",
    ]  # fmt: skip
    for user_agent in samples:
        assert ours.is_crawler(user_agent) == reference.isCrawler(user_agent), user_agent


def context(
    ip: str = "203.0.113.9", ua: str = BROWSER_UA, domain: str = "example.com"
) -> EnrichContext:
    return EnrichContext(IncomingEvent(domain=domain, path="/"), ip, ua, domain)


def blank_event(**fields: Any) -> Event:
    return Event(event_id="e", ts=0.0, site_id=1, name="pageview", path="/", **fields)


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("8.8.8.8", "US"),
        ("2001:4860:4860::8888", "US"),
        ("81.2.69.142", "GB"),
        ("193.0.14.129", "NL"),
        ("1.1.1.1", "AU"),
        ("10.1.2.3", ""),
        ("192.168.0.1", ""),
        ("172.16.5.4", ""),
        ("127.0.0.1", ""),
        ("::1", ""),
        ("fe80::1", ""),
        ("not-an-ip", ""),
        ("", ""),
    ],
)
def test_country_lookup(ip: str, country: str) -> None:
    assert country_of(ip) == country


@pytest.fixture(scope="module")
def referrers() -> ReferrerEnricher:
    return ReferrerEnricher(SourceTable.load(extra_spam=["spam-extra.example"]))


@pytest.mark.parametrize(
    ("referrer", "source", "medium"),
    [
        ("https://www.google.com/", "Google", "search"),
        ("https://www.google.co.uk/search?q=x", "Google", "search"),
        ("https://www.google.de/", "Google", "search"),
        ("https://news.google.com/articles/x", "Google News", "referral"),
        ("https://www.bing.com/search?q=x", "Bing", "search"),
        ("https://duckduckgo.com/", "DuckDuckGo", "search"),
        ("https://search.yahoo.co.jp/search?p=x", "Yahoo", "search"),
        ("https://t.co/abc", "X (Twitter)", "social"),
        ("https://l.facebook.com/l.php?u=x", "Facebook", "social"),
        ("https://m.facebook.com/", "Facebook", "social"),
        ("https://old.reddit.com/r/python", "Reddit", "social"),
        ("https://news.ycombinator.com/item?id=1", "Hacker News", "social"),
        ("https://chatgpt.com/", "ChatGPT", "ai"),
        ("https://en.wikipedia.org/wiki/Web_analytics", "Wikipedia", "referral"),
        ("https://blog.somebody.net/post", "blog.somebody.net", "referral"),
        ("", DIRECT, "(none)"),
        ("not a url", DIRECT, "(none)"),
    ],
)
def test_referrer_sources(
    referrers: ReferrerEnricher, referrer: str, source: str, medium: str
) -> None:
    enriched = referrers.enrich(blank_event(referrer=referrer), context())
    assert enriched is not None
    assert (enriched.referrer_source, enriched.referrer_medium) == (source, medium)


def test_same_site_referrers_are_not_sources(referrers: ReferrerEnricher) -> None:
    for referrer in (
        "https://example.com/pricing",
        "https://www.example.com/",
        "https://docs.example.com/a",
    ):
        enriched = referrers.enrich(
            blank_event(referrer=referrer, url="https://example.com/"), context()
        )
        assert (enriched.referrer, enriched.referrer_source) == ("", DIRECT), referrer
    # The page's own host counts as the same site too (e.g. a staging host).
    staged = blank_event(referrer="https://staging.internal/a", url="https://staging.internal/b")
    assert referrers.enrich(staged, context()).referrer_source == DIRECT


def test_referrer_spam_is_dropped(referrers: ReferrerEnricher) -> None:
    for spam in (
        "https://semalt.com/",
        "http://www.buttons-for-website.com/x",
        "https://sub.darodar.com",
        "https://spam-extra.example/",
    ):
        assert referrers.enrich(blank_event(referrer=spam), context()) is None, spam


def test_utm_tags_and_their_fallback_as_source(referrers: ReferrerEnricher) -> None:
    url = "https://example.com/?utm_source=Newsletter&utm_medium=email&utm_campaign=launch&utm_term=t&utm_content=c&x=1"
    assert campaign_tags(url) == {
        "utm_source": "Newsletter", "utm_medium": "email", "utm_campaign": "launch",
        "utm_term": "t", "utm_content": "c",
    }  # fmt: skip
    assert campaign_tags("https://example.com/?ref=producthunt") == {"utm_source": "producthunt"}
    assert campaign_tags("https://example.com/plain") == {}
    assert campaign_tags("https://example.com/?utm_source=" + "x" * 500)["utm_source"] == "x" * 200
    tagged = blank_event(utm_source="Newsletter", utm_medium="email")
    enriched = referrers.enrich(tagged, context())
    assert (enriched.referrer_source, enriched.referrer_medium) == ("Newsletter", "email")


def test_pipeline_stores_enriched_fields_and_filters_bots(admin: Browser, tmp_path: Path) -> None:
    client = admin.client
    app_state = client.app.state
    app_state.trusted_proxies = frozenset(["testclient"])
    iphone = next(row["ua"] for row in AGENTS if row["os"] == "iOS" and row["device"] == "Mobile")
    headers = {"user-agent": iphone, "x-forwarded-for": "81.2.69.142"}
    page = event(
        "/landing",
        url="https://example.com/landing?utm_campaign=spring",
        referrer="https://www.google.de/",
    )
    assert client.post("/api/events", json=page, headers=headers).json() == {
        "accepted": 1,
        "filtered": 0,
    }
    bot = client.post(
        "/api/events",
        json=event("/"),
        headers={"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"},
    )
    assert bot.status_code == 202 and bot.json() == {"accepted": 0, "filtered": 1}
    spam = client.post("/api/events", json=event("/", referrer="https://semalt.com/"))
    assert spam.json() == {"accepted": 0, "filtered": 1}
    appliance = app_state.appliance
    wait_for(lambda: appliance.processor.stats.events == 1)
    with appliance.stores[0].reader.locked() as conn:
        row = dict(conn.execute("SELECT * FROM events").fetchone())
    assert (row["browser"], row["os"], row["device"], row["country"]) == (
        "Safari",
        "iOS",
        "Mobile",
        "GB",
    )
    assert (row["referrer_source"], row["referrer_medium"], row["utm_campaign"]) == (
        "Google",
        "search",
        "spring",
    )
    assert "81.2.69.142" not in json.dumps(row)
    assert appliance.ingest.stats.filtered == 2
    assert client.get("/healthz").json()["ingest"]["filtered"] == 2


def test_untrusted_forwarded_for_is_ignored(admin: Browser) -> None:
    client = admin.client
    client.post("/api/events", json=event("/"), headers={"x-forwarded-for": "81.2.69.142"})
    appliance = client.app.state.appliance
    wait_for(lambda: appliance.processor.stats.events == 1)
    with appliance.stores[0].reader.locked() as conn:
        assert conn.execute("SELECT country FROM events").fetchone()[0] == ""


class OwnBotRule:
    """A third-party replacement for the built-in bot filter."""

    name = "bots"
    order = 10

    def enrich(self, event: Event, context: EnrichContext) -> Event | None:
        return None if "Robot" in context.user_agent else event


class ReplacementPlugin:
    from appliance import hookimpl

    @hookimpl
    def register_enrichers(self, appliance: Any) -> list[Any]:
        return [OwnBotRule()]


def test_enrichers_can_be_blocked_and_replaced(tmp_path: Path) -> None:
    blocked = [
        "enrich_bots",
        "enrich_user_agent",
        "enrich_country",
        "enrich_utm",
        "enrich_referrer",
    ]
    bare = Appliance.create(data_dir=str(tmp_path / "a"), plugins={"blocked": blocked})
    assert [e.name for e in bare.enrichers] == ["visitor_id"]
    replaced = Appliance.create(
        extra_plugins=(ReplacementPlugin(),),
        data_dir=str(tmp_path / "b"),
        plugins={"blocked": ["enrich_bots"]},
    )
    assert [e.name for e in replaced.enrichers][:2] == ["bots", "user_agent"]
    assert isinstance(replaced.enrichers[0], OwnBotRule)
    from appliance.app import create_app

    with make_client(create_app(replaced)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        googlebot = {"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
        assert (
            client.post("/api/events", json=event("/"), headers=googlebot).json()["accepted"] == 1
        )
        robot = {"user-agent": BROWSER_UA + " Robot"}
        assert client.post("/api/events", json=event("/"), headers=robot).json()["filtered"] == 1
