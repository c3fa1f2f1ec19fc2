"""The webhook sink against real servers: an appliance subprocess and a loopback receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from appliance.core.aggregation import Batch, aggregate
from appliance.core.event import Event
from appliance.core.runtime import Appliance
from appliance.core.stores import call
from appliance.core.transport import Offset, Position
from appliance.testing import ApplianceServer, EventSender, HttpReceiver, Received, settings_env

from appliance_webhook_sink.sink import WebhookFailed

SECRET = "a-webhook-secret-for-tests"


@pytest.fixture
def appliance_settings(appliance_http_receiver: HttpReceiver) -> dict[str, Any]:
    return {
        "stores": ["sqlite", "webhook"],
        "plugins.enabled": ["webhook_sink"],
        "webhook.url": appliance_http_receiver.url + "/hook",
        "webhook.secret": SECRET,
        "webhook.backoff_s": 0.05,
    }


def signed_correctly(request: Received) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["x-appliance-signature"])


def delivered_pageviews(requests: list[Received]) -> Counter[str]:
    """Pageviews per path over distinct batches (a retried batch counts once)."""
    batches = {request.headers["x-appliance-batch"]: request.json() for request in requests}
    views: Counter[str] = Counter()
    for body in batches.values():
        for row in body["minute"]:
            views[row["path"]] += row["pageviews"]
    return views


def wait_for_pageviews(receiver: HttpReceiver, total: int) -> list[Received]:
    deadline = time.monotonic() + 5
    while sum(delivered_pageviews(receiver.requests).values()) < total:
        assert time.monotonic() < deadline, f"received: {delivered_pageviews(receiver.requests)}"
        time.sleep(0.02)
    return list(receiver.requests)


def test_every_batch_arrives_once_signed_with_its_rollups(
    appliance_events: EventSender, appliance_http_receiver: HttpReceiver
) -> None:
    appliance_events.send_and_wait({"path": "/"}, {"path": "/pricing"}, {"path": "/pricing"})
    appliance_events.send_and_wait({"path": "/pricing"}, {"path": "/pricing", "name": "signup"})

    requests = wait_for_pageviews(appliance_http_receiver, 4)
    assert len(requests) >= 2  # one POST per flush, and the second send came after the first
    batch_ids = [request.headers["x-appliance-batch"] for request in requests]
    assert len(set(batch_ids)) == len(batch_ids)
    for request in requests:
        assert request.method == "POST" and request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert signed_correctly(request)
        assert request.json()["batch_id"] == request.headers["x-appliance-batch"]
    assert delivered_pageviews(requests) == {"/": 1, "/pricing": 3}
    bodies = [request.json() for request in requests]
    assert sum(row["events"] for body in bodies for row in body["minute"]) == 1
    assert [row["name"] for body in bodies for row in body["custom_events"]] == ["signup"]
    assert {row["domain"] for body in bodies for row in body["hour"]} == {"example.com"}


def test_a_failing_receiver_holds_the_batch_until_it_accepts(
    appliance_server: ApplianceServer,
    appliance_events: EventSender,
    appliance_http_receiver: HttpReceiver,
) -> None:
    # Three failures exhaust one flush's attempts; the processor then retries the same batch.
    appliance_http_receiver.answer_next(503, 503, 503, 500)
    assert appliance_events.send({"path": "/a"}, {"path": "/b"}) == 2

    requests = appliance_http_receiver.wait_for(5)
    assert len({request.headers["x-appliance-batch"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1  # the very same batch, resent
    appliance_events.wait_until_counted(2)
    health = appliance_server.client().get("/healthz").json()
    assert health["processor"]["store_errors"] >= 1
    assert health["pending_events"] == 0
    assert delivered_pageviews(requests) == {"/a": 1, "/b": 1}
    assert "webhook: POST http://127.0.0.1" in appliance_server.log()
    assert SECRET not in appliance_server.log()


def test_bad_settings_stop_start_up_without_printing_the_secret(tmp_path: Path) -> None:
    env = settings_env(
        {
            "data_dir": str(tmp_path / "data"),
            "stores": ["sqlite", "webhook"],
            "webhook.url": "ftp://example.com/hook",
            "webhook.secret": "too-short-secret",
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "plugins"],
        env={"PATH": "/usr/bin:/bin"} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "WEBHOOK.URL: must be an http:// or https:// URL" in result.stderr
    assert "too-short-secret" not in result.stderr + result.stdout


# --- the store on its own: redelivery, restarts, partial overlaps --------------------------


def make_appliance(tmp_path: Path, url: str) -> Appliance:
    return Appliance.create(
        data_dir=str(tmp_path / "data"),
        stores=["sqlite", "webhook"],
        plugins={"autoload": True, "enabled": ["webhook_sink"]},
        webhook={"url": url, "secret": SECRET, "backoff_s": 0.01, "attempts": 2},
    )


def pageview(site_id: int, path: str) -> Event:
    return Event(event_id=f"e-{path}", ts=time.time(), site_id=site_id, name="pageview", path=path)


def batch_at(site_id: int, first: int, *paths: str) -> Batch:
    """One pageview per path, at consecutive offsets of partition p0 from `first` on."""
    events = [pageview(site_id, path) for path in paths]
    offsets = [Offset("t", "p0", first + i) for i in range(len(paths))]
    return aggregate(events, [Position("t", "p0", first, first + len(paths) - 1)], offsets)


async def redeliver(appliance: Appliance) -> list[bool]:
    await appliance.open_stores()
    owner = await call(appliance.accounts.create_user, "owner@example.com", None, True)
    site = await call(appliance.accounts.create_site, "example.com", owner.id)
    [sink] = [store for store in appliance.stores if store.name == "webhook"]
    batch = batch_at(site.id, 10, "/ten")
    results = [await sink.write_batch(batch), await sink.write_batch(batch)]
    await appliance.close_stores()
    await appliance.open_stores()  # a restart: the delivered offsets are on disk
    results.append(await sink.write_batch(batch))
    assert sink.applied_positions("t") == {"p0": 10}
    # A redelivery re-sliced around what was delivered: only offset 11 is new.
    results.append(await sink.write_batch(batch_at(site.id, 9, "/nine", "/ten", "/eleven")))
    assert sink.applied_positions("t") == {"p0": 11}
    await appliance.close_stores()
    return results


def test_a_redelivered_batch_is_not_sent_again_even_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appliance_http_receiver: HttpReceiver
) -> None:
    monkeypatch.chdir(tmp_path)
    appliance = make_appliance(tmp_path, appliance_http_receiver.url)
    assert asyncio.run(redeliver(appliance)) == [True, False, False, True]
    first, second = appliance_http_receiver.requests
    assert [row["path"] for row in first.json()["minute"]] == ["/ten"]
    assert [row["path"] for row in second.json()["minute"]] == ["/eleven"]
    assert second.json()["positions"] == [
        {"topic": "t", "partition": "p0", "first": 11, "last": 11}
    ]


async def write_once(appliance: Appliance) -> None:
    await appliance.open_stores()
    try:
        [sink] = [store for store in appliance.stores if store.name == "webhook"]
        await sink.write_batch(batch_at(1, 0, "/z"))
    finally:
        await appliance.close_stores()


def test_a_rejected_batch_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appliance_http_receiver: HttpReceiver
) -> None:
    monkeypatch.chdir(tmp_path)
    appliance = make_appliance(tmp_path, appliance_http_receiver.url)
    appliance_http_receiver.answer_next(400)
    with pytest.raises(WebhookFailed, match="answered 400"):
        asyncio.run(write_once(appliance))
    assert len(appliance_http_receiver.requests) == 1  # a plain 4xx is not retried at once
    asyncio.run(write_once(appliance))  # the processor's retry: sent again, now accepted
    assert len(appliance_http_receiver.requests) == 2
