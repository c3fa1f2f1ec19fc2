"""Shared fixtures: an appliance on a temp data dir, served in-process or as a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from appliance.app import create_app
from appliance.core.runtime import Appliance
from tests.processes import Processes

# Shared fixtures kept in their own modules (the `chromium` browser, ...).
pytest_plugins = ["tests.browser"]

PASSWORD = "correct horse battery staple"
# The bot filter drops test clients' own user agents ("testclient", "python-httpx/...").
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)


def make_client(app: Any, **kwargs: Any) -> TestClient:
    """A TestClient that looks like a real browser to the bot filter."""
    headers = {"user-agent": BROWSER_UA} | kwargs.pop("headers", {})
    return TestClient(app, headers=headers, **kwargs)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No APPLIANCE_* from the developer's shell, no third-party plugins, cwd in a temp dir."""
    for key in list(os.environ):
        if key.startswith("APPLIANCE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("APPLIANCE_PLUGINS__AUTOLOAD", "false")
    monkeypatch.chdir(tmp_path)


def make_appliance(
    data_dir: Path, extra_plugins: tuple[Any, ...] = (), **overrides: Any
) -> Appliance:
    return Appliance.create(extra_plugins=extra_plugins, data_dir=str(data_dir), **overrides)


@pytest.fixture
def appliance(tmp_path: Path) -> Appliance:
    return make_appliance(tmp_path / "data")


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient]:
    with make_client(create_app(appliance), base_url="http://testserver") as test_client:
        yield test_client


class Browser:
    """A logged-in (or not) browser: keeps cookies and fills CSRF tokens into forms."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def csrf(self) -> str:
        return self._token_from("/dashboard" if self.logged_in() else "/login")

    def logged_in(self) -> bool:
        return "appliance_session" in self.client.cookies

    def setup_admin(self, email: str = "admin@example.com") -> httpx.Response:
        token = self._token_from("/setup")
        return self.client.post(
            "/setup",
            data={
                "csrf_token": token,
                "email": email,
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
            follow_redirects=False,
        )

    def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        token = self._token_from("/login")
        return self.client.post(
            "/login/password",
            data={"csrf_token": token, "email": email, "password": password},
            follow_redirects=False,
        )

    def add_domain(self, domain: str) -> httpx.Response:
        return self.client.post(
            "/api/domains", json={"domain": domain}, headers={"X-CSRF-Token": self.csrf()}
        )

    def _token_from(self, path: str) -> str:
        page = self.client.get(path)
        marker = 'name="csrf_token" value="'
        start = page.text.index(marker) + len(marker)
        return page.text[start : page.text.index('"', start)]


@pytest.fixture
def browser(client: TestClient) -> Browser:
    return Browser(client)


@pytest.fixture
def admin(browser: Browser) -> Browser:
    """A browser logged in as the first admin, owning example.com."""
    assert browser.setup_admin().status_code == 303
    assert browser.add_domain("example.com").status_code == 201
    return browser


def event(path: str = "/", domain: str = "example.com", **fields: Any) -> dict[str, Any]:
    return {"domain": domain, "path": path, **fields}


def random_ip() -> str:
    return f"10.{secrets.randbelow(255)}.{secrets.randbelow(255)}.{secrets.randbelow(254) + 1}"


def wait_for(predicate: Any, timeout_s: float = 2.0, interval_s: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout_s`."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `appliance ...` in a subprocess, its output in tmp_path/<log>; killed at the end."""
    processes = Processes(tmp_path)
    yield processes.start
    processes.close()
