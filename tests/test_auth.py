"""Login, sessions, CSRF and who may see what."""

from __future__ import annotations

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from appliance.app import create_app
from appliance.core.accounts import hash_password, new_token, token_digest
from tests.conftest import PASSWORD, Browser, event, make_client

PROTECTED_PAGES = [
    "/dashboard",
    "/sites/example.com",
    "/sites/example.com/panels/kpis",
    "/sites/example.com/live",
    "/sites/example.com/export.csv?property=page",
    "/sites/example.com/settings",
    "/sites/example.com/members",
    "/account/two-factor",
]
PROTECTED_API = [
    ("GET", "/api/analytics/kpis?domain=example.com"),
    ("GET", "/api/analytics/timeseries?domain=example.com"),
    ("GET", "/api/analytics/top-pages?domain=example.com"),
    ("GET", "/api/analytics/breakdown?domain=example.com&property=browser"),
    ("GET", "/api/domains"),
    ("POST", "/api/domains"),
    ("DELETE", "/api/domains/example.com"),
]


def test_first_visit_leads_to_one_time_setup(browser: Browser) -> None:
    first = browser.client.get("/dashboard", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/setup"
    assert browser.setup_admin().headers["location"] == "/dashboard"
    assert browser.client.get("/dashboard").status_code == 200
    fresh = make_client(browser.client.app)
    # Setup is gone once an account exists, for everyone.
    assert fresh.get("/setup", follow_redirects=False).headers["location"] == "/login"
    assert Browser(fresh).setup_admin("intruder@example.com").headers["location"] == "/login"
    assert browser.client.app.state.appliance.accounts.user_by_email("intruder@example.com") is None


@pytest.mark.security
def test_setup_validates_and_escapes_input(browser: Browser) -> None:
    token = browser._token_from("/setup")
    response = browser.client.post(
        "/setup",
        data={
            "csrf_token": token,
            "email": "<script>alert(1)</script>",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert response.status_code == 400
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text
    short = browser.client.post(
        "/setup",
        data={
            "csrf_token": token,
            "email": "a@b.io",
            "password": "short",
            "password_confirm": "short",
        },
    )
    assert short.status_code == 400 and "at least 10" in short.text


@pytest.mark.security
def test_no_protected_route_answers_anonymously(client: TestClient) -> None:
    for method, path in PROTECTED_API:
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert "error" in response.json()
    for path in PROTECTED_PAGES:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] in ("/login", "/setup"), path
    for path in (
        "/sites/example.com/settings/timezone",
        "/sites/example.com/delete",
        "/sites/example.com/members/invite",
        "/sites/example.com/members/1/role",
        "/sites/example.com/members/1/remove",
        "/sites/example.com/invitations/1/revoke",
        "/account/two-factor/start",
        "/account/two-factor/confirm",
        "/account/two-factor/disable",
    ):
        assert client.post(path, follow_redirects=False).status_code == 303, path


@pytest.mark.security
def test_every_route_is_classified() -> None:
    """A new route must be added to the public list or be protected (checked above)."""
    import tempfile
    from pathlib import Path

    from tests.conftest import make_appliance  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as data:
        app = create_app(make_appliance(Path(data)))
    from appliance.web.ingest import IngestLane
    from appliance.web.metrics import INGEST_ROUTE

    paths = {route.path for route in app.routes if isinstance(route, Route)}
    # /api/events is answered ahead of the router, by the ingest lane middleware.
    paths |= {INGEST_ROUTE for layer in app.user_middleware if layer.cls is IngestLane}
    public = {
        "/api/events",
        "/api/pixel.gif",
        "/api/openapi.json",
        "/",
        "/login",
        "/login/password",
        "/logout",
        "/setup",
        "/healthz",
        "/readyz",  # names failing services only; the reasons go to the log
        "/metrics",  # METRICS.TOKEN as a bearer token (tests/test_ship_health.py)
        "/tracker.js",
        # The steps of a login (each checks its own single-use token) and invitation links
        # (the token in the path is the credential; accepting one needs a login).
        "/login/two-factor",
        "/login/two-factor/enrol",
        "/invitations/{token}",
        "/invitations/{token}/password",
        "/invitations/{token}/accept",
    }
    protected = {
        "/api/analytics/kpis", "/api/analytics/timeseries", "/api/analytics/top-pages",
        "/api/analytics/breakdown",
        "/api/domains", "/api/domains/{domain}", "/dashboard", "/dashboard/sites",
        "/sites/{domain}", "/sites/{domain}/panels/{panel}", "/sites/{domain}/live",
        "/sites/{domain}/export.csv", "/sites/{domain}/settings",
        "/sites/{domain}/settings/timezone", "/sites/{domain}/delete",
        "/sites/{domain}/members", "/sites/{domain}/members/invite",
        "/sites/{domain}/members/{user_id}/role", "/sites/{domain}/members/{user_id}/remove",
        "/sites/{domain}/invitations/{invitation_id}/revoke",
        "/account/two-factor", "/account/two-factor/start", "/account/two-factor/confirm",
        "/account/two-factor/disable",
    }  # fmt: skip
    assert paths == public | protected


@pytest.mark.security
def test_api_key_reads_stats_and_user_b_cannot_see_user_a(admin: Browser) -> None:
    accounts = admin.client.app.state.appliance.accounts
    other = accounts.create_user("b@example.com", hash_password(PASSWORD), False)
    key = new_token("ak")
    accounts.create_api_key(other.id, "test", token_digest(key))
    as_b = {"authorization": f"Bearer {key}"}
    client = make_client(admin.client.app)
    assert client.get("/api/domains", headers=as_b).json() == {"domains": []}
    for endpoint in ("kpis", "timeseries", "top-pages", "breakdown"):
        response = client.get(f"/api/analytics/{endpoint}?domain=example.com", headers=as_b)
        assert response.status_code == 404, endpoint
    assert client.delete("/api/domains/example.com", headers=as_b).status_code == 404
    assert (
        client.get(
            "/api/analytics/kpis?domain=example.com", headers={"authorization": "Bearer nope"}
        ).status_code
        == 401
    )
    # B adds a site of their own; A does not see it.
    assert (
        client.post("/api/domains", json={"domain": "b-site.org"}, headers=as_b).status_code == 201
    )
    assert [d["domain"] for d in admin.client.get("/api/domains").json()["domains"]] == [
        "example.com"
    ]
    assert admin.client.get("/api/analytics/kpis?domain=b-site.org").status_code == 404


@pytest.mark.security
def test_csrf_is_required_on_every_form_and_cookie_authenticated_write(admin: Browser) -> None:
    client = admin.client
    for path, data in (
        ("/logout", {}),
        ("/dashboard/sites", {"domain": "new.org"}),
        ("/login/password", {"email": "admin@example.com", "password": PASSWORD}),
        ("/setup", {"email": "x@y.io", "password": PASSWORD, "password_confirm": PASSWORD}),
    ):
        for token in (None, "forged"):
            payload = data | ({"csrf_token": token} if token else {})
            response = client.post(path, data=payload, follow_redirects=False)
            assert response.status_code == 403, (path, token)
    assert client.post("/api/domains", json={"domain": "new.org"}).status_code == 403
    assert client.delete("/api/domains/example.com").status_code == 403
    # Still logged in and nothing changed.
    assert [d["domain"] for d in client.get("/api/domains").json()["domains"]] == ["example.com"]


@pytest.mark.security
def test_login_rotates_session_and_logout_ends_it(admin: Browser) -> None:
    client = admin.client
    old_session = client.cookies["appliance_session"]
    client.post("/logout", data={"csrf_token": admin.csrf()}, follow_redirects=False)
    assert client.get("/api/domains").status_code == 401
    replay = make_client(client.app, cookies={"appliance_session": old_session})
    assert replay.get("/api/domains").status_code == 401  # the server forgot it
    wrong = admin.login("admin@example.com", "wrong password!")
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    unknown = admin.login("nobody@example.com")
    assert unknown.status_code == 401
    ok = admin.login("admin@example.com")
    assert ok.status_code == 303
    cookie = ok.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("appliance_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie  # plain http in tests; production sets Secure
    assert client.cookies["appliance_session"] != old_session
    assert client.get("/api/domains").status_code == 200


def test_dashboard_lists_sites_with_snippet_and_kpis(admin: Browser) -> None:
    client = admin.client
    client.post("/api/events", json=event("/"))
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "example.com" in page.text
    assert "&lt;script defer data-domain=&#34;example.com&#34;" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    panel = client.get("/sites/example.com/panels/kpis?period=today")
    assert panel.status_code == 200 and "Pageviews" in panel.text
    add = client.post(
        "/dashboard/sites", data={"csrf_token": admin.csrf(), "domain": "not a domain"}
    )
    assert add.status_code == 400 and "not a valid host name" in add.text
    added = client.post(
        "/dashboard/sites", data={"csrf_token": admin.csrf(), "domain": "https://Second.org/"}
    )
    assert added.status_code == 200 and "second.org" in added.text
    duplicate = admin.add_domain("second.org")
    assert duplicate.status_code == 409


def test_owner_deletes_site_and_its_data(admin: Browser) -> None:
    client = admin.client
    assert client.post("/api/events", json=event("/")).status_code == 202
    response = client.delete("/api/domains/example.com", headers={"X-CSRF-Token": admin.csrf()})
    assert response.status_code == 204
    assert client.get("/api/domains").json() == {"domains": []}
    assert client.post("/api/events", json=event("/")).status_code == 404
