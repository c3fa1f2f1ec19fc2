"""Password guessing is throttled per account and per client IP (429 with Retry-After),
without telling registered emails from unknown ones by answer or by time."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from appliance.app import create_app
from tests.conftest import PASSWORD, Browser, make_appliance, make_client

pytestmark = pytest.mark.security


def throttled_client(tmp_path: Path, **limits: int) -> TestClient:
    settings = {"max_failures_per_account": 3, "max_failures_per_ip": 100} | limits
    appliance = make_appliance(tmp_path / "data", auth_local=settings)
    return make_client(create_app(appliance))


def from_ip(client: TestClient, ip: str) -> Browser:
    """A browser whose requests come from `ip` (as a trusted proxy would say)."""
    client.app.state.trusted_proxies = frozenset({"testclient"})
    client.headers["x-forwarded-for"] = ip
    return Browser(client)


def test_an_account_is_locked_after_repeated_failures(tmp_path: Path) -> None:
    with throttled_client(tmp_path) as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        client.cookies.clear()
        for _ in range(3):
            assert browser.login("admin@example.com", "wrong password!").status_code == 401
        locked = browser.login("admin@example.com")  # even the right password now
        assert locked.status_code == 429
        assert "Too many failed logins" in locked.text
        assert int(locked.headers["retry-after"]) == 900
        assert "appliance_session" not in client.cookies
        # Another account from the same address is not affected.
        accounts = client.app.state.appliance.accounts
        from appliance.core.accounts import hash_password  # noqa: PLC0415

        accounts.create_user("other@example.com", hash_password(PASSWORD), False)
        assert browser.login("other@example.com").status_code == 303
        # Once the window has passed, the right password works again.
        with accounts.db.transaction() as conn:
            conn.execute("UPDATE login_failures SET at = at - 901")
        client.cookies.clear()
        assert browser.login("admin@example.com").status_code == 303


def test_an_unknown_email_is_throttled_the_same_way(tmp_path: Path) -> None:
    with throttled_client(tmp_path) as client:
        browser = Browser(client)
        browser.setup_admin()
        client.cookies.clear()
        answers = [browser.login("nobody@example.com").status_code for _ in range(4)]
        assert answers == [401, 401, 401, 429]


def test_an_address_is_throttled_across_accounts(tmp_path: Path) -> None:
    with throttled_client(tmp_path, max_failures_per_ip=5) as client:
        Browser(client).setup_admin()
        client.cookies.clear()
        attacker = from_ip(client, "203.0.113.9")
        answers = [attacker.login(f"guess{i}@example.com").status_code for i in range(6)]
        assert answers == [401] * 5 + [429]
        assert attacker.login("admin@example.com").status_code == 429
        # Someone else, elsewhere, logs in.
        assert from_ip(client, "198.51.100.7").login("admin@example.com").status_code == 303
    # The count is kept per keyed pseudonym of the address, never the address itself.
    stored = b"".join(path.read_bytes() for path in (tmp_path / "data").glob("*.db*"))
    assert b"203.0.113.9" not in stored
    pseudonym = client.app.state.appliance.address_pseudonym("203.0.113.9")
    assert f"ip:{pseudonym}".encode() in stored


def test_a_good_login_clears_the_account_count(tmp_path: Path) -> None:
    with throttled_client(tmp_path) as client:
        browser = Browser(client)
        browser.setup_admin()
        for _ in range(2):
            client.cookies.clear()
            assert browser.login("admin@example.com", "wrong password!").status_code == 401
            assert browser.login("admin@example.com").status_code == 303
        client.cookies.clear()
        assert browser.login("admin@example.com", "wrong password!").status_code == 401


def test_known_and_unknown_emails_take_the_same_time(tmp_path: Path) -> None:
    with throttled_client(tmp_path, max_failures_per_account=100) as client:
        browser = Browser(client)
        browser.setup_admin()
        client.cookies.clear()
        csrf = browser._token_from("/login")

        def attempt(email: str) -> float:
            started = time.perf_counter()
            response = client.post(
                "/login/password",
                data={"csrf_token": csrf, "email": email, "password": "wrong password!"},
            )
            assert response.status_code == 401
            return time.perf_counter() - started

        known, unknown = [], []
        for i in range(5):
            known.append(attempt("admin@example.com"))
            unknown.append(attempt(f"nobody{i}@example.com"))
        ratio = statistics.median(known) / statistics.median(unknown)
        assert 0.6 < ratio < 1.6, (known, unknown)


@pytest.mark.parametrize("limit", [0, "many"])
def test_bad_limits_stop_start_up(tmp_path: Path, limit: object) -> None:
    from appliance.core.settings import SettingsError  # noqa: PLC0415

    with pytest.raises(SettingsError, match="AUTH_LOCAL.MAX_FAILURES_PER_ACCOUNT"):
        make_appliance(tmp_path / "data", auth_local={"max_failures_per_account": limit})
