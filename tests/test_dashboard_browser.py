"""The dashboard in real headless Chromium: first-run setup, a live visit from tracker.js,
click-to-filter, screenshots at phone and desktop widths, and no script from event data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2 as httpx
import pytest

from tests.browser import desktop_user_agent
from tests.conftest import PASSWORD
from tests.servers import PageServer, Server, free_port, server_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "tracker"
DOMAIN = "shop.test"
VISIBLE_WITHIN_MS = 2000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dashboard")
    running = Server(server_env(root / "data"), free_port(), root / "server.log")
    running.start()
    yield running
    if running.process is not None:
        running.stop()


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors


def test_setup_live_visit_filter_and_screenshots(
    chromium: Browser, server: Server, tmp_path: Path
) -> None:
    agent = desktop_user_agent(chromium)
    admin = chromium.new_context(viewport={"width": 1440, "height": 1000}, user_agent=agent)
    dashboard = admin.new_page()
    errors = watch_errors(dashboard)

    # First run: the dashboard URL leads to the one-time setup.
    dashboard.goto(f"{server.url}/dashboard")
    assert dashboard.url.endswith("/setup")
    dashboard.fill("input[name=email]", "owner@example.com")
    dashboard.fill("input[name=password]", PASSWORD)
    dashboard.fill("input[name=password_confirm]", PASSWORD)
    dashboard.click("button[type=submit]")
    dashboard.fill("input[name=domain]", DOMAIN)
    dashboard.click("text=Add site")
    dashboard.click("text=Open the dashboard")
    dashboard.wait_for_selector("#panel-pages >> text=No data for this period")
    assert "0</strong> current visitors" in dashboard.inner_html("#live")

    # Visitors arrive on the tracked site; the open dashboard shows them without a reload.
    with PageServer(FIXTURES, server.url) as pages:
        visitor = chromium.new_context(user_agent=agent)
        tab = visitor.new_page()
        with tab.expect_request_finished(lambda r: "/api/events" in r.url):
            tab.goto(pages.url(DOMAIN, "/page.html"))
        sent_at = time.monotonic()
        dashboard.wait_for_selector("#live >> text=1 current visitor", timeout=VISIBLE_WITHIN_MS)
        dashboard.wait_for_selector('#panel-pages >> text="/page.html"', timeout=VISIBLE_WITHIN_MS)
        visible_after = time.monotonic() - sent_at
        assert visible_after < VISIBLE_WITHIN_MS / 1000
        # A second visit (its own tab, so its own session) that also goes to /pricing.
        other = visitor.new_page()
        with other.expect_request_finished(lambda r: "/api/events" in r.url):
            other.goto(pages.url(DOMAIN, "/page.html"))
        with other.expect_request_finished(lambda r: "/api/events" in r.url):
            other.evaluate("go('/pricing')")
        dashboard.wait_for_selector('#panel-pages >> text="/pricing"', timeout=VISIBLE_WITHIN_MS)
        visitor.close()

    kpis = dashboard.locator("#panel-kpis .card-kpi", has_text="Pageviews")
    assert kpis.locator(".kpi-value").inner_text() == "3"
    # Clicking a row filters every panel, and the filter shows as a removable chip.
    dashboard.click('#panel-pages >> text="/pricing"')
    dashboard.wait_for_selector('.chip >> text="/pricing"')
    assert "filters=page%3D%3D%2Fpricing" in dashboard.url
    dashboard.wait_for_selector("#panel-kpis .kpi-value")
    assert kpis.locator(".kpi-value").inner_text() == "2"
    assert dashboard.locator("#panel-sessions").count() == 0
    dashboard.click(".chip")
    dashboard.wait_for_selector("#panel-kpis .kpi-value")
    assert kpis.locator(".kpi-value").inner_text() == "3"

    # Screenshots at desktop and phone widths, for people to look at.
    shots = tmp_path / "screenshots"
    shots.mkdir()
    dashboard.screenshot(path=str(shots / "dashboard-1440.png"), full_page=True)
    phone = chromium.new_context(
        viewport={"width": 375, "height": 812},
        user_agent=agent,
        storage_state=admin.storage_state(),
    )
    small = phone.new_page()
    errors += watch_errors(small)
    small.goto(dashboard.url)
    small.wait_for_selector('#panel-pages >> text="/pricing"')
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways at 375 px ({width} px wide)"
    small.screenshot(path=str(shots / "dashboard-375.png"), full_page=True)
    print(f"screenshots: {shots}")
    assert (shots / "dashboard-1440.png").stat().st_size > 10_000
    phone.close()
    admin.close()
    assert errors == []


def test_markup_in_paths_and_titles_is_text(chromium: Browser, server: Server) -> None:
    key = _api_key(server)
    evil = "/<script>window.__owned=1</script>"
    response = httpx.post(
        f"{server.url}/api/events",
        json={"domain": DOMAIN, "path": evil, "title": "<img src=x onerror=window.__owned=2>"},
        headers={"user-agent": desktop_user_agent(chromium)},
    )
    assert response.status_code == 202, response.text
    context = chromium.new_context(user_agent=desktop_user_agent(chromium))
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "owner@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server.url}/sites/{DOMAIN}?period=today")
    page.locator("#panel-pages td.label", has_text=evil).wait_for()
    assert page.evaluate("window.__owned") is None
    assert page.locator("#panel-pages script").count() == 0
    assert key and errors == []
    context.close()


def _api_key(server: Server) -> str:
    from tests.servers import cli

    return cli(server.env, "token", "create", "owner@example.com").strip().splitlines()[-1]
