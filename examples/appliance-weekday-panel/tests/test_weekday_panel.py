"""The weekday panel in a real appliance: on the dashboard, counting, styled by its own CSS."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from appliance.testing import ApplianceClient, ApplianceServer, EventSender, settings_env

from appliance_weekday_panel.heatmap import WEEKDAYS, level


@pytest.fixture
def appliance_settings() -> dict[str, Any]:
    return {"plugins.enabled": ["weekday_panel"], "weekday_panel.pages": 2}


def test_the_panel_shows_pageviews_per_page_and_weekday(
    appliance_client: ApplianceClient, appliance_events: EventSender
) -> None:
    shopper, reader = {"sessionId": "shopper"}, {"sessionId": "reader"}
    appliance_events.send_and_wait(
        {"path": "/pricing", **shopper}, {"path": "/pricing", **shopper},
        {"path": "/pricing", **shopper}, {"path": "/", **shopper},
        {"path": "/about", **reader}, {"path": "/about", **reader},
        {"path": "/pricing", "name": "signup", **shopper},
    )  # fmt: skip
    today = WEEKDAYS[time.gmtime().tm_wday]  # the site's time zone is UTC

    dashboard = appliance_client.get("/sites/example.com")
    assert dashboard.status == 200
    assert "Pages per weekday</h2>" in dashboard.text
    assert 'hx-get="/sites/example.com/panels/weekday' in dashboard.text

    fragment = appliance_client.get("/sites/example.com/panels/weekday?period=today")
    assert fragment.status == 200
    assert '<link rel="stylesheet" href="/plugins/weekday_panel/static/heatmap.css">' in (
        fragment.text
    )
    assert f'title="/pricing, {today}: 3">3</td>' in fragment.text  # custom events not counted
    assert f'title="/about, {today}: 2">2</td>' in fragment.text
    assert 'title="/, ' not in fragment.text  # weekday_panel.pages = 2: the busiest two only
    assert fragment.text.index("/pricing") < fragment.text.index("/about")

    # The dashboard's filters apply: only the visits that saw /about.
    filtered = appliance_client.get("/sites/example.com/panels/weekday?filters=page%3D%3D/about")
    assert f'title="/about, {today}: 2">2</td>' in filtered.text
    assert "/pricing" not in filtered.text


def test_the_panel_ships_its_stylesheet(appliance_server: ApplianceServer) -> None:
    reply = appliance_server.client().get("/plugins/weekday_panel/static/heatmap.css")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/css")
    assert ".weekday-heatmap .level-4" in reply.text
    missing = appliance_server.client().get("/plugins/weekday_panel/static/nope.css")
    assert missing.status == 404


def test_the_panel_needs_a_login(appliance_server: ApplianceServer) -> None:
    reply = appliance_server.client().get("/sites/example.com/panels/weekday")
    assert (reply.status, reply.headers["location"]) == (303, "/login")


def test_bad_settings_stop_start_up_naming_the_key(tmp_path: Path) -> None:
    env = settings_env({"data_dir": str(tmp_path / "data"), "weekday_panel.weeks": 0})
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "plugins"],
        env={"PATH": "/usr/bin:/bin"} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "WEEKDAY_PANEL.WEEKS: must be between 1 and 12" in result.stderr


def test_shades_scale_to_the_busiest_cell() -> None:
    assert [level(count, 8) for count in (0, 1, 3, 8)] == [0, 1, 2, 4]
    assert level(0, 0) == 0
