"""Visits, entry/exit pages, breakdowns and filters: store level and through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.core.aggregation import aggregate
from appliance.core.event import Event
from appliance.core.filters import Filter, FilterError, parse_filters
from appliance.core.transport import Position
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from tests.conftest import Browser, event, wait_for

T0 = 1_790_000_040
START, END = T0 - 3600, T0 + 4 * 3600


def ev(n: int, minutes: float, path: str, session: str, visitor: str, **fields: Any) -> Event:
    return Event(
        event_id=f"e{n}", ts=T0 + minutes * 60, site_id=1, name=fields.pop("name", "pageview"),
        path=path, session_id=session, visitor_id=visitor, **fields,
    )  # fmt: skip


def scenario_events() -> list[Event]:
    """Three visits of two visitors (the Postgres store's tests replay them too)."""
    google = {
        "referrer_source": "Google",
        "browser": "Firefox",
        "country": "DE",
        "screen_width": 1920,
    }
    return [
        # Visit 1 (s1): Google, Firefox, DE: / -> /pricing -> Signup, 10 minutes long.
        ev(0, 0, "/", "s1", "v1", **google),
        ev(1, 5, "/pricing", "s1", "v1", referrer_source="Direct / None", browser="Firefox"),
        ev(2, 10, "/pricing", "s1", "v1", name="Signup", props={"plan": "pro"}),
        # Same tab after 45 idle minutes: a new visit (s1, 2nd), direct, one page: a bounce.
        ev(
            3,
            55,
            "/docs",
            "s1",
            "v1",
            referrer_source="Direct / None",
            browser="Firefox",
            country="DE",
        ),
        # Visit 3 (s2): another visitor from Bing on Safari, US, a phone.
        ev(
            4,
            20,
            "/blog",
            "s2",
            "v2",
            referrer_source="Bing",
            browser="Safari",
            country="US",
            screen_width=390,
        ),
        ev(5, 21, "/", "s2", "v2", browser="Safari"),
    ]


@pytest.fixture
def store(tmp_path: Path) -> SqliteAnalyticsStore:
    opened = SqliteAnalyticsStore(tmp_path / "analytics.db")
    opened.open()
    events = scenario_events()
    opened.write_batch(aggregate(events, [Position("t", "0", 0, len(events) - 1)]))
    yield opened
    opened.close()


def rows(result: list[Any]) -> list[tuple[str, int, int]]:
    return [(row.value, row.visitors, row.pageviews) for row in result]


def test_visits_split_after_thirty_idle_minutes(store: SqliteAnalyticsStore) -> None:
    kpis = store.kpis(1, START, END, ())
    assert (kpis.pageviews, kpis.events, kpis.visitors, kpis.sessions) == (5, 1, 2, 3)
    assert kpis.bounce_rate == round(1 / 3, 4)  # only the /docs visit saw one page
    assert kpis.avg_duration_s == round((600 + 0 + 60) / 3, 1)


def test_entry_exit_and_visit_level_breakdowns(store: SqliteAnalyticsStore) -> None:
    assert rows(store.breakdown(1, START, END, "entry_page", 10, ())) == [
        ("/", 1, 2),
        ("/blog", 1, 2),
        ("/docs", 1, 1),
    ]
    assert rows(store.breakdown(1, START, END, "exit_page", 10, ())) == [
        ("/", 1, 2),
        ("/pricing", 1, 2),
        ("/docs", 1, 1),
    ]
    # The source is the visit's first event's, so /pricing's "Direct" doesn't count.
    assert rows(store.breakdown(1, START, END, "source", 10, ())) == [
        ("Bing", 1, 2), ("Google", 1, 2), ("Direct / None", 1, 1)
    ]  # fmt: skip
    assert rows(store.breakdown(1, START, END, "country", 10, ())) == [("DE", 1, 3), ("US", 1, 2)]
    assert rows(store.breakdown(1, START, END, "screen", 10, ())) == [
        ("Desktop", 1, 2),
        ("Mobile", 1, 2),
        ("Unknown", 1, 1),
    ]
    assert (
        rows(store.breakdown(1, START, END, "utm_campaign", 10, ())) == []
    )  # untagged rows omitted


def test_page_and_event_breakdowns(store: SqliteAnalyticsStore) -> None:
    assert rows(store.breakdown(1, START, END, "page", 10, ())) == [
        ("/", 2, 2), ("/blog", 1, 1), ("/docs", 1, 1), ("/pricing", 1, 1)
    ]  # fmt: skip
    [signup] = store.breakdown(1, START, END, "event", 10, ())
    assert (signup.value, signup.visitors, signup.events) == ("Signup", 1, 1)
    assert len(store.breakdown(1, START, END, "page", 2, ())) == 2


def test_filters_select_visits(store: SqliteAnalyticsStore) -> None:
    firefox = (Filter("browser", "==", "Firefox"),)
    assert store.kpis(1, START, END, firefox).sessions == 2
    assert store.kpis(1, START, END, firefox).pageviews == 3
    not_de = (Filter("country", "!=", "DE"),)
    assert rows(store.breakdown(1, START, END, "browser", 10, not_de)) == [("Safari", 1, 2)]
    signed_up = (Filter("event", "==", "Signup"),)
    assert [p.path for p in store.top_pages(1, START, END, 10, signed_up)] == ["/", "/pricing"]
    saw_blog = (Filter("page", "==", "/blog"),)
    assert store.kpis(1, START, END, saw_blog).visitors == 1
    points = store.timeseries(1, list(range(START, END, 3600)), END, firefox)
    assert sum(p.pageviews for p in points) == 3
    both = (Filter("browser", "==", "Firefox"), Filter("entry_page", "==", "/docs"))
    assert store.kpis(1, START, END, both).sessions == 1


def test_filter_parsing() -> None:
    assert parse_filters("browser==Firefox;country!=DE") == (
        Filter("browser", "==", "Firefox"), Filter("country", "!=", "DE")
    )  # fmt: skip
    assert parse_filters("page==/a==b") == (Filter("page", "==", "/a==b"),)
    for bad in ("browser=Firefox", "colour==red", ";".join(["os==x"] * 11)):
        with pytest.raises(FilterError, match="filters"):
            parse_filters(bad)


def test_breakdown_api(admin: Browser) -> None:
    client = admin.client
    safari = {
        "user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
    }
    client.post(
        "/api/events",
        json=[event("/a", referrer="https://duckduckgo.com/"), event("/b")],
        headers=safari,
    )
    client.post(
        "/api/events", json=event("/a", sessionId="other", name="Download", props={"file": "x.pdf"})
    )
    appliance = client.app.state.appliance
    wait_for(lambda: appliance.processor.stats.events == 3)

    def get(**params: str) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return client.get(f"/api/analytics/breakdown?domain=example.com&period=today&{query}")

    browsers = get(property="browser").json()
    assert browsers["property"] == "browser"
    assert [(r["value"], r["visitors"], r["pageviews"]) for r in browsers["results"]] == [
        ("Safari", 1, 2),
        ("Chrome", 1, 0),
    ]
    sources = get(property="source", filters="browser==Safari").json()["results"]
    assert [r["value"] for r in sources] == ["DuckDuckGo"]
    events = get(property="event").json()["results"]
    assert [(r["value"], r["events"]) for r in events] == [("Download", 1)]
    kpis = client.get(
        "/api/analytics/kpis?domain=example.com&period=today&filters=browser==Safari"
    ).json()
    assert kpis["pageviews"] == 2 and kpis["visitors"] == 1
    assert get(property="colour").status_code == 400
    assert get(property="browser", filters="browser~Safari").json()["error"].startswith("filters")
    assert get(property="browser", limit="0").status_code == 400
