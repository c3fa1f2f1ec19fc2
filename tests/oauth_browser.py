"""What a browser does during a provider sign-in, split in steps so tests can meddle.

The appliance runs in-process (Starlette's TestClient, host `testserver`); the fake provider
is a real server on loopback. A browser follows the appliance's redirect to the provider
(real HTTP), which redirects back to the appliance's callback: each step is a function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2 as httpx
from starlette.testclient import TestClient

from appliance.app import create_app
from tests.conftest import Browser, make_appliance, make_client
from tests.fake_oauth import FakeAccount, FakeProvider

BINDING_COOKIE = "appliance_oauth"


def appliance_client(data_dir: Path, *settings: dict[str, Any], **overrides: Any) -> TestClient:
    """A browser on an in-process appliance configured with the providers' settings."""
    merged: dict[str, Any] = {}
    for section in settings:
        merged |= section
    app = create_app(make_appliance(data_dir, **merged, **overrides))
    return make_client(app, base_url="http://testserver")


def set_up_owner(client: TestClient) -> int:
    """The first admin (setup), owning example.com; logged out again. Returns the site id."""
    browser = Browser(client)
    assert browser.setup_admin("owner@example.com").status_code == 303
    assert browser.add_domain("example.com").status_code == 201
    client.cookies.clear()
    return client.app.state.appliance.accounts.all_sites()[0].id


def start(client: TestClient, provider: str) -> str:
    """Click "Sign in with ...": returns the provider's authorization URL."""
    response = client.get(f"/login/{provider}", follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def consent(authorize_url: str, fake: FakeProvider, account: FakeAccount | None) -> str:
    """The person signs in at the provider (None: they refuse); returns the callback URL."""
    fake.next_account = account
    response = httpx.get(authorize_url, follow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def sign_in(client: TestClient, fake: FakeProvider, account: FakeAccount | None) -> httpx.Response:
    """The whole round trip; returns the appliance's answer to the callback."""
    callback = consent(start(client, fake.flavour), fake, account)
    return client.get(callback, follow_redirects=False)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def with_query(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (a value of None removes one)."""
    parts = urlsplit(url)
    query = query_of(url) | changes
    kept = {key: value for key, value in query.items() if value is not None}
    return parts._replace(query=urlencode(kept)).geturl()


def has_session(response: httpx.Response) -> bool:
    return any(
        cookie.startswith("appliance_session=")
        for cookie in response.headers.get_list("set-cookie")
    )
