"""SQL metacharacters in filters and query parameters change nothing, in every store.

Each payload goes into every filterable property (with == and !=) and into every query
parameter of the stats API, against the SQLite store and the Postgres store. A payload
must either be refused with a 400 that names the parameter, or be taken as a plain value:
it then matches exactly what a harmless value that is not stored matches (here: nothing
for ==, everything for !=). Afterwards the stored events and the unfiltered figures are
what they were, and the dashboard shows the payloads escaped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from appliance.app import create_app
from appliance.core.filters import PROPERTIES
from tests.conftest import Browser, event, make_appliance, make_client, wait_for
from tests.postgres_server import fresh_database

pytestmark = pytest.mark.security

PAYLOADS = {
    "quote_or": "' OR '1'='1",
    "comment": "x'--",
    "stacked_drop": "'; DROP TABLE events; --",
    "stacked_sleep": "'); SELECT pg_sleep(3); --",
    "inline_sleep": "x' AND pg_sleep(3) IS NULL AND 'x'='x",
    "inline_comment": "'/**/OR/**/1=1/**/--",
    "union": "' UNION SELECT NULL, sqlite_version(), version() --",
    "double_quote": '" OR ""="',
    "backslash": "\\' OR 1=1 \\",
    "like_percent": "%",
    "like_underscore": "_",
    "glob_star": "*",
    "placeholders": "? $1 %s %(x)s {0}",
    "nul": "a\x00b",
    "unicode": "ünï'cödé 🙂",
    "html": "<script>alert(1)</script>",
    "max_length": "'" * 2048,
}
HARMLESS = "not-a-stored-value"
KPIS = ("visitors", "sessions", "pageviews", "events", "bounce_rate")
PARAMETERS = ("domain", "period", "from", "to", "interval", "property", "limit")
STORED_PATHS = ("/", "/pricing", "/it's", "/100%")


@pytest.fixture(params=["sqlite", "postgres"])
def admin(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Browser]:
    """A logged-in admin of example.com, with a few events in the given store."""
    with fresh_database() if request.param == "postgres" else _no_database() as dsn:
        overrides = {"stores": ["postgres"], "postgres": {"dsn": dsn}} if dsn else {}
        appliance = make_appliance(tmp_path / "data", **overrides)
        with make_client(create_app(appliance)) as client:
            browser = Browser(client)
            browser.setup_admin()
            browser.add_domain("example.com")
            for number, path in enumerate(STORED_PATHS):
                body = event(
                    path, referrer="https://news.ycombinator.com/", sessionId=f"s{number}"
                )  # one visit per path
                assert client.post("/api/events", json=body).status_code == 202
            wait_for(lambda: kpis(browser, "")["pageviews"] == len(STORED_PATHS), timeout_s=5)
            yield browser


class _no_database:
    def __enter__(self) -> str:
        return ""

    def __exit__(self, *exc_info: object) -> None:
        return None


def kpis(browser: Browser, filters: str) -> dict:
    answer = browser.client.get(
        f"/api/analytics/kpis?domain=example.com&period=today&filters={quote(filters)}"
    )
    assert answer.status_code == 200, answer.text
    return {
        k: answer.json()[k] for k in ("visitors", "sessions", "pageviews", "events", "bounce_rate")
    }


def stored_events(browser: Browser) -> int:
    store = browser.client.app.state.appliance.stores[0]
    if store.name == "sqlite":
        with store.reader.locked() as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    with store.db.connection() as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def test_filter_values_are_plain_values(admin: Browser) -> None:
    baseline = kpis(admin, "")
    before = stored_events(admin)
    tried, refused = 0, set()
    harmless = {
        (prop, op): kpis(admin, prop + op + HARMLESS) for prop in PROPERTIES for op in ("==", "!=")
    }
    for name, payload in PAYLOADS.items():
        for prop in PROPERTIES:
            for operator in ("==", "!="):
                started = time.monotonic()
                answer = admin.client.get(
                    "/api/analytics/kpis?domain=example.com&period=today"
                    f"&filters={quote(prop + operator + payload)}"
                )
                tried += 1
                assert time.monotonic() - started < 2, f"{name} on {prop} ran long"
                if answer.status_code == 400:
                    refused.add(name)
                    assert answer.json()["error"].startswith("filters:"), (name, answer.text)
                    continue
                assert answer.status_code == 200, (name, prop, answer.text)
                got = {k: answer.json()[k] for k in baseline}
                assert got == harmless[prop, operator], (name, prop, operator)
    # `;` separates filters (the rest is then not a filter); NUL cannot be stored anywhere.
    assert refused == {"stacked_drop", "stacked_sleep", "nul"}
    assert tried == len(PAYLOADS) * len(PROPERTIES) * 2
    assert stored_events(admin) == before
    assert kpis(admin, "") == baseline


def test_stored_values_with_metacharacters_match_exactly(admin: Browser) -> None:
    assert kpis(admin, "page==/it's")["pageviews"] == 1
    assert kpis(admin, "page==/100%")["pageviews"] == 1
    assert kpis(admin, "page==/100_")["pageviews"] == 0  # `_` and `%` are not wildcards
    assert kpis(admin, "page==/%")["pageviews"] == 0
    assert kpis(admin, "page!=/it's")["sessions"] == len(STORED_PATHS) - 1
    assert kpis(admin, "entry_page==/it's")["sessions"] == 1


@pytest.mark.parametrize("parameter", PARAMETERS)
def test_query_parameters_refuse_or_ignore_payloads(admin: Browser, parameter: str) -> None:
    baseline = kpis(admin, "")
    endpoint = "breakdown" if parameter == "property" else "top-pages"
    base = {"domain": "example.com", "period": "today", "property": "source", "limit": "5"}
    for name, payload in PAYLOADS.items():
        query = "&".join(f"{k}={quote(v)}" for k, v in (base | {parameter: payload}).items())
        answer = admin.client.get(f"/api/analytics/{endpoint}?{query}")
        assert answer.status_code in (400, 404), (name, answer.status_code, answer.text)
        error = answer.json()["error"]
        if answer.status_code == 400:
            named = error.split(":")[0]
            assert parameter in named or named in ("period", "interval"), (name, error)
    assert kpis(admin, "") == baseline


def test_dashboard_and_export_show_payloads_escaped(admin: Browser) -> None:
    payload = PAYLOADS["html"] + PAYLOADS["quote_or"]
    filters = quote(f"page=={payload}")
    page = admin.client.get(f"/sites/example.com?period=today&filters={filters}")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)" in page.text
    export = admin.client.get(
        f"/sites/example.com/export.csv?period=today&property=source&filters={filters}"
    )
    assert export.status_code == 200
    assert stored_events(admin) == len(STORED_PATHS)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event("/a\x00b"), "$.path"),
        (event("/", title="x\x00"), "$.title"),
        (event("/", referrer="https://a.example/\x00"), "$.referrer"),
        (event("/", props={"plan": "pro\x00"}), "$.props"),
        (event("/", props={"pl\x00an": 1}), "$.props"),
        ([event("/"), event("/", name="sign\x00up")], "$[1].name"),
    ],
)
def test_nul_characters_are_refused_at_ingest(admin: Browser, body: object, field: str) -> None:
    """PostgreSQL cannot store NUL in text: one such event would stop the processor."""
    answer = admin.client.post("/api/events", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == f"NUL characters are not allowed - at `{field}`"
    assert admin.client.post("/api/events", json=event("/after")).status_code == 202
    wait_for(lambda: kpis(admin, "page==/after")["pageviews"] == 1, timeout_s=5)
    assert stored_events(admin) == len(STORED_PATHS) + 1


def test_a_percent_encoded_nul_in_campaign_tags_is_dropped(admin: Browser) -> None:
    """The UTM enricher decodes the URL's query: %00 must not reach a store as NUL."""
    url = "https://example.com/landing?utm_source=news%00letter&utm_campaign=%00"
    answer = admin.client.post("/api/events", json=event("/landing", url=url))
    assert answer.status_code == 202
    wait_for(lambda: kpis(admin, "page==/landing")["pageviews"] == 1, timeout_s=5)
    sources = admin.client.get(
        "/api/analytics/breakdown?domain=example.com&period=today&property=utm_source"
    ).json()["results"]
    assert [row["value"] for row in sources] == ["newsletter"]
    later = event("/after", sessionId="later")  # the pipeline still flows
    assert admin.client.post("/api/events", json=later).status_code == 202
    wait_for(lambda: kpis(admin, "page==/after")["pageviews"] == 1, timeout_s=5)
