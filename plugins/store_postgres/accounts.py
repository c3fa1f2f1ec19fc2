"""The shared account store: users, sites, memberships, keys, sessions and salts in Postgres.

Invitations, identities, two-factor secrets and login challenges are in `sign_in.py`. Every
app instance pointing at the database sees the same accounts and domains; a trigger
bumps `sites_version` on any change of `sites`, which each instance's domain cache polls.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from appliance.core.accounts import AlreadyExists, Membership, Site, User
from plugins.store_postgres.db import Database
from plugins.store_postgres.migrate import migrate
from plugins.store_postgres.sign_in import SignInRecords

SALT_DAYS_KEPT = 2  # as the embedded store: older salts are deleted, so old ids can't be linked
_SITE = "sites.id, sites.domain, sites.timezone, sites.enabled"


def _user(row: tuple[Any, ...]) -> User:
    return User(id=row[0], email=row[1], is_admin=row[2])


def _site(row: tuple[Any, ...]) -> Site:
    return Site(id=row[0], domain=row[1], timezone=row[2], enabled=row[3])


class PostgresAccountStore(SignInRecords):
    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self) -> None:
        self.db.open()
        try:
            migrate(self.db, "accounts")
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    # --- users ---------------------------------------------------------------------

    def count_users(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM users").fetchone()
        return row[0] if row else 0

    def create_user(self, email: str, password_hash: str | None, is_admin: bool) -> User:
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "INSERT INTO users (email, password_hash, is_admin, created_at)"
                    " VALUES (%s, %s, %s, %s) RETURNING id",
                    (email, password_hash, is_admin, time.time()),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"email: {email} already has an account") from None
        assert row is not None
        return User(id=row[0], email=email, is_admin=is_admin)

    def create_first_admin(self, email: str, password_hash: str) -> User | None:
        """Create the first account, as admin, only while there is none (setup races lose:
        the table lock makes a second instance's setup wait, then find the first user)."""
        with self.db.connection() as conn:
            conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            if conn.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone() == (True,):
                return None
            row = conn.execute(
                "INSERT INTO users (email, password_hash, is_admin, created_at)"
                " VALUES (%s, %s, true, %s) RETURNING id",
                (email, password_hash, time.time()),
            ).fetchone()
        assert row is not None
        return User(id=row[0], email=email, is_admin=True)

    def user_by_email(self, email: str) -> tuple[User, str | None] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT id, email, is_admin, password_hash FROM users WHERE email = %s", (email,)
            ).fetchone()
        return (_user(row), row[3]) if row else None

    # --- sites ---------------------------------------------------------------------

    def create_site(self, domain: str, owner_id: int) -> Site:
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "INSERT INTO sites (domain, created_at) VALUES (%s, %s) RETURNING id",
                    (domain, time.time()),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO memberships (site_id, user_id, role) VALUES (%s, %s, 'owner')",
                    (row[0], owner_id),
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"domain: {domain} is already registered") from None
        return Site(id=row[0], domain=domain)

    def delete_site(self, site_id: int) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM sites WHERE id = %s", (site_id,))

    def set_site_timezone(self, site_id: int, timezone: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE sites SET timezone = %s WHERE id = %s", (timezone, site_id))

    def all_sites(self) -> list[Site]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {_SITE} FROM sites WHERE enabled").fetchall()
        return [_site(row) for row in rows]

    def sites_version(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT version FROM sites_version WHERE id = 1").fetchone()
        assert row is not None
        return row[0]

    def memberships(self, user_id: int) -> list[Membership]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_SITE}, memberships.role FROM sites"
                " JOIN memberships ON memberships.site_id = sites.id"
                ' WHERE memberships.user_id = %s ORDER BY sites.domain COLLATE "C"',
                (user_id,),
            ).fetchall()
        return [Membership(site=_site(row), role=row[4]) for row in rows]

    def membership(self, user_id: int, domain: str) -> Membership | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_SITE}, memberships.role FROM sites"
                " JOIN memberships ON memberships.site_id = sites.id"
                " WHERE memberships.user_id = %s AND sites.domain = %s",
                (user_id, domain),
            ).fetchone()
        return Membership(site=_site(row), role=row[4]) if row else None

    # --- API keys and login sessions -------------------------------------------------

    def create_api_key(self, user_id: int, name: str, digest: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO api_keys (user_id, name, token_digest, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (user_id, name, digest, time.time()),
            )

    def user_by_api_key(self, digest: str) -> User | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT users.id, users.email, users.is_admin FROM users"
                " JOIN api_keys ON api_keys.user_id = users.id WHERE api_keys.token_digest = %s",
                (digest,),
            ).fetchone()
        return _user(row) if row else None

    def create_login_session(self, digest: str, user_id: int, expires_at: float) -> None:
        now = time.time()
        with self.db.connection() as conn:
            conn.execute("DELETE FROM login_sessions WHERE expires_at < %s", (now,))
            conn.execute(
                "INSERT INTO login_sessions (token_digest, user_id, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (digest, user_id, now, expires_at),
            )

    def user_by_login_session(self, digest: str, now: float) -> User | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT users.id, users.email, users.is_admin FROM users"
                " JOIN login_sessions ON login_sessions.user_id = users.id"
                " WHERE login_sessions.token_digest = %s AND login_sessions.expires_at > %s",
                (digest, now),
            ).fetchone()
        return _user(row) if row else None

    def delete_login_session(self, digest: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM login_sessions WHERE token_digest = %s", (digest,))

    # --- visitor-id salts ------------------------------------------------------------

    def salt_for_day(self, day: str, candidate: bytes) -> bytes:
        """The day's salt; the first instance to ask stores its candidate, the others get it."""
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO visitor_salts (day, salt) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (day, candidate),
            )
            conn.execute(
                "DELETE FROM visitor_salts WHERE day NOT IN"
                " (SELECT day FROM visitor_salts ORDER BY day DESC LIMIT %s)",
                (SALT_DAYS_KEPT,),
            )
            row = conn.execute("SELECT salt FROM visitor_salts WHERE day = %s", (day,)).fetchone()
        assert row is not None
        return bytes(row[0])
