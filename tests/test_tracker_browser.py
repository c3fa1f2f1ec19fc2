"""tracker.js in a real browser: Debian's Chromium driven by Playwright, against the appliance.

The appliance runs as a subprocess; the fixture pages come from a second loopback server, so
the tracker is cross-origin as on a real site, and every `*.test` host name maps to loopback,
so each test is its own site with a real-looking host name. Outcomes are read back from what
the appliance stored: the stats API for counts, and its SQLite event table for the fields the
stats API does not answer (event name, props, referrer, viewport, session id).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import pytest

from tests.browser import desktop_user_agent
from tests.conftest import PASSWORD, wait_for
from tests.servers import PageServer, Server, cli, free_port, server_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "tracker"
VIEWPORT = {"width": 1024, "height": 700}
SETTLE_S = 5.0
# Without this the page reports navigator.webdriver (Playwright drives it): the tracker then
# sends nothing unless data-include-localhost is set, which is what most fixture pages do.
NOT_AUTOMATED = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"
WITHOUT_BEACON = "delete Navigator.prototype.sendBeacon"


# Each call returns true when it returned nothing and threw nothing.
ODD_CALLS = """() => {
  const circular = {};
  circular.self = circular;
  return [
    () => window.appliance(),
    () => window.appliance("Circular", {props: circular}),
    () => window.appliance("BigInt", {props: {n: 10n}}),
    () => window.appliance("NullOptions", null),
    () => window.appliance("StringOptions", "plan"),
  ].map((call) => {
    try {
      return call() === undefined;
    } catch (error) {
      return String(error);
    }
  });
}"""


# --- the appliance and what it stored -------------------------------------------------


@dataclass
class LiveAppliance:
    server: Server
    data_dir: Path
    key: str
    sites: int = 0

    def new_site(self) -> str:
        """Register a fresh site through the domains API; its host name maps to loopback."""
        self.sites += 1
        domain = f"t{self.sites}.test"
        response = httpx.post(
            f"{self.server.url}/api/domains",
            json={"domain": domain},
            headers={"authorization": f"Bearer {self.key}"},
        )
        assert response.status_code == 201, response.text
        return domain

    def stats(self, endpoint: str, domain: str, **params: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.server.url}/api/analytics/{endpoint}",
            params={"domain": domain, "period": "today", **params},
            headers={"authorization": f"Bearer {self.key}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def pageviews_by_path(self, domain: str) -> dict[str, int]:
        pages = self.stats("top-pages", domain, limit="100")["pages"]
        return {row["path"]: row["pageviews"] for row in pages}

    def events(self, domain: str, name: str | None = None) -> list[dict[str, Any]]:
        """Stored events of the site, oldest first (read-only; the server keeps writing)."""
        accounts = sqlite3.connect(f"file:{self.data_dir / 'accounts.db'}?mode=ro", uri=True)
        analytics = sqlite3.connect(f"file:{self.data_dir / 'analytics.db'}?mode=ro", uri=True)
        try:
            (site_id,) = accounts.execute(
                "SELECT id FROM sites WHERE domain = ?", (domain,)
            ).fetchone()
            analytics.row_factory = sqlite3.Row
            rows = analytics.execute(
                "SELECT name, path, session_id, referrer, url, title, screen_width,"
                " screen_height, props FROM events WHERE site_id = ? ORDER BY ts",
                (site_id,),
            ).fetchall()
        finally:
            accounts.close()
            analytics.close()
        found = [dict(row) | {"props": json.loads(row["props"])} for row in rows]
        return [e for e in found if name is None or e["name"] == name]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAppliance]:
    """One appliance for the module; each test registers its own site."""
    root = tmp_path_factory.mktemp("appliance")
    env = server_env(root / "data")
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    key = cli(env, "token", "create", "owner@example.com").strip().splitlines()[-1]
    server = Server(env, free_port(), root / "server.log")
    try:
        server.start()
        yield LiveAppliance(server, root / "data", key)
    finally:
        if server.process is not None:
            server.stop()


@pytest.fixture(scope="module")
def pages(live: LiveAppliance) -> Iterator[PageServer]:
    with PageServer(FIXTURES, live.server.url) as server:
        yield server


# --- browser tabs -----------------------------------------------------------------------


@dataclass
class Tab:
    """A page in its own browser context, with what it reported and what it sent."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    sent: list[Request] = field(default_factory=list)  # requests to /api/events

    def call(self, script: str) -> Any:
        return self.page.evaluate(script)


@pytest.fixture
def open_tab(chromium: Browser) -> Iterator[Callable[..., Tab]]:
    contexts: list[BrowserContext] = []
    user_agent = desktop_user_agent(chromium)

    def open_tab(*init_scripts: str, javascript: bool = True) -> Tab:
        context = chromium.new_context(
            viewport=VIEWPORT, user_agent=user_agent, java_script_enabled=javascript
        )
        contexts.append(context)
        for script in init_scripts:
            context.add_init_script(script)
        tab = Tab(context, context.new_page())
        context.on(
            "console",
            lambda message: (
                message.type == "error"
                and tab.errors.append(f"{message.text} ({message.location['url']})")
            ),
        )
        context.on("weberror", lambda error: tab.errors.append(f"uncaught: {error.error}"))
        context.on(
            "request", lambda request: "/api/events" in request.url and tab.sent.append(request)
        )
        return tab

    yield open_tab
    for context in contexts:
        context.close()


def settle(tab: Tab, live: LiveAppliance, domain: str) -> None:
    """Send a marker event after everything else and wait until it is stored.

    Afterwards anything the page sent before the marker has been counted, so counts can be
    asserted exactly rather than "at least".
    """
    marker = len(tab.sent)
    tab.call(f"window.appliance('Barrier', {{props: {{n: {marker}}}}})")
    wait_for(
        lambda: any(e["props"] == {"n": marker} for e in live.events(domain, "Barrier")),
        timeout_s=SETTLE_S,
    )


def wait_until(condition: Callable[[], Any]) -> Any:
    return wait_for(condition, timeout_s=SETTLE_S)


# --- the tests ------------------------------------------------------------------------


def test_a_page_load_sends_exactly_one_pageview_with_its_fields(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    url = pages.url(domain, "/page.html")
    tab.page.goto(url, referer="https://news.example/story")
    wait_until(lambda: live.pageviews_by_path(domain))
    settle(tab, live, domain)

    assert live.pageviews_by_path(domain) == {"/page.html": 1}
    [view] = live.events(domain, "pageview")
    assert view["referrer"] == "https://news.example/story"
    assert (view["screen_width"], view["screen_height"]) == (1024, 700)
    assert view["url"] == url
    assert view["title"] == "A tracked page"
    assert view["session_id"]
    assert view["props"] == {}
    assert tab.sent[0].resource_type == "ping"  # sendBeacon
    assert tab.page.text_content("#ran") == "yes"
    assert tab.errors == []


def test_spa_navigations_are_pageviews_but_a_same_path_replace_is_not(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/page.html"))
    tab.call("go('/app/one')")  # the host's router: pushState
    tab.call("go('/app/two')")
    tab.call("history.replaceState({tab: 2}, '', '/app/two?tab=2')")  # same path: no pageview
    tab.call("history.pushState({tab: 3}, '', '/app/two?tab=3')")  # same path: no pageview
    tab.call("history.go(-2)")  # popstate back to /app/one
    tab.page.wait_for_function("location.pathname == '/app/one'")
    tab.call("history.replaceState({}, '', '/app/three')")  # a new path: a pageview
    wait_until(lambda: sum(live.pageviews_by_path(domain).values()) == 5)
    settle(tab, live, domain)

    assert live.pageviews_by_path(domain) == {
        "/page.html": 1,
        "/app/one": 2,
        "/app/two": 1,
        "/app/three": 1,
    }
    views = live.events(domain, "pageview")
    assert [v["path"] for v in views] == [
        "/page.html",
        "/app/one",
        "/app/two",
        "/app/one",
        "/app/three",
    ]
    assert len({v["session_id"] for v in views}) == 1
    assert live.stats("kpis", domain)["sessions"] == 1
    assert tab.page.text_content("#view") == "/app/one"  # the host's popstate handler ran
    assert tab.errors == []


def test_hash_routes_count_only_with_data_hash(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    plain = open_tab()
    plain.page.goto(pages.url(domain, "/page.html"))
    plain.page.click("#section-link")
    plain.page.wait_for_function("location.hash == '#section'")
    hashed = open_tab()
    hashed.page.goto(pages.url(domain, "/hash.html"))
    hashed.page.click("#pricing")
    hashed.call("location.hash = '#/about'")
    wait_until(lambda: sum(live.pageviews_by_path(domain).values()) == 4)
    settle(plain, live, domain)
    settle(hashed, live, domain)

    assert live.pageviews_by_path(domain) == {
        "/page.html": 1,
        "/hash.html": 1,
        "/hash.html#/pricing": 1,
        "/hash.html#/about": 1,
    }
    assert plain.errors == hashed.errors == []


def test_a_custom_event_is_stored_with_its_name_and_props(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/page.html"))
    tab.call("window.appliance('Signup', {props: {plan: 'pro', seats: 3, trial: false}})")
    wait_until(lambda: live.events(domain, "Signup"))
    settle(tab, live, domain)

    [signup] = live.events(domain, "Signup")
    assert signup["props"] == {"plan": "pro", "seats": 3, "trial": False}
    assert signup["path"] == "/page.html"
    kpis = live.stats("kpis", domain)
    assert (kpis["pageviews"], kpis["events"]) == (1, 2)  # Signup and the settle marker
    assert tab.errors == []


def test_odd_calls_never_throw_and_a_nameless_call_sends_nothing(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/page.html"))
    outcomes = tab.call(ODD_CALLS)
    assert outcomes == [True] * 5
    settle(tab, live, domain)

    names = [e["name"] for e in live.events(domain)]
    assert names == ["pageview", "NullOptions", "StringOptions", "Barrier"]
    assert tab.errors == []


def test_a_snippet_pasted_twice_counts_the_page_once(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/twice.html"))
    tab.call("history.pushState({}, '', '/twice/next')")
    wait_until(lambda: sum(live.pageviews_by_path(domain).values()) >= 2)
    settle(tab, live, domain)

    assert live.pageviews_by_path(domain) == {"/twice.html": 1, "/twice/next": 1}
    assert tab.errors == []


def test_a_call_queued_before_the_script_loaded_is_delivered(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/queued.html"))
    wait_until(lambda: live.events(domain, "Queued"))
    settle(tab, live, domain)

    names = [e["name"] for e in live.events(domain)]
    assert names == ["pageview", "Queued", "Barrier"]
    [queued] = live.events(domain, "Queued")
    assert queued["props"] == {"early": True}
    assert tab.errors == []


def test_outbound_links_and_file_downloads_are_custom_events(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab()
    tab.page.goto(pages.url(domain, "/links.html"))
    tab.page.click("#download")  # answers 204: the page stays
    tab.page.click("#internal")  # same host, no file type: nothing
    tab.page.click("#mail")  # no host: nothing
    tab.page.click("#outbound", button="right")  # opens no link: nothing
    with tab.context.expect_page():
        tab.page.click("#outbound", button="middle")  # a new tab: counted
    tab.page.click("#outbound")  # leaves the page: the beacon still arrives
    tab.page.wait_for_url("**/landing.html")
    wait_until(lambda: len(live.events(domain)) == 4)

    outbound = pages.url("elsewhere.test", "/landing.html")
    assert [(e["name"], e["props"]) for e in live.events(domain)] == [
        ("pageview", {}),
        ("File Download", {"url": pages.url(domain, "/files/report.pdf")}),
        ("Outbound Link: Click", {"url": outbound}),
        ("Outbound Link: Click", {"url": outbound}),
    ]
    assert len(tab.sent) == 4
    assert tab.errors == []


def test_without_sendbeacon_fetch_with_keepalive_delivers(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab(WITHOUT_BEACON)
    tab.page.goto(pages.url(domain, "/page.html"))
    tab.call("window.appliance('Signup', {props: {plan: 'free'}})")
    wait_until(lambda: live.events(domain, "Signup"))

    assert live.pageviews_by_path(domain) == {"/page.html": 1}
    assert {request.resource_type for request in tab.sent} == {"fetch"}
    assert all(request.method == "POST" for request in tab.sent)
    assert tab.errors == []


def test_one_session_id_per_tab_and_no_cookies(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    first, second = open_tab(), open_tab()
    first.page.goto(pages.url(domain, "/page.html"))
    first.page.reload()
    second.page.goto(pages.url(domain, "/page.html"))
    wait_until(lambda: live.pageviews_by_path(domain) == {"/page.html": 3})

    sessions = [v["session_id"] for v in live.events(domain, "pageview")]
    assert sessions[0] == sessions[1] != sessions[2]
    assert live.stats("kpis", domain)["sessions"] == 2
    for tab in (first, second):
        assert tab.call("document.cookie") == ""
        assert tab.context.cookies() == []
        assert tab.errors == []


def test_local_automated_and_opted_out_visits_send_nothing(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer, tmp_path: Path
) -> None:
    domain = live.new_site()
    untagged = (FIXTURES / "untagged.html").read_text()
    file_page = tmp_path / "untagged.html"
    file_page.write_text(
        untagged.replace("{{domain}}", domain).replace("{{appliance}}", live.server.url)
    )
    opted_out = "localStorage.setItem('appliance_ignore', 'true')"
    quiet = {
        "loopback host": (open_tab(NOT_AUTOMATED), pages.url("127.0.0.1", "/untagged.html")),
        "file URL": (open_tab(NOT_AUTOMATED), file_page.as_uri()),
        "automated browser": (open_tab(), pages.url(domain, "/untagged.html")),
        "opted out": (open_tab(opted_out), pages.url(domain, "/page.html")),
    }
    for tab, url in quiet.values():
        tab.page.goto(url)
        tab.page.wait_for_function("window.appliance && window.appliance.loaded")
        tab.call("window.appliance('Ignored')")
    counted = open_tab(NOT_AUTOMATED)
    counted.page.goto(pages.url(domain, "/untagged.html"))
    wait_until(lambda: live.pageviews_by_path(domain))
    settle(counted, live, domain)

    assert {case: tab.sent for case, (tab, _) in quiet.items()} == {case: [] for case in quiet}
    assert live.pageviews_by_path(domain) == {"/untagged.html": 1}
    assert [e["name"] for e in live.events(domain)] == ["pageview", "Barrier"]
    for tab, _ in [*quiet.values(), (counted, "")]:
        assert tab.errors == []


def test_without_javascript_the_pixel_counts_the_page(
    open_tab: Callable[..., Tab], live: LiveAppliance, pages: PageServer
) -> None:
    domain = live.new_site()
    tab = open_tab(javascript=False)
    url = pages.url(domain, "/noscript.html")
    with tab.page.expect_response(lambda response: "/api/pixel.gif" in response.url) as pixel:
        tab.page.goto(url)
    response = pixel.value
    assert response.status == 200
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    wait_until(lambda: live.pageviews_by_path(domain) == {"/noscript.html": 1})
    [view] = live.events(domain)
    assert (view["name"], view["url"]) == ("pageview", url)
    assert tab.errors == []


def test_the_host_page_keeps_working_when_the_appliance_is_down(
    open_tab: Callable[..., Tab],
    pages: PageServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its own appliance, to be stopped; the site exists before it starts.
    env = server_env(tmp_path / "data")
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    cli(env, "site", "add", "down.test", "--owner", "owner@example.com")
    server = Server(env, free_port(), tmp_path / "server.log")
    monkeypatch.setitem(pages.appliance_for, "down.test", server.url)
    try:
        server.start()
        tabs = {"beacon": open_tab(), "fetch": open_tab(WITHOUT_BEACON)}
        for tab in tabs.values():
            tab.page.goto(pages.url("down.test", "/page.html"))
        wait_until(lambda: httpx.get(f"{server.url}/healthz").json()["ingest"]["accepted"] == 2)
    finally:
        if server.process is not None:
            server.stop()

    refused = f"Failed to load resource: net::ERR_CONNECTION_REFUSED ({server.url}/"
    # A visitor new to the site: tracker.js itself does not load, the stub takes the calls.
    tabs["no tracker"] = open_tab()
    tabs["no tracker"].page.goto(pages.url("down.test", "/page.html"))
    assert tabs["no tracker"].call("window.appliance('Early') === undefined")
    assert tabs["no tracker"].call("window.appliance.q.length") == 1
    for case, tab in tabs.items():
        tab.call("go('/after/one'); go('/after/two')")
        tab.call("window.appliance('AfterDown', {props: {plan: 'pro'}})")
        for _ in range(3):
            tab.page.click("#count")
        tab.call("history.back()")
        tab.page.wait_for_function("location.pathname == '/after/one'")
        assert tab.page.text_content("#count") == "3", case
        assert tab.page.text_content("#view") == "/after/one", case
        assert tab.page.text_content("#ran") == "yes", case
    for case, tab in tabs.items():
        # Only the browser's own notes on refused requests; nothing thrown, no rejection.
        assert tab.errors, case
        assert [e for e in tab.errors if not e.startswith(refused)] == [], case
