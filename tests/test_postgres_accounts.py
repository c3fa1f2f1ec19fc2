"""The Postgres account store keeps the AccountStore contract exactly as the embedded one
does: the same calls on both give the same answers (users, sites, the sites version, keys,
sessions, salts, members, invitations, identities, two-factor records, challenges)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.core.accounts import AccountError, AlreadyExists
from plugins.store_postgres.accounts import PostgresAccountStore
from plugins.store_sqlite.accounts import SqliteAccountStore
from tests.postgres_server import database, fresh_database

NOW = 1_790_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        store: Any = SqliteAccountStore(tmp_path / "accounts.db")
        store.open()
        yield store
        store.close()
        return
    with fresh_database() as dsn:
        store = PostgresAccountStore(database(dsn))
        store.open()
        yield store
        store.close()


def test_users_sites_and_the_sites_version(accounts: Any) -> None:
    assert accounts.count_users() == 0
    admin = accounts.create_first_admin("admin@example.com", "hash")
    assert admin.is_admin and accounts.create_first_admin("late@example.com", "hash") is None
    with pytest.raises(AlreadyExists):
        accounts.create_user("admin@example.com", None, False)
    viewer = accounts.create_user("viewer@example.com", None, False)
    assert accounts.user_by_email("admin@example.com") == (admin, "hash")
    assert accounts.user_by_email("nobody@example.com") is None
    version = accounts.sites_version()
    site = accounts.create_site("b.example", admin.id)
    accounts.create_site("a.example", admin.id)
    assert accounts.sites_version() != version
    with pytest.raises(AlreadyExists):
        accounts.create_site("b.example", viewer.id)
    version = accounts.sites_version()
    accounts.set_site_timezone(site.id, "Europe/Berlin")
    assert accounts.sites_version() != version
    assert [m.site.domain for m in accounts.memberships(admin.id)] == ["a.example", "b.example"]
    membership = accounts.membership(admin.id, "b.example")
    assert (membership.role, membership.site.timezone) == ("owner", "Europe/Berlin")
    assert accounts.membership(viewer.id, "b.example") is None
    accounts.delete_site(site.id)
    assert [s.domain for s in accounts.all_sites()] == ["a.example"]


def test_keys_sessions_and_salts(accounts: Any) -> None:
    user = accounts.create_user("u@example.com", "hash", False)
    accounts.create_api_key(user.id, "ci", "digest-key")
    assert accounts.user_by_api_key("digest-key") == user
    assert accounts.user_by_api_key("other") is None
    accounts.create_login_session("digest-session", user.id, NOW + 60)
    assert accounts.user_by_login_session("digest-session", NOW) == user
    assert accounts.user_by_login_session("digest-session", NOW + 61) is None
    accounts.delete_login_session("digest-session")
    assert accounts.user_by_login_session("digest-session", NOW) is None
    first = accounts.salt_for_day("2026-09-21", b"a" * 32)
    assert accounts.salt_for_day("2026-09-21", b"b" * 32) == first == b"a" * 32
    accounts.salt_for_day("2026-09-22", b"c" * 32)
    accounts.salt_for_day("2026-09-23", b"d" * 32)  # keeps the newest two days
    assert accounts.salt_for_day("2026-09-22", b"e" * 32) == b"c" * 32


def test_members_and_invitations(accounts: Any) -> None:
    owner = accounts.create_user("owner@example.com", "hash", False)
    site = accounts.create_site("shop.example", owner.id)
    with pytest.raises(AccountError):
        accounts.create_invitation(site.id, "x@example.com", "owner", "d0", owner.id, NOW + 60)
    accounts.create_invitation(site.id, "new@example.com", "viewer", "d1", owner.id, NOW + 60)
    again = accounts.create_invitation(site.id, "new@example.com", "admin", "d2", None, NOW + 60)
    assert [(i.email, i.role) for i in accounts.open_invitations(site.id, NOW)] == [
        ("new@example.com", "admin")
    ]
    assert accounts.invitation_by_token("d1", NOW) is None  # replaced
    assert accounts.invitation_by_token("d2", NOW) == again
    assert accounts.invited_email("new@example.com", NOW)
    assert not accounts.invited_email("new@example.com", NOW + 61)
    member = accounts.create_user("new@example.com", None, False)
    assert accounts.accept_invitations(member.id, "new@example.com", NOW) == ["shop.example"]
    assert accounts.accept_invitations(member.id, "new@example.com", NOW) == []  # once only
    assert [(m.user.email, m.role) for m in accounts.site_members(site.id)] == [
        ("owner@example.com", "owner"), ("new@example.com", "admin")
    ]  # fmt: skip
    assert accounts.set_member_role(site.id, member.id, "viewer")
    assert not accounts.set_member_role(site.id, owner.id, "viewer")
    other = accounts.create_invitation(site.id, "z@example.com", "viewer", "d3", None, NOW + 60)
    assert accounts.revoke_invitation(site.id, other.id)
    assert not accounts.revoke_invitation(site.id, other.id)
    assert not accounts.remove_member(site.id, owner.id)
    assert accounts.remove_member(site.id, member.id)
    assert [m.role for m in accounts.site_members(site.id)] == ["owner"]


def test_identities_two_factor_challenges_and_throttling(accounts: Any) -> None:
    user = accounts.create_external_user("gh@example.com", "github", "42")
    assert accounts.user_by_identity("github", "42") == user
    with pytest.raises(AlreadyExists):
        accounts.create_external_user("gh@example.com", "google", "7")
    other = accounts.create_user("other@example.com", "hash", False)
    accounts.link_identity("google", "7", user.id, "gh@example.com")
    accounts.link_identity("google", "7", user.id, "gh@example.com")  # idempotent
    with pytest.raises(AlreadyExists):
        accounts.link_identity("google", "7", other.id, "other@example.com")

    assert accounts.totp_secret(user.id) is None
    assert accounts.start_totp_enrolment(user.id, "sealed-1")
    assert accounts.start_totp_enrolment(user.id, "sealed-2")  # replaces an unconfirmed one
    assert accounts.totp_secret(user.id) == ("sealed-2", False, 0)
    assert accounts.confirm_totp(user.id, 100, ["r1", "r2"], NOW)
    assert not accounts.confirm_totp(user.id, 101, ["r3"], NOW)
    assert not accounts.start_totp_enrolment(user.id, "sealed-3")
    assert accounts.use_totp_step(user.id, 101) and not accounts.use_totp_step(user.id, 101)
    assert accounts.use_recovery_code(user.id, "r1", NOW)
    assert not accounts.use_recovery_code(user.id, "r1", NOW)
    assert accounts.unused_recovery_codes(user.id) == 1
    accounts.delete_totp(user.id)
    assert accounts.totp_secret(user.id) is None and accounts.unused_recovery_codes(user.id) == 0

    accounts.create_login_challenge("c1", "oauth", '{"next": "/"}', NOW + 60)
    assert accounts.take_login_challenge("c1", "totp", NOW) is None  # wrong kind: gone too
    accounts.create_login_challenge("c2", "oauth", "{}", NOW + 60)
    assert accounts.take_login_challenge("c2", "oauth", NOW) == "{}"
    assert accounts.take_login_challenge("c2", "oauth", NOW) is None

    accounts.record_login_failure(["account:a", "ip:1"], NOW)
    accounts.record_login_failure(["account:a"], NOW + 1)
    assert accounts.login_failures(["account:a", "ip:1", "ip:2"], NOW) == {
        "account:a": 2, "ip:1": 1, "ip:2": 0
    }  # fmt: skip
    accounts.clear_login_failures("account:a")
    assert accounts.login_failures(["account:a"], 0) == {"account:a": 0}
