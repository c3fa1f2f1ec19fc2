"""The site dashboard served in-process: panels, filters, live counter, CSV, settings."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from appliance import hookimpl
from appliance.app import create_app
from appliance.core.panels import Panel, PanelView
from tests.conftest import Browser, event, make_appliance, make_client, wait_for


def fragment(admin: Browser, panel: str, query: str = "period=today") -> str:
    response = admin.client.get(f"/sites/example.com/panels/{panel}?{query}")
    assert response.status_code == 200, response.text
    return response.text


def send_and_wait(admin: Browser, events: list[dict[str, Any]], **headers: str) -> None:
    appliance = admin.client.app.state.appliance
    before = appliance.processor.stats.events
    assert admin.client.post("/api/events", json=events, headers=headers).status_code == 202
    wait_for(lambda: appliance.processor.stats.events >= before + len(events))


def test_page_lists_every_panel_and_the_state_lives_in_the_url(admin: Browser) -> None:
    page = admin.client.get("/sites/example.com?period=7d&compare=1&filters=browser==Chrome")
    assert page.status_code == 200
    for panel in ("kpis", "timeseries", "pages", "entry_pages", "exit_pages", "sources",
                  "campaigns", "countries", "browsers", "operating_systems", "devices",
                  "screens", "events"):  # fmt: skip
        assert f'id="panel-{panel}"' in page.text
        assert f"/sites/example.com/panels/{panel}?period=7d" in page.text
    assert 'aria-current="true">Last 7 days' in page.text
    chip = re.search(r'<a class="chip" href="([^"]+)"', page.text)
    assert chip and "filters" not in chip.group(1)  # removing the only filter
    assert "current visitor" in page.text


def test_breakdown_rows_filter_every_panel(admin: Browser) -> None:
    safari = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.1 Safari/605.1.15"
    )
    send_and_wait(
        admin, [event("/a", sessionId="1"), event("/b", sessionId="1")], **{"user-agent": safari}
    )
    send_and_wait(admin, [event("/c", sessionId="2")])
    browsers = fragment(admin, "browsers")
    link = re.search(r'href="([^"]*filters=browser%3D%3DSafari[^"]*)"', browsers)
    assert link, browsers
    filtered_url = link.group(1).replace("&amp;", "&")
    assert admin.client.get(filtered_url).status_code == 200
    query = filtered_url.split("?", 1)[1]
    pages = fragment(admin, "pages", query)
    shown = re.findall(r'title="Show only visits with page ([^"]+)"', pages)
    assert sorted(shown) == ["/a", "/b"]
    kpis = fragment(admin, "kpis", query)
    assert re.search(r"Pageviews</span>\s*<span class=\"kpi-value\">2<", kpis)


def test_kpis_compare_with_previous_period(admin: Browser) -> None:
    send_and_wait(admin, [event("/")])
    compared = fragment(admin, "kpis", "period=today&compare=1")
    assert "no earlier data" in compared
    assert "vs previous period" not in fragment(admin, "kpis", "period=today")


def test_timeseries_is_svg_with_hover_values(admin: Browser) -> None:
    send_and_wait(admin, [event("/"), event("/x")])
    chart = fragment(admin, "timeseries", "period=realtime")
    assert chart.count('class="hover"><title>') == 30
    assert "1 visitors, 2 pageviews" in chart
    assert 'role="img"' in chart


def test_markup_in_event_data_renders_as_text(admin: Browser) -> None:
    evil = '/<script>alert("x")</script>'
    send_and_wait(
        admin,
        [
            event(evil, title="<img src=x onerror=alert(1)>"),
            event(evil, name="<b>Sign</b>", props={"<i>k": "<u>v"}),
        ],
    )
    for panel in ("pages", "entry_pages", "events"):
        body = fragment(admin, panel, "period=today&filters=event==<b>Sign</b>")
        assert "<script>" not in body and "<b>Sign" not in body and "<u>v" not in body
    assert "&lt;script&gt;" in fragment(admin, "pages")
    assert "&lt;u&gt;v" in fragment(
        admin, "events", "period=today&filters=event%3D%3D%3Cb%3ESign%3C%2Fb%3E"
    )


def test_event_properties_show_when_an_event_is_chosen(admin: Browser) -> None:
    send_and_wait(
        admin,
        [
            event("/", name="Signup", props={"plan": "pro"}),
            event("/", name="Signup", props={"plan": "free"}),
        ],
    )
    plain = fragment(admin, "events")
    assert "Signup" in plain and "Properties of" not in plain
    chosen = fragment(admin, "events", "period=today&filters=event==Signup")
    assert "Properties of Signup" in chosen and "plan: pro" in chosen and "plan: free" in chosen


def test_live_counter_triggers_a_refresh_only_on_new_data(admin: Browser) -> None:
    first = admin.client.get("/sites/example.com/live?seen=0")
    assert "0</strong> current visitors" in first.text
    seen = re.search(r"seen=([0-9.]+)", first.text).group(1)
    assert "hx-trigger" not in {k.lower() for k in first.headers} or seen == "0"
    send_and_wait(admin, [event("/")])
    second = admin.client.get(f"/sites/example.com/live?seen={seen}")
    assert second.headers["HX-Trigger"] == "appliance:data"
    assert "1</strong> current visitor" in second.text
    newer = re.search(r"seen=([0-9.]+)", second.text).group(1)
    third = admin.client.get(f"/sites/example.com/live?seen={newer}")
    assert "HX-Trigger" not in third.headers


def test_csv_export_of_a_breakdown(admin: Browser) -> None:
    send_and_wait(admin, [event("/a"), event("/a"), event("/=cmd()")])
    response = admin.client.get("/sites/example.com/export.csv?period=today&property=page")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["page", "visitors", "pageviews", "events"]
    assert ["/a", "1", "2", "0"] in rows
    assert admin.client.get("/sites/example.com/export.csv?property=colour").status_code == 400


def test_settings_timezone_and_delete(admin: Browser) -> None:
    client = admin.client
    page = client.get("/sites/example.com/settings")
    assert "data-copy" in page.text and "Europe/Berlin" in page.text
    saved = client.post(
        "/sites/example.com/settings/timezone",
        data={"csrf_token": admin.csrf(), "timezone": "Europe/Berlin"},
    )
    assert saved.status_code == 200 and "Time zone set to Europe/Berlin" in saved.text
    assert client.get("/api/domains").json()["domains"][0]["timezone"] == "Europe/Berlin"
    bad = client.post(
        "/sites/example.com/settings/timezone",
        data={"csrf_token": admin.csrf(), "timezone": "Mars/Base"},
    )
    assert bad.status_code == 400
    wrong = client.post(
        "/sites/example.com/delete", data={"csrf_token": admin.csrf(), "confirm": "nope"}
    )
    assert wrong.status_code == 400 and client.get("/api/domains").json()["domains"]
    gone = client.post(
        "/sites/example.com/delete",
        data={"csrf_token": admin.csrf(), "confirm": "example.com"},
        follow_redirects=False,
    )
    assert gone.status_code == 303 and client.get("/api/domains").json() == {"domains": []}
    assert client.get("/sites/example.com").status_code == 404


def test_landing_and_error_pages(client: Any) -> None:
    browser = Browser(client)
    browser.setup_admin()
    anonymous = make_client(client.app)
    landing = anonymous.get("/")
    assert landing.status_code == 200 and "Sign in" in landing.text
    missing = anonymous.get("/no/such/page")
    assert (
        missing.status_code == 404 and "Page not found" in missing.text and "<html" in missing.text
    )
    api_missing = anonymous.get("/api/nothing")
    assert api_missing.status_code == 404 and api_missing.json() == {"error": "page not found"}
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"


class ExtraPanel:
    @hookimpl
    def register_panels(self, appliance: Any) -> list[Panel]:
        async def data(view: PanelView) -> dict[str, Any]:
            kpis = await view.query.kpis(view.site.id, view.time_range, view.filters)
            return {"kpis": kpis}

        return [Panel("extra", "Extra from a plugin", 99, "panels/kpis_extra.html", data)]

    @hookimpl
    def template_dirs(self) -> list[str]:
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp()) / "panels"
        folder.mkdir()
        (folder / "kpis_extra.html").write_text(
            "<p class='extra'>{{ kpis.pageviews }} pageviews here</p>"
        )
        return [str(folder.parent)]


def test_a_plugin_panel_is_rendered(tmp_path: Any) -> None:
    appliance = make_appliance(tmp_path / "data", extra_plugins=(ExtraPanel(),))
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        page = client.get("/sites/example.com")
        assert 'id="panel-extra"' in page.text and "Extra from a plugin" in page.text
        client.post("/api/events", json=event("/"))
        wait_for(lambda: appliance.processor.stats.events == 1)
        assert "1 pageviews here" in client.get("/sites/example.com/panels/extra?period=today").text
