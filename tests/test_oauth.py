"""Signing in with GitHub and Google against a fake provider on loopback: the flow's guards
(state bound to the browser, single use, PKCE) and who is let in."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from appliance.app import create_app
from appliance.core.accounts import hash_password
from appliance.core.invitations import invite
from appliance.core.settings import SettingsError
from appliance.web.oauth import BINDING_COOKIE
from tests.conftest import PASSWORD, Browser, make_appliance, make_client
from tests.fake_oauth import CLIENT_SECRET, FakeAccount, FakeProvider
from tests.oauth_browser import (
    appliance_client,
    consent,
    has_session,
    query_of,
    set_up_owner,
    sign_in,
    start,
    with_query,
)

ALICE = FakeAccount(subject="1001", email="alice@example.com")


@pytest.fixture(params=["github", "google"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as provider:
        yield provider


@pytest.fixture
def github() -> Iterator[FakeProvider]:
    with FakeProvider("github") as provider:
        yield provider


def client_for(tmp_path: Path, fake: FakeProvider, **allow: object) -> TestClient:
    return appliance_client(tmp_path / "data", fake.settings(**allow))


def accounts_of(client: TestClient):  # noqa: ANN201 (the account store)
    return client.app.state.appliance.accounts


def invite_email(client: TestClient, site_id: int, email: str, role: str = "viewer") -> None:
    portal = client.portal
    assert portal is not None
    portal.call(invite, accounts_of(client), site_id, email, role, None)


# --- settings ---------------------------------------------------------------------------


def test_providers_without_credentials_are_off_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not configured is the normal state of a fresh install: nothing to warn about."""
    with caplog.at_level(logging.WARNING):
        appliance = make_appliance(tmp_path / "data")
    assert [provider.id for provider in appliance.auth_providers] == ["password"]
    assert [record.getMessage() for record in caplog.records] == []
    with make_client(create_app(appliance)) as client:
        Browser(client).setup_admin()
        client.cookies.clear()
        page = client.get("/login")
        assert "Sign in with GitHub" not in page.text and "Sign in with Google" not in page.text
        assert client.get("/login/github", follow_redirects=False).status_code == 404


def test_half_set_credentials_are_a_warning_naming_the_missing_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        appliance = make_appliance(tmp_path / "data", auth_github={"client_id": "Iv1.abc"})
    assert [provider.id for provider in appliance.auth_providers] == ["password"]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "GitHub sign-in is off: AUTH_GITHUB.CLIENT_SECRET not set" in warning
    assert "APPLIANCE_AUTH_GITHUB__CLIENT_SECRET" in warning
    assert "Iv1.abc" not in warning


def test_configured_providers_show_a_button_and_secrets_stay_out_of_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeProvider("github") as gh, FakeProvider("google") as gg:
        with caplog.at_level(logging.DEBUG):
            client = appliance_client(tmp_path / "data", gh.settings(), gg.settings())
        with client:
            set_up_owner(client)
            page = client.get("/login")
            assert "Sign in with GitHub" in page.text and "Sign in with Google" in page.text
            assert 'href="/login/github"' in page.text
            assert CLIENT_SECRET not in page.text
            sign_in(client, gh, ALICE)  # refused: nobody invited Alice
    assert CLIENT_SECRET not in caplog.text


def test_a_malformed_endpoint_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="AUTH_GITHUB.TOKEN_URL: must be an https:// URL"):
        make_appliance(tmp_path / "data", auth_github={"token_url": "http://github.example/t"})
    with pytest.raises(SettingsError, match="AUTH_GOOGLE.ALLOWED_DOMAINS: must be a list"):
        make_appliance(tmp_path / "data", auth_google={"allowed_domains": "example.com"})


def test_before_setup_a_provider_leads_to_setup(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        response = client.get(f"/login/{fake.flavour}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/setup"
        assert fake.authorize_requests == []


# --- a successful sign-in -----------------------------------------------------------------


def test_an_invited_email_signs_in_and_joins_the_site(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake) as client:
        site_id = set_up_owner(client)
        invite_email(client, site_id, "alice@example.com")
        authorize_url = start(client, fake.flavour)
        request = query_of(authorize_url)
        assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) >= 43
        assert len(request["state"]) >= 20
        binding = client.cookies[BINDING_COOKIE]
        assert binding not in authorize_url  # the browser's half never leaves the browser
        if fake.flavour == "google":
            assert request["nonce"] and "openid" in request["scope"]
        response = client.get(consent(authorize_url, fake, ALICE), follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard"
        assert has_session(response)
        assert [r.outcome for r in fake.token_requests] == ["ok"]
        assert fake.token_requests[0].code_verifier  # PKCE verifier sent with the code
        domains = client.get("/api/domains").json()["domains"]
        assert domains == [{"domain": "example.com", "role": "viewer", "timezone": "UTC"}]
        user = accounts_of(client).user_by_identity(fake.flavour, "1001")
        assert user is not None and user.email == "alice@example.com"
        # The invitation is used up; signing in again finds the linked account.
        assert accounts_of(client).open_invitations(site_id, time.time()) == []
        client.cookies.clear()
        assert sign_in(client, fake, ALICE).status_code == 303
        assert accounts_of(client).count_users() == 2


def test_an_allowed_email_domain_signs_in_without_an_invitation(
    tmp_path: Path, fake: FakeProvider
) -> None:
    with client_for(tmp_path, fake, allowed_domains=["Example.com"]) as client:
        set_up_owner(client)
        response = sign_in(client, fake, ALICE)
        assert response.status_code == 303 and has_session(response)
        assert client.get("/api/domains").json() == {"domains": []}  # no site until invited
        other = sign_in(client, fake, FakeAccount("1002", "mallory@example.org"))
        assert other.status_code == 403 and not has_session(other)


def test_an_allowed_github_organization_signs_in(tmp_path: Path, github: FakeProvider) -> None:
    with client_for(tmp_path, github, allowed_organizations=["Acme"]) as client:
        set_up_owner(client)
        member = FakeAccount("1003", "bob@elsewhere.org", organizations=("other", "acme"))
        assert sign_in(client, github, member).status_code == 303
        outsider = FakeAccount("1004", "eve@elsewhere.org", organizations=("other",))
        refused = sign_in(client, github, outsider)
        assert refused.status_code == 403
        assert accounts_of(client).user_by_email("eve@elsewhere.org") is None
        assert "read:org" in github.authorize_requests[0]["scope"]


# --- who is refused -----------------------------------------------------------------------


def test_an_uninvited_email_is_refused_and_no_account_is_made(
    tmp_path: Path, fake: FakeProvider
) -> None:
    with client_for(tmp_path, fake) as client:
        set_up_owner(client)
        response = sign_in(client, fake, ALICE)
        assert response.status_code == 403
        assert "Sign-in refused" in response.text
        assert "alice@example.com is not invited" in response.text
        assert not has_session(response)
        assert accounts_of(client).user_by_email("alice@example.com") is None
        assert accounts_of(client).count_users() == 1
        assert client.get("/api/domains").status_code == 401


def test_an_unverified_email_is_refused(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        unverified = FakeAccount("1005", "alice@example.com", email_verified=False)
        response = sign_in(client, fake, unverified)
        assert response.status_code == 403 and "not verified" in response.text
        assert accounts_of(client).user_by_email("alice@example.com") is None


def test_a_refusal_at_the_provider_logs_nobody_in(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        response = sign_in(client, fake, None)  # the person clicked "Cancel"
        assert response.status_code == 403 and "access_denied" in response.text
        assert not has_session(response) and fake.token_requests == []


# --- linking ------------------------------------------------------------------------------


def test_an_existing_local_account_is_linked_not_duplicated(
    tmp_path: Path, fake: FakeProvider
) -> None:
    with client_for(tmp_path, fake) as client:
        set_up_owner(client)
        accounts = accounts_of(client)
        local = accounts.create_user("alice@example.com", hash_password(PASSWORD), False)
        response = sign_in(client, fake, FakeAccount("1001", "Alice@Example.com"))
        assert response.status_code == 303
        assert accounts.count_users() == 2
        assert accounts.user_by_identity(fake.flavour, "1001") == local
        # Once linked, the provider account signs in even after its email changed there,
        # and the password still works too.
        client.cookies.clear()
        renamed = sign_in(client, fake, FakeAccount("1001", "alice@new-employer.org"))
        assert renamed.status_code == 303
        assert client.get("/api/domains").status_code == 200
        client.cookies.clear()
        assert Browser(client).login("alice@example.com").status_code == 303
        assert accounts.count_users() == 2


# --- the state and PKCE guards ------------------------------------------------------------


def test_a_replayed_state_is_refused(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        callback = consent(start(client, fake.flavour), fake, ALICE)
        binding = client.cookies[BINDING_COOKIE]
        assert client.get(callback, follow_redirects=False).status_code == 303
        # The same callback again, from a browser holding the same binding cookie.
        replay = make_client(client.app, cookies={BINDING_COOKIE: binding})
        response = replay.get(callback, follow_redirects=False)
        assert response.status_code == 400 and "already used" in response.text
        assert not has_session(response)
        assert len(fake.token_requests) == 1  # the provider was not even asked


def test_a_missing_state_is_refused(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        callback = consent(start(client, fake.flavour), fake, ALICE)
        for url in (with_query(callback, state=None), with_query(callback, state="")):
            response = client.get(url, follow_redirects=False)
            assert response.status_code == 400 and not has_session(response)
        assert fake.token_requests == []
        assert accounts_of(client).user_by_email("alice@example.com") is None


def test_a_state_from_another_browser_is_refused(tmp_path: Path, fake: FakeProvider) -> None:
    """Login CSRF: the attacker's own callback URL, opened in the victim's browser."""
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as attacker:
        set_up_owner(attacker)
        attackers_callback = consent(start(attacker, fake.flavour), fake, ALICE)
        victim = make_client(attacker.app)
        start(victim, fake.flavour)  # the victim has a binding cookie of their own...
        response = victim.get(attackers_callback, follow_redirects=False)
        assert response.status_code == 400 and "another browser" in response.text
        assert not has_session(response)
        cookieless = make_client(attacker.app).get(attackers_callback, follow_redirects=False)
        assert cookieless.status_code == 400 and not has_session(cookieless)
        assert fake.token_requests == []


def test_a_forged_state_is_refused(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        callback = consent(start(client, fake.flavour), fake, ALICE)
        response = client.get(with_query(callback, state="x" * 30), follow_redirects=False)
        assert response.status_code == 400 and not has_session(response)


def test_a_code_redeemed_with_another_pkce_verifier_is_refused(
    tmp_path: Path, fake: FakeProvider
) -> None:
    """An intercepted code injected into another browser's flow: that flow's verifier does
    not match the code's challenge, so the provider refuses the exchange."""
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as victim:
        set_up_owner(victim)
        stolen_code = query_of(consent(start(victim, fake.flavour), fake, ALICE))["code"]
        attacker = make_client(victim.app)
        own_callback = consent(start(attacker, fake.flavour), fake, None)
        injected = with_query(own_callback, code=stolen_code, error=None)
        response = attacker.get(injected, follow_redirects=False)
        assert response.status_code == 403 and "did not confirm" in response.text
        assert not has_session(response)
        assert [r.outcome for r in fake.token_requests] == [
            "invalid_grant: PKCE verifier does not match"
        ]
        assert accounts_of(victim).user_by_email("alice@example.com") is None


def test_the_state_expires(tmp_path: Path, fake: FakeProvider) -> None:
    with client_for(tmp_path, fake, allowed_domains=["example.com"]) as client:
        set_up_owner(client)
        callback = consent(start(client, fake.flavour), fake, ALICE)
        with accounts_of(client).db.transaction() as conn:  # ten minutes pass
            conn.execute("UPDATE login_challenges SET expires_at = expires_at - 601")
        response = client.get(callback, follow_redirects=False)
        assert response.status_code == 400 and not has_session(response)
        assert fake.token_requests == []
