"""Google's ID token is checked: signature (JWKS from discovery), issuer, audience, expiry,
nonce. A token failing any check logs nobody in and creates nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_oauth import FakeAccount, FakeProvider
from tests.oauth_browser import appliance_client, has_session, set_up_owner, sign_in

ALICE = FakeAccount(subject="google-alice", email="alice@example.com")


@pytest.fixture
def google() -> Iterator[FakeProvider]:
    with FakeProvider("google") as provider:
        yield provider


@pytest.mark.parametrize(
    ("changes", "unknown_key"),
    [
        pytest.param({"nonce": "not-the-one-sent"}, False, id="another nonce"),
        pytest.param({"nonce": None}, False, id="no nonce"),
        pytest.param({"aud": "someone-elses-client"}, False, id="another audience"),
        pytest.param(
            {"aud": ["someone-elses-client"], "azp": "fake-client-id"},
            False,
            id="another audience with our azp",
        ),  # fmt: skip
        pytest.param({"iss": "https://accounts.example.org"}, False, id="another issuer"),
        pytest.param({"exp": int(time.time()) - 3600}, False, id="expired"),
        pytest.param({"exp": None}, False, id="no expiry"),
        pytest.param({}, True, id="signed with a key not in the JWKS"),
    ],
)
def test_a_bad_id_token_is_refused(
    tmp_path: Path, google: FakeProvider, changes: dict[str, Any], unknown_key: bool
) -> None:
    google.id_token_changes = changes
    google.sign_with_unknown_key = unknown_key
    with appliance_client(
        tmp_path / "data", google.settings(allowed_domains=["example.com"])
    ) as client:
        set_up_owner(client)
        response = sign_in(client, google, ALICE)
        assert response.status_code == 403, response.text
        assert "Google did not confirm the sign-in" in response.text
        assert not has_session(response)
        accounts = client.app.state.appliance.accounts
        assert accounts.user_by_email("alice@example.com") is None
        assert [r.outcome for r in google.token_requests] == ["ok"]  # the exchange worked


def test_a_good_id_token_signs_in(tmp_path: Path, google: FakeProvider) -> None:
    with appliance_client(
        tmp_path / "data", google.settings(allowed_domains=["example.com"])
    ) as client:
        set_up_owner(client)
        response = sign_in(client, google, ALICE)
        assert response.status_code == 303 and has_session(response)
        user = client.app.state.appliance.accounts.user_by_identity("google", "google-alice")
        assert user is not None and user.email == "alice@example.com"


def test_google_out_of_reach_is_a_clear_page(tmp_path: Path) -> None:
    with FakeProvider("google") as gone:
        settings = gone.settings()
    # The fake has stopped: discovery cannot be read.
    with appliance_client(tmp_path / "data", settings) as client:
        set_up_owner(client)
        response = client.get("/login/google", follow_redirects=False)
        assert response.status_code == 502 and "Google cannot be reached" in response.text
