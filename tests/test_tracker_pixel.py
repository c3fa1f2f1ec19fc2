"""GET /api/pixel.gif: the no-JavaScript fallback, through the in-process pipeline."""

from __future__ import annotations

import httpx2 as httpx

from appliance.web.pixel import GIF
from tests.conftest import Browser, wait_for

PIXEL = "/api/pixel.gif?d=example.com"


def pageviews_by_path(admin: Browser) -> dict[str, int]:
    response = admin.client.get("/api/analytics/top-pages?domain=example.com&period=today")
    assert response.status_code == 200, response.text
    return {row["path"]: row["pageviews"] for row in response.json()["pages"]}


def assert_is_the_uncached_gif(response: httpx.Response) -> None:
    assert response.content == GIF
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    assert "no-cache" in response.headers["cache-control"]


def test_the_pixel_counts_a_pageview_of_the_referring_page(admin: Browser) -> None:
    response = admin.client.get(PIXEL, headers={"referer": "https://example.com/pricing?plan=1"})
    assert response.status_code == 200
    assert_is_the_uncached_gif(response)
    assert wait_for(lambda: pageviews_by_path(admin)) == {"/pricing": 1}


def test_without_a_referer_the_pixel_counts_the_home_page(admin: Browser) -> None:
    assert admin.client.get(PIXEL).status_code == 200
    assert wait_for(lambda: pageviews_by_path(admin)) == {"/": 1}


def test_bad_pixel_requests_still_get_the_gif_but_store_nothing(admin: Browser) -> None:
    client = admin.client
    cases = [
        ("/api/pixel.gif", {}, 400),  # no domain
        ("/api/pixel.gif?d=", {}, 400),
        ("/api/pixel.gif?d=unknown.example", {"referer": "https://unknown.example/a"}, 404),
        (PIXEL, {"referer": "https://example.com/" + "a" * 3000}, 400),  # path too long
        (PIXEL, {"referer": "http://[::1/broken"}, 400),  # not a URL
    ]
    for url, headers, status in cases:
        response = client.get(url, headers=headers)
        assert response.status_code == status, (url, headers)
        assert_is_the_uncached_gif(response)
    head = client.head(PIXEL, headers={"referer": "https://example.com/checked-by-a-bot"})
    assert head.status_code == 200
    # One good request after the bad ones: once it is counted, anything before it would be.
    client.get(PIXEL, headers={"referer": "https://example.com/good"})
    assert wait_for(lambda: pageviews_by_path(admin)) == {"/good": 1}
