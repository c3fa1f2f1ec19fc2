"""Two-factor login for password accounts: enrolment with a QR code, the code step after the
password, single-use codes and recovery codes, and the admin setting that requires it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pyotp
import pytest
from starlette.testclient import TestClient

from appliance.app import create_app
from tests.conftest import PASSWORD, Browser, make_appliance, make_client

EMAIL = "admin@example.com"


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def secret_in(html: str) -> str:
    match = re.search(r'<code class="totp-key">([A-Z2-7]+)</code>', html)
    assert match, html
    return match.group(1)


def recovery_codes_in(html: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", html)


def code_for_next_step(secret: str) -> str:
    """A code no login has used yet: the enrolment used the current step's."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def enrol(browser: Browser) -> tuple[str, list[str]]:
    """Turn two-factor login on from the account page; returns the secret and codes."""
    client = browser.client
    page = client.post("/account/two-factor/start", data={"csrf_token": browser.csrf()})
    secret = secret_in(page.text)
    confirmed = client.post(
        "/account/two-factor/confirm",
        data={"csrf_token": csrf_in(page.text), "code": pyotp.TOTP(secret).now()},
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, recovery_codes_in(confirmed.text)


def password_step(client: TestClient, email: str = EMAIL) -> httpx.Response:
    client.cookies.clear()
    return Browser(client).login(email)


def code_step(client: TestClient, page: httpx.Response, code: str) -> httpx.Response:
    return client.post(
        "/login/two-factor",
        data={"csrf_token": csrf_in(page.text), "code": code},
        follow_redirects=False,
    )


@pytest.fixture
def enrolled(admin: Browser) -> Iterator[tuple[Browser, str, list[str]]]:
    secret, codes = enrol(admin)
    yield admin, secret, codes


def test_enrolment_shows_a_qr_code_and_needs_a_right_code(admin: Browser) -> None:
    client = admin.client
    before = client.get("/account/two-factor")
    assert "Two-factor login is <strong>off</strong>" in before.text
    page = client.post("/account/two-factor/start", data={"csrf_token": admin.csrf()})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert '<svg width="' in page.text and "<img" not in page.text  # inline, no request
    secret = secret_in(page.text)
    wrong = client.post(
        "/account/two-factor/confirm", data={"csrf_token": csrf_in(page.text), "code": "000000"}
    )
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert secret_in(wrong.text) == secret  # the same enrolment goes on
    right = client.post(
        "/account/two-factor/confirm",
        data={"csrf_token": csrf_in(page.text), "code": pyotp.TOTP(secret).now()},
    )
    codes = recovery_codes_in(right.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert right.headers["cache-control"] == "no-store"
    after = client.get("/account/two-factor")
    assert "Two-factor login is <strong>on</strong>. 10 recovery codes left" in after.text
    assert secret not in after.text
    # At rest, neither the secret nor the recovery codes are in the database file.
    database = (Path(client.app.state.appliance.settings.data_dir) / "accounts.db").read_bytes()
    wal = Path(client.app.state.appliance.settings.data_dir) / "accounts.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in stored
    assert not any(code.encode() in stored for code in codes)


def test_login_asks_for_the_code_after_the_password(
    enrolled: tuple[Browser, str, list[str]],
) -> None:
    browser, secret, _ = enrolled
    client = browser.client
    page = password_step(client)
    assert page.status_code == 200 and "authenticator app" in page.text
    assert "appliance_session" not in client.cookies  # no session before the code
    pending = next(
        c for c in page.headers.get_list("set-cookie") if c.startswith("appliance_pending_login=")
    )
    assert "HttpOnly" in pending and "Path=/login" in pending
    assert client.get("/api/domains").status_code == 401
    response = code_step(client, page, code_for_next_step(secret))
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert client.get("/api/domains").status_code == 200


def test_a_used_code_is_refused(enrolled: tuple[Browser, str, list[str]]) -> None:
    browser, secret, _ = enrolled
    client = browser.client
    code = code_for_next_step(secret)
    assert code_step(client, password_step(client), code).status_code == 303
    page = password_step(client)
    replayed = code_step(client, page, code)
    assert replayed.status_code == 401 and "used already" in replayed.text
    assert "appliance_session" not in client.cookies


def test_a_recovery_code_works_once(enrolled: tuple[Browser, str, list[str]]) -> None:
    browser, _, codes = enrolled
    client = browser.client
    typed = codes[3].upper().replace("-", " ")  # as someone might type it
    assert code_step(client, password_step(client), typed).status_code == 303
    assert "9 recovery codes left" in client.get("/account/two-factor").text
    page = password_step(client)
    reused = code_step(client, page, codes[3])
    assert reused.status_code == 401 and "appliance_session" not in client.cookies
    # Another, unused code still works from the same page (a fresh pending token was set).
    assert code_step(client, reused, codes[4]).status_code == 303


def test_the_code_step_cannot_be_skipped_replayed_or_guessed_forever(
    enrolled: tuple[Browser, str, list[str]],
) -> None:
    browser, secret, _ = enrolled
    client = browser.client
    page = password_step(client)
    pending = client.cookies["appliance_pending_login"]
    assert code_step(client, page, code_for_next_step(secret)).status_code == 303
    # The pending token worked once: replaying it gives no session.
    replay = make_client(client.app, cookies={"appliance_pending_login": pending})
    again = replay.post(
        "/login/two-factor",
        data={"csrf_token": Browser(replay)._token_from("/login"), "code": "123456"},
        follow_redirects=False,
    )
    assert again.status_code == 400 and "Enter your password again" in again.text
    # Wrong codes: after five, back to the password.
    page = password_step(client)
    for attempt in range(5):
        page = code_step(client, page, "000000")
        assert page.status_code == 401, attempt
    assert "Too many wrong codes" in page.text
    assert "appliance_pending_login" not in client.cookies
    assert code_step(client, page, code_for_next_step(secret)).status_code == 400


def test_turning_it_off_needs_a_code(enrolled: tuple[Browser, str, list[str]]) -> None:
    browser, _, codes = enrolled
    client = browser.client
    refused = client.post(
        "/account/two-factor/disable", data={"csrf_token": browser.csrf(), "code": "000000"}
    )
    assert refused.status_code == 400 and "<strong>on</strong>" in refused.text
    off = client.post(
        "/account/two-factor/disable", data={"csrf_token": browser.csrf(), "code": codes[0]}
    )
    assert off.status_code == 200 and "Two-factor login is off" in off.text
    assert password_step(client).status_code == 303  # the password alone again


def test_the_admin_setting_requires_enrolment_at_login(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data", auth_local={"require_two_factor": True})
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        page = browser.setup_admin(EMAIL)
        assert page.status_code == 200 and "requires a second step" in page.text
        assert "appliance_session" not in client.cookies
        secret = secret_in(page.text)
        done = client.post(
            "/login/two-factor/enrol",
            data={"csrf_token": csrf_in(page.text), "code": pyotp.TOTP(secret).now()},
            follow_redirects=False,
        )
        assert done.status_code == 200 and len(recovery_codes_in(done.text)) == 10
        assert client.get("/api/domains").status_code == 200
        settings_page = client.get("/account/two-factor")
        assert "Turn off" not in settings_page.text
        off = client.post(
            "/account/two-factor/disable", data={"csrf_token": browser.csrf(), "code": "x"}
        )
        assert off.status_code == 403
        page = password_step(client)
        assert "authenticator app" in page.text
        assert code_step(client, page, code_for_next_step(secret)).status_code == 303


def test_an_account_without_two_factor_logs_in_with_the_password(browser: Browser) -> None:
    assert browser.setup_admin().status_code == 303
    response = password_step(browser.client, "admin@example.com")
    assert response.status_code == 303 and PASSWORD


def test_wrong_codes_count_toward_the_login_throttle(tmp_path: Path) -> None:
    limits = {"max_failures_per_account": 3}
    with make_client(create_app(make_appliance(tmp_path / "data", auth_local=limits))) as client:
        browser = Browser(client)
        browser.setup_admin(EMAIL)
        secret, _ = enrol(browser)
        page = password_step(client)
        for _ in range(3):
            page = code_step(client, page, "000000")
        assert page.status_code == 401
        # The account is now throttled, at the code step (even a right code) and at the
        # password alike.
        assert code_step(client, page, code_for_next_step(secret)).status_code == 429
        locked = password_step(client)
        assert locked.status_code == 429 and "appliance_session" not in client.cookies
