"""POST /api/events through the whole in-process pipeline into the SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appliance.app import create_app
from tests.conftest import Browser, event, make_appliance, make_client, wait_for


def kpis(browser: Browser, domain: str = "example.com", period: str = "today") -> dict:
    response = browser.client.get(f"/api/analytics/kpis?domain={domain}&period={period}")
    assert response.status_code == 200, response.text
    return response.json()


def test_accepted_events_reach_the_stats(admin: Browser) -> None:
    client = admin.client
    response = client.post("/api/events", json=event("/a"))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "filtered": 0}
    batch = [
        event("/b", name="Signup", props={"plan": "pro"}),
        event("/a", domain="WWW.Example.com"),
    ]
    assert (
        client.post(
            "/api/events", content=json.dumps(batch), headers={"content-type": "text/plain"}
        ).status_code
        == 202
    )
    result = wait_for(lambda: (k := kpis(admin))["pageviews"] == 2 and k)
    assert result["events"] == 1
    assert result["visitors"] == 1


def test_text_plain_and_charset_are_accepted(admin: Browser) -> None:
    response = admin.client.post(
        "/api/events",
        content=json.dumps(event()),
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert response.status_code == 202


def test_other_content_types_are_refused(admin: Browser) -> None:
    response = admin.client.post(
        "/api/events",
        content="domain=example.com",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "content-type" in response.json()["error"]


@pytest.mark.security
def test_unknown_domain_is_404_and_nothing_of_the_batch_is_stored(admin: Browser) -> None:
    client = admin.client
    response = client.post("/api/events", json=[event("/ok"), event("/x", domain="unknown.org")])
    assert response.status_code == 404
    assert "unknown.org" in response.json()["error"]
    bad = client.post("/api/events", json=[event("/ok"), event("")])
    assert bad.status_code == 400
    assert "$[1].path" in bad.json()["error"]
    client.post("/api/events", json=event("/marker"))
    wait_for(lambda: kpis(admin)["pageviews"] == 1)
    pages = client.get("/api/analytics/top-pages?domain=example.com&period=today").json()["pages"]
    assert [page["path"] for page in pages] == ["/marker"]


@pytest.mark.security
def test_body_one_byte_over_the_limit_is_413(admin: Browser) -> None:
    limit = 16384
    padding = "x" * (limit - len(json.dumps(event(title=""))))
    exact = json.dumps(event(title="")).replace('"title": ""', f'"title": "{padding[:0]}"')
    assert len(exact.encode()) <= limit
    body = json.dumps({"domain": "example.com", "path": "/", "junk": ""})
    body = body[:-2] + "x" * (limit + 1 - len(body)) + '"}'
    assert len(body.encode()) == limit + 1
    response = admin.client.post(
        "/api/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "16384" in response.json()["error"]
    at_limit = body[:-3] + '"}'
    assert len(at_limit.encode()) == limit - 1 or len(at_limit.encode()) <= limit
    assert (
        admin.client.post(
            "/api/events", content=at_limit, headers={"content-type": "application/json"}
        ).status_code
        == 202
    )


def test_a_body_sent_in_pieces_is_read_whole_and_still_limited(admin: Browser) -> None:
    """No Content-Length (chunked): the limit applies to what arrives, piece by piece."""
    whole = json.dumps(event("/pieces")).encode()
    pieces = [whole[:10], whole[10:25], whole[25:]]
    response = admin.client.post(
        "/api/events", content=iter(pieces), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "filtered": 0}
    wait_for(lambda: kpis(admin)["pageviews"] == 1)
    too_much = (b"x" * 8192 for _ in range(3))  # 24 KiB, over the 16 KiB limit
    response = admin.client.post(
        "/api/events", content=too_much, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    assert "16384" in response.json()["error"]


def test_ingest_works_under_a_root_path(tmp_path: Path) -> None:
    """Served under a prefix (a proxy's root path, or mounted in another app)."""
    app = create_app(make_appliance(tmp_path / "data"))
    with make_client(app, root_path="/analytics") as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        response = client.post("/analytics/api/events", json=event("/prefixed"))
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "filtered": 0}
        wait_for(lambda: kpis(browser)["pageviews"] == 1)
        client.cookies.clear()  # a visitor of a tracked site: no cookie may be set on them
        assert "set-cookie" not in client.get("/analytics/tracker.js").headers
        assert "set-cookie" in client.get("/analytics/login").headers  # pages do set one


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_405_naming_the_allowed_ones(admin: Browser, method: str) -> None:
    response = admin.client.request(method, "/api/events")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    if method != "HEAD":
        assert response.json() == {"error": "not allowed"}


def test_cors_preflight_and_response_headers(admin: Browser) -> None:
    preflight = admin.client.options(
        "/api/events",
        headers={"origin": "https://example.com", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 204
    assert "content-length" not in preflight.headers  # RFC 9110: never on a 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = admin.client.post(
        "/api/events", json=event(), headers={"origin": "https://example.com"}
    )
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.security
def test_cors_restricted_to_configured_origins(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data", ingest={"cors_origins": ["https://example.com"]})
    with make_client(create_app(appliance)) as client:
        allowed = client.options("/api/events", headers={"origin": "https://example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://example.com"
        other = client.options("/api/events", headers={"origin": "https://evil.test"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.security
def test_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    appliance = make_appliance(
        tmp_path / "data", ingest={"queue_size": 3}, processor={"embedded": False}
    )
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        statuses = [client.post("/api/events", json=event()).status_code for _ in range(4)]
        assert statuses == [202, 202, 202, 503]
        refused = client.post("/api/events", json=event())
        assert refused.headers["retry-after"] == "1"
        assert "retry" in refused.json()["error"]
        assert appliance.transport.pending() == 3
        assert appliance.ingest.stats.overloaded == 2


@pytest.mark.security
def test_client_ip_never_stored(admin: Browser, tmp_path: Path) -> None:
    ip = "203.0.113.77"
    appliance = admin.client.app.state.appliance
    appliance.settings.set("ingest.trusted_proxies", ["testclient"])
    admin.client.app.state.trusted_proxies = frozenset(["testclient"])
    response = admin.client.post("/api/events", json=event("/ip"), headers={"x-forwarded-for": ip})
    assert response.status_code == 202
    wait_for(lambda: kpis(admin)["pageviews"] == 1)
    for database in (tmp_path / "data").glob("*.db*"):
        assert ip.encode() not in database.read_bytes()


@pytest.mark.security
def test_the_server_clock_rules_client_times_are_ignored(admin: Browser) -> None:
    """The event schema has no time field: whatever time a client claims is dropped, so a
    client can neither backdate events nor place them in the future."""
    before = time.time()
    claims = {"ts": 0, "timestamp": "2001-01-01T00:00:00Z", "time": 4_102_444_800}
    answer = admin.client.post("/api/events", json=event("/claimed", **claims))
    assert answer.status_code == 202
    wait_for(lambda: kpis(admin)["pageviews"] == 1)
    store = admin.client.app.state.appliance.stores[0]
    with store.reader.locked() as conn:
        (stored,) = conn.execute("SELECT ts FROM events WHERE path = '/claimed'").fetchone()
    assert before <= stored <= time.time()


def test_event_ids_are_unique_and_a_forked_child_draws_its_own_prefix() -> None:
    import os
    import re

    from appliance.core.ingest import new_event_id

    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in ids)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write_end, new_event_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.close(write_end)
    assert from_child[:16] != ids[0][:16]  # another process, another random prefix


def test_several_forwarded_for_headers_are_one_list_for_every_reader() -> None:
    """A client's own X-Forwarded-For line comes first; the trusted proxy's line is last and
    names the client. Ingest and the other readers (pixel, login throttling) agree."""
    from starlette.requests import Request

    from appliance.web.ingest import RequestHeaders
    from appliance.web.security import client_ip, forwarded_client

    raw = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-for", b"203.0.113.9")]
    scope = {"type": "http", "headers": raw, "client": ("10.0.0.1", 4000)}
    trusted = frozenset({"10.0.0.1"})
    assert client_ip(Request(scope), trusted) == "203.0.113.9"
    assert forwarded_client("10.0.0.1", RequestHeaders(raw).forwarded_for, trusted) == "203.0.113.9"
