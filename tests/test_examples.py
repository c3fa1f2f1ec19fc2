"""The example plugins in examples/, installed like any third-party plugin, in a real appliance.

The suite's install step installs them (`pip install -e examples/...`); the fixtures from
`appliance.testing` (appliance_server, appliance_client, ...) are the ones plugin authors get.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest

from appliance.app import create_app
from appliance.core.aggregation import aggregate
from appliance.core.event import Event
from appliance.core.runtime import Appliance
from appliance.core.stores import call
from appliance.core.transport import Offset, Position
from appliance.testing import (
    ApplianceClient,
    ApplianceServer,
    EventSender,
    HttpReceiver,
    Received,
    settings_env,
)
from tests.conftest import Browser, make_appliance, make_client, wait_for

EXAMPLES = {"webhook_sink": "appliance-webhook-sink", "weekday_panel": "appliance-weekday-panel"}
SECRET = "a-webhook-secret-for-tests"


def _missing() -> list[str]:
    missing = []
    for dist in EXAMPLES.values():
        try:
            distribution(dist)
        except PackageNotFoundError:
            missing.append(dist)
    return missing


if _missing():
    _message = f"install the examples: pip install -e examples/{' -e examples/'.join(_missing())}"
    if os.environ.get("CI") == "true":
        raise RuntimeError(_message)  # in CI a missing install step is a failure, not a skip
    pytest.skip(_message, allow_module_level=True)


@pytest.fixture
def appliance_settings(appliance_http_receiver: HttpReceiver) -> dict[str, Any]:
    """Both examples on, the sink posting to the test's receiver (for appliance_server)."""
    return {
        "stores": ["sqlite", "webhook"],
        "plugins.enabled": list(EXAMPLES),
        "webhook.url": appliance_http_receiver.url + "/hook",
        "webhook.secret": SECRET,
        "webhook.backoff_s": 0.05,
    }


def batch_id(request: Received) -> str:
    return request.headers["x-appliance-batch"]


def delivered_pageviews(requests: list[Received]) -> Counter[str]:
    """Pageviews per path over distinct batches (a retried batch counts once)."""
    views: Counter[str] = Counter()
    for body in {batch_id(request): request.json() for request in requests}.values():
        for row in body["minute"]:
            views[row["path"]] += row["pageviews"]
    return views


# --- `appliance plugins` ---------------------------------------------------------------------


def plugin_table(tmp_path: Path, **settings: Any) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env |= settings_env({"data_dir": str(tmp_path / "data"), **settings})
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "plugins"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["name", "version", "status", "source", "hooks"]
    # Columns are separated by two or more spaces; "entry point x" holds single ones.
    return {line.split()[0]: [cell.strip() for cell in line.split("  ") if cell] for line in lines}


def test_appliance_plugins_lists_the_examples_with_version_status_and_hooks(
    tmp_path: Path,
) -> None:
    table = plugin_table(tmp_path, **{"plugins.autoload": True})
    assert table["webhook_sink"] == [
        "webhook_sink",
        "0.1.0",
        "enabled",
        "entry point appliance-webhook-sink",
        "register_stores, settings_defaults, validate_settings",
    ]
    assert table["weekday_panel"] == [
        "weekday_panel",
        "0.1.0",
        "enabled",
        "entry point appliance-weekday-panel",
        "register_panels, register_routes, settings_defaults, template_dirs, validate_settings",
    ]
    assert table["enrich_utm"][1:4] == ["0.1.0", "enabled", "builtin"]

    blocked = plugin_table(
        tmp_path, **{"plugins.autoload": True, "plugins.blocked": ["webhook_sink", "enrich_utm"]}
    )
    assert blocked["webhook_sink"][2:] == ["blocked", "entry point appliance-webhook-sink", "-"]
    assert blocked["enrich_utm"][2:] == ["blocked", "builtin", "-"]
    assert blocked["weekday_panel"][2] == "enabled"
    only_panel = plugin_table(
        tmp_path, **{"plugins.autoload": True, "plugins.enabled": ["weekday_panel"]}
    )
    assert only_panel["webhook_sink"][2] == "not enabled"
    assert plugin_table(tmp_path, **{"plugins.autoload": False})["weekday_panel"][2] == (
        "autoload off"
    )


# --- the weekday panel -----------------------------------------------------------------------


def test_weekday_panel_renders_in_the_dashboard_with_its_stylesheet(tmp_path: Path) -> None:
    appliance = make_appliance(
        tmp_path / "data", plugins={"autoload": True, "enabled": ["weekday_panel"]}
    )
    ids = [panel.id for panel in appliance.panels]
    assert ids.index("pages") < ids.index("weekday") < ids.index("sources")  # by `order`
    with make_client(create_app(appliance)) as client:
        admin = Browser(client)
        assert admin.setup_admin().status_code == 303
        assert admin.add_domain("example.com").status_code == 201
        for path in ("/pricing", "/pricing", "/pricing", "/"):
            assert client.post("/api/events", json={"domain": "example.com", "path": path})
        wait_for(lambda: appliance.processor.stats.events == 4)
        today = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[time.gmtime().tm_wday]

        dashboard = client.get("/sites/example.com").text
        assert 'id="title-weekday">Pages per weekday</h2>' in dashboard
        assert 'hx-get="/sites/example.com/panels/weekday' in dashboard
        fragment = client.get("/sites/example.com/panels/weekday?period=today")
        assert fragment.status_code == 200
        assert f'title="/pricing, {today}: 3">3</td>' in fragment.text
        assert f'title="/, {today}: 1">1</td>' in fragment.text
        assert 'href="/plugins/weekday_panel/static/heatmap.css"' in fragment.text
        css = client.get("/plugins/weekday_panel/static/heatmap.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# --- the webhook sink ------------------------------------------------------------------------


def pageview(site_id: int, path: str) -> Event:
    return Event(event_id=path, ts=time.time(), site_id=site_id, name="pageview", path=path)


async def write_the_same_batch_twice(appliance: Appliance) -> list[bool]:
    await appliance.open_stores()
    try:
        owner = await call(appliance.accounts.create_user, "owner@example.com", None, True)
        site = await call(appliance.accounts.create_site, "example.com", owner.id)
        batch = aggregate(
            [pageview(site.id, "/a"), pageview(site.id, "/b")],
            [Position("memory", "run-1", 0, 1)],
            [Offset("memory", "run-1", 0), Offset("memory", "run-1", 1)],
        )
        written = []
        for store in appliance.stores:  # as the processor's retry would, to every store
            written += [await call(store.write_batch, batch), await call(store.write_batch, batch)]
        return written
    finally:
        await appliance.close_stores()


def test_a_redelivered_batch_reaches_the_webhook_once(
    tmp_path: Path, appliance_http_receiver: HttpReceiver
) -> None:
    appliance = make_appliance(
        tmp_path / "data",
        stores=["sqlite", "webhook"],
        plugins={"autoload": True, "enabled": ["webhook_sink"]},
        webhook={"url": appliance_http_receiver.url, "secret": SECRET},
    )
    assert sorted(store.name for store in appliance.stores) == ["sqlite", "webhook"]
    assert asyncio.run(write_the_same_batch_twice(appliance)) == [True, False, True, False]
    [request] = appliance_http_receiver.requests
    assert delivered_pageviews([request]) == {"/a": 1, "/b": 1}


def test_the_real_server_posts_each_batch_once_and_shows_the_panel(
    appliance_server: ApplianceServer,
    appliance_client: ApplianceClient,
    appliance_events: EventSender,
    appliance_http_receiver: HttpReceiver,
) -> None:
    for round_number in range(3):
        sent = [{"path": f"/round-{round_number}"}, {"path": "/home"}]
        assert appliance_events.send_and_wait(*sent) == 2

    deadline = time.monotonic() + 5
    while sum(delivered_pageviews(appliance_http_receiver.requests).values()) < 6:
        assert time.monotonic() < deadline, appliance_http_receiver.requests
        time.sleep(0.02)
    requests = appliance_http_receiver.requests
    ids = [batch_id(request) for request in requests]
    assert len(ids) == len(set(ids)) >= 3  # one POST per flush, each batch once
    assert delivered_pageviews(requests) == {
        "/round-0": 1,
        "/round-1": 1,
        "/round-2": 1,
        "/home": 3,
    }
    for request in requests:
        digest = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-appliance-signature"] == f"sha256={digest}"

    fragment = appliance_client.get("/sites/example.com/panels/weekday")
    assert fragment.status == 200 and "/home" in fragment.text and "/round-2" in fragment.text
    appliance_server.stop()
    assert len(appliance_http_receiver.requests) == len(requests)  # the stop sent nothing twice


def test_a_failing_sink_holds_the_commit_and_skips_nothing(
    appliance_server: ApplianceServer,
    appliance_events: EventSender,
    appliance_http_receiver: HttpReceiver,
) -> None:
    # Enough failures for several flush attempts (3 POSTs each), then the receiver recovers.
    appliance_http_receiver.answer_next(*[503] * 7)
    assert appliance_events.send({"path": "/held"}, {"path": "/held"}) == 2

    def health() -> dict[str, Any]:
        return appliance_server.client().get("/healthz").json()

    failing = wait_for(lambda: (h := health())["processor"]["store_errors"] >= 2 and h, 5)
    assert failing["pending_events"] == 2  # not committed while the sink fails
    wait_for(lambda: health()["pending_events"] == 0, 10)
    assert len(appliance_http_receiver.requests) == 8
    assert len({batch_id(request) for request in appliance_http_receiver.requests}) == 1
    assert delivered_pageviews(appliance_http_receiver.requests) == {"/held": 2}
    appliance_events.wait_until_counted(2)
    assert "webhook: POST http://127.0.0.1" in appliance_server.log()
    assert SECRET not in appliance_server.log()
