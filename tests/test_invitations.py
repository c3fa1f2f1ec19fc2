"""Invitations and roles: an admin invites an email as viewer or admin (page or CLI), the
invitee signs up, and every route enforces the role."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from appliance.app import create_app
from tests.conftest import PASSWORD, Browser, event, make_appliance, make_client
from tests.servers import cli, server_env


def invite_from_page(admin: Browser, email: str, role: str = "viewer") -> httpx.Response:
    return admin.client.post(
        "/sites/example.com/members/invite",
        data={"csrf_token": admin.csrf(), "email": email, "role": role},
    )


def link_in(page: httpx.Response) -> str:
    match = re.search(
        r'<code id="invitation-link">http://testserver(/invitations/[^<]+)</code>', page.text
    )
    assert match, page.text
    return match.group(1)


def sign_up(client: TestClient, path: str, password: str = PASSWORD) -> httpx.Response:
    """Open the invitation link in a fresh browser and create the account."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        f"{path}/password",
        data={"csrf_token": token, "password": password, "password_confirm": password},
        follow_redirects=False,
    )


def member_browser(admin: Browser, email: str, role: str) -> Browser:
    """A second browser logged in as a new member with `role` on example.com."""
    path = link_in(invite_from_page(admin, email, role))
    invitee = make_client(admin.client.app)
    assert sign_up(invitee, path).status_code == 303
    return Browser(invitee)


def test_an_invitee_signs_up_with_a_password_and_joins_as_viewer(admin: Browser) -> None:
    page = invite_from_page(admin, "Viewer@Example.org")
    assert page.status_code == 200
    assert "Invited viewer@example.org as viewer" in page.text
    assert page.headers["cache-control"] == "no-store"
    path = link_in(page)
    # The members page lists the open invitation, without the link.
    members = admin.client.get("/sites/example.com/members")
    assert "viewer@example.org as viewer" in members.text and path not in members.text

    invitee = make_client(admin.client.app)
    landing = invitee.get(path)
    assert (
        "viewer@example.org is invited" in landing.text
        and "Create account and join" in landing.text
    )
    short = sign_up(invitee, path, password="short")
    assert short.status_code == 400 and "at least 10" in short.text
    response = sign_up(invitee, path)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    assert invitee.get("/api/domains").json()["domains"] == [
        {"domain": "example.com", "role": "viewer", "timezone": "UTC"}
    ]
    # Used once: the link is dead for everyone now.
    assert make_client(admin.client.app).get(path).status_code == 404
    members = admin.client.get("/sites/example.com/members")
    assert re.search(r"viewer@example.org</td>\s*<td>viewer</td>", members.text)


def test_a_viewer_reads_stats_but_cannot_manage_the_site(admin: Browser) -> None:
    viewer = member_browser(admin, "viewer@example.org", "viewer")
    client = viewer.client
    assert client.post("/api/events", json=event("/")).status_code == 202
    for path in (
        "/sites/example.com",
        "/sites/example.com/panels/kpis",
        "/sites/example.com/live",
        "/sites/example.com/export.csv?property=page",
        "/sites/example.com/settings",
        "/api/analytics/kpis?domain=example.com",
    ):
        assert client.get(path).status_code == 200, path
    settings = client.get("/sites/example.com/settings")
    assert "Manage members" not in settings.text and "Delete site" not in settings.text
    csrf = viewer.csrf()
    managing = [
        ("/sites/example.com/settings/timezone", {"timezone": "Europe/Berlin"}),
        ("/sites/example.com/delete", {"confirm": "example.com"}),
        ("/sites/example.com/members/invite", {"email": "friend@example.org", "role": "admin"}),
        ("/sites/example.com/members/1/remove", {}),
        ("/sites/example.com/members/1/role", {"role": "viewer"}),
        ("/sites/example.com/invitations/1/revoke", {}),
    ]
    for path, data in managing:
        response = client.post(path, data={"csrf_token": csrf} | data, follow_redirects=False)
        assert response.status_code == 403, path
    assert client.get("/sites/example.com/members").status_code == 403
    delete = client.delete("/api/domains/example.com", headers={"X-CSRF-Token": csrf})
    assert delete.status_code == 403 and "viewer may not" in delete.json()["error"]
    # Nothing changed.
    assert admin.client.get("/api/domains").json()["domains"][0]["timezone"] == "UTC"
    owner_view = admin.client.get("/sites/example.com/members").text
    assert "friend@example.org" not in owner_view


def test_an_admin_manages_the_site_and_members_but_not_the_owner(admin: Browser) -> None:
    site_admin = member_browser(admin, "second@example.org", "admin")
    client = site_admin.client
    saved = client.post(
        "/sites/example.com/settings/timezone",
        data={"csrf_token": site_admin.csrf(), "timezone": "Europe/Berlin"},
    )
    assert saved.status_code == 200 and "Time zone set" in saved.text
    invited = invite_from_page(site_admin, "third@example.org")
    assert "Invited third@example.org" in invited.text
    accounts = client.app.state.appliance.accounts
    owner_id = accounts.user_by_email("admin@example.com")[0].id
    for path, data in (
        (f"/sites/example.com/members/{owner_id}/remove", {}),
        (f"/sites/example.com/members/{owner_id}/role", {"role": "viewer"}),
    ):
        response = client.post(path, data={"csrf_token": site_admin.csrf()} | data)
        assert response.status_code == 400, path
    assert admin.client.get("/api/domains").json()["domains"][0]["role"] == "owner"
    # The owner demotes the admin: from then on, no managing.
    admin_id = accounts.user_by_email("second@example.org")[0].id
    demoted = admin.client.post(
        f"/sites/example.com/members/{admin_id}/role",
        data={"csrf_token": admin.csrf(), "role": "viewer"},
        follow_redirects=False,
    )
    assert demoted.status_code == 303
    assert client.get("/sites/example.com/members").status_code == 403
    removed = admin.client.post(
        f"/sites/example.com/members/{admin_id}/remove",
        data={"csrf_token": admin.csrf()},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert client.get("/api/domains").json() == {"domains": []}
    assert client.get("/sites/example.com").status_code == 404


def test_withdrawn_and_unknown_invitations_are_dead(admin: Browser) -> None:
    path = link_in(invite_from_page(admin, "late@example.org"))
    members = admin.client.get("/sites/example.com/members").text
    revoke = re.search(r'action="(/sites/example.com/invitations/\d+/revoke)"', members).group(1)
    admin.client.post(revoke, data={"csrf_token": admin.csrf()})
    fresh = make_client(admin.client.app)
    assert fresh.get(path).status_code == 404
    assert fresh.get("/invitations/inv_nonsense").status_code == 404
    assert admin.client.app.state.appliance.accounts.user_by_email("late@example.org") is None


def test_an_existing_account_joins_when_it_logs_in(admin: Browser) -> None:
    accounts = admin.client.app.state.appliance.accounts
    from appliance.core.accounts import hash_password  # noqa: PLC0415

    accounts.create_user("known@example.org", hash_password(PASSWORD), False)
    path = link_in(invite_from_page(admin, "known@example.org", "admin"))
    other = make_client(admin.client.app)
    assert "has an account here" in other.get(path).text
    assert Browser(other).login("known@example.org").status_code == 303
    assert other.get("/api/domains").json()["domains"][0]["role"] == "admin"


def test_a_logged_in_invitee_accepts_and_someone_else_cannot(admin: Browser) -> None:
    path = link_in(invite_from_page(admin, "admin@example.com"))  # the owner, for the test
    wrong = member_browser(admin, "viewer@example.org", "viewer")
    refused = wrong.client.post(f"{path}/accept", data={"csrf_token": wrong.csrf()})
    assert refused.status_code == 403 and "This invitation is for admin@example.com" in refused.text
    accepted = admin.client.post(
        f"{path}/accept", data={"csrf_token": admin.csrf()}, follow_redirects=False
    )
    assert accepted.status_code == 303  # the owner keeps the higher role
    assert admin.client.get("/api/domains").json()["domains"][0]["role"] == "owner"


def test_markup_in_an_invited_email_is_escaped(admin: Browser) -> None:
    page = invite_from_page(admin, "<b>x</b>@example.org")
    assert "<b>x</b>" not in page.text and "&lt;b&gt;x&lt;/b&gt;@example.org" in page.text
    bad_role = invite_from_page(admin, "ok@example.org", role="owner")
    assert bad_role.status_code == 400 and "role: must be one of" in bad_role.text


@pytest.mark.e2e
def test_the_cli_invites_and_the_link_works(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir)
    cli(env, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    cli(env, "site", "add", "example.com", "--owner", "owner@example.com")
    output = cli(env, "invite", "Friend@Example.org", "--site", "example.com", "--role", "admin")
    assert "invited friend@example.org to example.com as admin" in output
    link = output.strip().splitlines()[-1]
    assert link.startswith("http://127.0.0.1:8000/invitations/inv_")
    path = link.removeprefix("http://127.0.0.1:8000")
    with make_client(create_app(make_appliance(data_dir))) as client:
        assert sign_up(client, path).status_code == 303
        assert client.get("/api/domains").json()["domains"][0]["role"] == "admin"
