"""Every non-public route from the routing table, asked by nobody, by another tenant and by a
viewer: 401/303, 404 and 403 as appropriate, and no data of the site in the answer.

A route that is neither in PUBLIC nor in one of the tables below fails the test: a new route
must be classified here before it can land.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.routing import Route

from appliance.core.accounts import hash_password
from tests.conftest import PASSWORD, Browser, event, make_client, wait_for

pytestmark = pytest.mark.security

SECRET_PATH = "/only-the-owner-may-know-this-page"
# Public, or guarded by their own single-use token (checked in their own tests; /metrics
# by METRICS.TOKEN, in test_ship_health.py).
PUBLIC = {
    "/api/events", "/api/pixel.gif", "/api/openapi.json", "/", "/login", "/login/password",
    "/logout", "/setup", "/healthz", "/readyz", "/metrics", "/tracker.js", "/login/two-factor",
    "/login/two-factor/enrol", "/invitations/{token}", "/invitations/{token}/password",
    "/invitations/{token}/accept",
}  # fmt: skip
# The caller's own account: any logged-in user, nobody else.
ACCOUNT = {
    "/dashboard": ["GET"], "/dashboard/sites": ["POST"], "/api/domains": ["GET", "POST"],
    "/account/two-factor": ["GET"], "/account/two-factor/start": ["POST"],
    "/account/two-factor/confirm": ["POST"], "/account/two-factor/disable": ["POST"],
}  # fmt: skip
# Site-scoped: (method, concrete path, needs an admin role)
SITE = {
    "/api/analytics/kpis": [("GET", "/api/analytics/kpis?domain=example.com", False)],
    "/api/analytics/timeseries": [("GET", "/api/analytics/timeseries?domain=example.com", False)],
    "/api/analytics/top-pages": [("GET", "/api/analytics/top-pages?domain=example.com", False)],
    "/api/analytics/breakdown": [
        ("GET", "/api/analytics/breakdown?domain=example.com&property=page", False)
    ],
    "/api/domains/{domain}": [("DELETE", "/api/domains/example.com", True)],
    "/sites/{domain}": [("GET", "/sites/example.com", False)],
    "/sites/{domain}/panels/{panel}": [("GET", "/sites/example.com/panels/pages", False)],
    "/sites/{domain}/live": [("GET", "/sites/example.com/live", False)],
    "/sites/{domain}/export.csv": [("GET", "/sites/example.com/export.csv?property=page", False)],
    "/sites/{domain}/settings": [("GET", "/sites/example.com/settings", False)],
    "/sites/{domain}/settings/timezone": [("POST", "/sites/example.com/settings/timezone", True)],
    "/sites/{domain}/delete": [("POST", "/sites/example.com/delete", True)],
    "/sites/{domain}/members": [("GET", "/sites/example.com/members", True)],
    "/sites/{domain}/members/invite": [("POST", "/sites/example.com/members/invite", True)],
    "/sites/{domain}/members/{user_id}/role": [("POST", "/sites/example.com/members/1/role", True)],
    "/sites/{domain}/members/{user_id}/remove": [
        ("POST", "/sites/example.com/members/1/remove", True)
    ],
    "/sites/{domain}/invitations/{invitation_id}/revoke": [
        ("POST", "/sites/example.com/invitations/1/revoke", True)
    ],
}


def routes_of(app: Any) -> set[str]:
    return {route.path for route in app.routes if isinstance(route, Route)}


def test_every_route_is_classified(client: Any) -> None:
    unclassified = routes_of(client.app) - PUBLIC - set(ACCOUNT) - set(SITE)
    assert unclassified == set(), f"classify these routes in {__file__}: {sorted(unclassified)}"


def _as(client: Any, email: str) -> Browser:
    browser = Browser(make_client(client.app))
    assert browser.login(email).status_code == 303
    return browser


def _ask(browser: Browser | None, client: Any, method: str, path: str) -> Any:
    http = browser.client if browser else make_client(client.app)
    data = {"csrf_token": browser.csrf()} if browser and method == "POST" else None
    headers = {"x-csrf-token": browser.csrf()} if browser and method == "DELETE" else {}
    return http.request(method, path, data=data, headers=headers, follow_redirects=False)


def test_nobody_other_tenants_and_viewers_get_nothing_they_should_not(admin: Browser) -> None:
    client = admin.client
    appliance = client.app.state.appliance
    accounts = appliance.accounts
    client.post("/api/events", json=event(SECRET_PATH))
    wait_for(lambda: appliance.processor.stats.events == 1)
    accounts.create_user("tenant@example.org", hash_password(PASSWORD), False)
    viewer = accounts.create_user("viewer@example.org", hash_password(PASSWORD), False)
    site = accounts.membership(1, "example.com").site
    accounts.create_invitation(
        site.id, "viewer@example.org", "viewer", "digest", 1, time.time() + 60
    )
    accounts.accept_invitations(viewer.id, "viewer@example.org", time.time())
    tenant, viewing = _as(client, "tenant@example.org"), _as(client, "viewer@example.org")
    checked = 0
    for template, requests in SITE.items():
        for method, path, needs_admin in requests:
            anonymous = _ask(None, client, method, path)
            if path.startswith("/api/"):
                assert anonymous.status_code == 401, (path, anonymous.status_code)
            else:
                assert anonymous.status_code == 303, (path, anonymous.status_code)
                assert anonymous.headers["location"] == "/login"
            other = _ask(tenant, client, method, path)
            assert other.status_code == 404, (template, "another tenant", other.status_code)
            assert (
                SECRET_PATH not in other.text
                and "example.com" not in other.text.replace("You have no site by that name.", "")
                or path.startswith("/api/")
            )
            as_viewer = _ask(viewing, client, method, path)
            if needs_admin:
                assert as_viewer.status_code == 403, (template, "viewer", as_viewer.status_code)
                assert SECRET_PATH not in as_viewer.text
            else:
                assert as_viewer.status_code == 200, (template, "viewer", as_viewer.status_code)
            checked += 1
    for path, methods in ACCOUNT.items():
        for method in methods:
            response = _ask(None, client, method, path)
            assert response.status_code in (303, 401, 403), (path, method, response.status_code)
    # The site is still there, untouched by all of the above.
    assert [d["domain"] for d in client.get("/api/domains").json()["domains"]] == ["example.com"]
    assert checked == sum(len(requests) for requests in SITE.values())
