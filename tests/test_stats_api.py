"""The stats API: kpis, gap-free time series, top pages and the period parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import Browser, event, wait_for


def send(admin: Browser, *events: dict) -> None:
    response = admin.client.post("/api/events", json=list(events))
    assert response.status_code == 202, response.text


def get(admin: Browser, endpoint: str, **params: str) -> dict:
    query = "&".join(f"{key}={value}" for key, value in {"domain": "example.com", **params}.items())
    response = admin.client.get(f"/api/analytics/{endpoint}?{query}")
    assert response.status_code == 200, response.text
    return response.json()


def test_kpis_sessions_bounce_and_duration(admin: Browser) -> None:
    send(
        admin,
        event("/", sessionId="s1"),
        event("/pricing", sessionId="s1"),
        event("/", sessionId="s2"),
        event("/", sessionId="s3", name="Signup"),
        event("/docs", sessionId="s3"),
    )
    kpis = wait_for(lambda: (k := get(admin, "kpis", period="realtime"))["pageviews"] == 4 and k)
    assert kpis["sessions"] == 3
    assert kpis["events"] == 1
    # s2 and s3 each saw one page: 2 of 3 sessions bounced.
    assert kpis["bounce_rate"] == round(2 / 3, 4)
    assert kpis["avg_duration_s"] >= 0
    assert kpis["visitors"] == 1  # one client, one IP and user agent


def test_timeseries_has_no_gaps(admin: Browser) -> None:
    send(admin, event("/a"), event("/b"))
    wait_for(lambda: get(admin, "kpis", period="realtime")["pageviews"] == 2)
    series = get(admin, "timeseries", period="realtime")
    points = series["points"]
    assert len(points) == 30
    times = [datetime.fromisoformat(p["t"]) for p in points]
    assert all(b - a == timedelta(minutes=1) for a, b in zip(times, times[1:], strict=False))
    assert sum(p["pageviews"] for p in points) == 2
    assert [p for p in points if p["pageviews"]][0]["visitors"] == 1
    hourly = get(admin, "timeseries", period="24h")["points"]
    assert len(hourly) == 24
    assert sum(p["pageviews"] for p in hourly) == 2
    daily = get(admin, "timeseries", period="7d")["points"]
    assert len(daily) == 7 and sum(p["pageviews"] for p in daily) == 2


def test_top_pages_order_and_limit(admin: Browser) -> None:
    send(admin, *[event("/popular")] * 3, *[event("/second")] * 2, event("/third"))
    wait_for(lambda: get(admin, "kpis", period="today")["pageviews"] == 6)
    pages = get(admin, "top-pages", period="today", limit="2")["pages"]
    assert pages == [
        {"path": "/popular", "pageviews": 3, "visitors": 1},
        {"path": "/second", "pageviews": 2, "visitors": 1},
    ]


def test_custom_from_to_range(admin: Browser) -> None:
    send(admin, event("/x"))
    wait_for(lambda: get(admin, "kpis", period="today")["pageviews"] == 1)
    now = datetime.now(UTC)
    inside = get(
        admin,
        "kpis",
        **{
            "from": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            "to": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    assert inside["pageviews"] == 1
    before = get(admin, "kpis", **{"from": "2020-01-01T00:00:00", "to": "2020-01-02T00:00:00"})
    assert before["pageviews"] == 0


def test_bad_parameters_are_400_naming_them(admin: Browser) -> None:
    cases = {
        "period=forever": "period",
        "from=yesterday&to=2020-01-01T00:00:00": "from",
        "from=2020-01-01T00:00:00": "from/to",
        "from=2020-01-02T00:00:00&to=2020-01-01T00:00:00": "to",
        "from=2000-01-01T00:00:00&to=2020-01-01T00:00:00": "from/to",
        "period=30d&interval=minute": "interval",
        "period=today&interval=week": "interval",
    }
    for query, field in cases.items():
        response = admin.client.get(f"/api/analytics/timeseries?domain=example.com&{query}")
        assert response.status_code == 400, query
        assert response.json()["error"].startswith(field), (query, response.json())
    for limit in ("0", "abc", "1001"):
        response = admin.client.get(f"/api/analytics/top-pages?domain=example.com&limit={limit}")
        assert response.status_code == 400
        assert response.json()["error"].startswith("limit")
    missing = admin.client.get("/api/analytics/kpis")
    assert missing.status_code == 400 and missing.json()["error"].startswith("domain")
