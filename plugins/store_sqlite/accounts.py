"""The embedded account store: users, sites, memberships, keys and sessions in SQLite.

Invitations, identities, two-factor secrets and login challenges are in `sign_in.py`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from appliance.core.accounts import AlreadyExists, Membership, Site, User
from plugins.store_sqlite.db import Database, migrate
from plugins.store_sqlite.sign_in import SignInRecords

MIGRATIONS = Path(__file__).parent / "migrations" / "accounts"
SALT_DAYS_KEPT = 2  # today and yesterday: older salts are deleted, so old ids can't be linked


def _user(row: sqlite3.Row) -> User:
    return User(id=row["id"], email=row["email"], is_admin=bool(row["is_admin"]))


def _site(row: sqlite3.Row) -> Site:
    return Site(
        id=row["id"], domain=row["domain"], timezone=row["timezone"], enabled=bool(row["enabled"])
    )


class SqliteAccountStore(SignInRecords):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("account store is not open")
        return self._db

    def open(self) -> None:
        self._db = Database(self.path)
        migrate(self._db, MIGRATIONS)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- users ---------------------------------------------------------------------

    def count_users(self) -> int:
        with self.db.locked() as conn:
            return conn.execute("SELECT count(*) FROM users").fetchone()[0]

    def create_user(self, email: str, password_hash: str | None, is_admin: bool) -> User:
        try:
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO users (email, password_hash, is_admin, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (email, password_hash, int(is_admin), time.time()),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"email: {email} already has an account") from None
        return User(id=cursor.lastrowid or 0, email=email, is_admin=is_admin)

    def create_first_admin(self, email: str, password_hash: str) -> User | None:
        """Create the first account, as admin, only while there is none (setup races lose)."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT count(*) FROM users").fetchone()[0]:
                return None
            cursor = conn.execute(
                "INSERT INTO users (email, password_hash, is_admin, created_at)"
                " VALUES (?, ?, 1, ?)",
                (email, password_hash, time.time()),
            )
        return User(id=cursor.lastrowid or 0, email=email, is_admin=True)

    def user_by_email(self, email: str) -> tuple[User, str | None] | None:
        with self.db.locked() as conn:
            row = conn.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
        return (_user(row), row["password_hash"]) if row else None

    # --- sites ---------------------------------------------------------------------

    def create_site(self, domain: str, owner_id: int) -> Site:
        try:
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO sites (domain, created_at) VALUES (?, ?)", (domain, time.time())
                )
                site_id = cursor.lastrowid or 0
                conn.execute(
                    "INSERT INTO memberships (site_id, user_id, role) VALUES (?, ?, 'owner')",
                    (site_id, owner_id),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"domain: {domain} is already registered") from None
        return Site(id=site_id, domain=domain)

    def delete_site(self, site_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sites WHERE id = ?", (site_id,))

    def set_site_timezone(self, site_id: int, timezone: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE sites SET timezone = ? WHERE id = ?", (timezone, site_id))

    def all_sites(self) -> list[Site]:
        with self.db.locked() as conn:
            rows = conn.execute("SELECT * FROM sites WHERE enabled = 1").fetchall()
        return [_site(row) for row in rows]

    def sites_version(self) -> int:
        with self.db.locked() as conn:
            return conn.execute("SELECT version FROM sites_version").fetchone()[0]

    def memberships(self, user_id: int) -> list[Membership]:
        with self.db.locked() as conn:
            rows = conn.execute(
                "SELECT sites.*, memberships.role FROM sites"
                " JOIN memberships ON memberships.site_id = sites.id"
                " WHERE memberships.user_id = ? ORDER BY sites.domain",
                (user_id,),
            ).fetchall()
        return [Membership(site=_site(row), role=row["role"]) for row in rows]

    def membership(self, user_id: int, domain: str) -> Membership | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT sites.*, memberships.role FROM sites"
                " JOIN memberships ON memberships.site_id = sites.id"
                " WHERE memberships.user_id = ? AND sites.domain = ?",
                (user_id, domain),
            ).fetchone()
        return Membership(site=_site(row), role=row["role"]) if row else None

    # --- API keys and login sessions -------------------------------------------------

    def create_api_key(self, user_id: int, name: str, digest: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (user_id, name, token_digest, created_at)"
                " VALUES (?, ?, ?, ?)",
                (user_id, name, digest, time.time()),
            )

    def user_by_api_key(self, digest: str) -> User | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT users.* FROM users JOIN api_keys ON api_keys.user_id = users.id"
                " WHERE api_keys.token_digest = ?",
                (digest,),
            ).fetchone()
        return _user(row) if row else None

    def create_login_session(self, digest: str, user_id: int, expires_at: float) -> None:
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO login_sessions VALUES (?, ?, ?, ?)", (digest, user_id, now, expires_at)
            )

    def user_by_login_session(self, digest: str, now: float) -> User | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT users.* FROM users JOIN login_sessions ON login_sessions.user_id = users.id"
                " WHERE login_sessions.token_digest = ? AND login_sessions.expires_at > ?",
                (digest, now),
            ).fetchone()
        return _user(row) if row else None

    def delete_login_session(self, digest: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_sessions WHERE token_digest = ?", (digest,))

    # --- visitor-id salts ------------------------------------------------------------

    def salt_for_day(self, day: str, candidate: bytes) -> bytes:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO visitor_salts VALUES (?, ?)", (day, candidate))
            conn.execute(
                "DELETE FROM visitor_salts WHERE day NOT IN"
                " (SELECT day FROM visitor_salts ORDER BY day DESC LIMIT ?)",
                (SALT_DAYS_KEPT,),
            )
            row = conn.execute("SELECT salt FROM visitor_salts WHERE day = ?", (day,)).fetchone()
        return bytes(row[0])
