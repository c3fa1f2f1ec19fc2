"""The account store's sign-in records: members, invitations, external identities, two-factor
secrets, login challenges and failed logins (migration 0002).

A mixin of `SqliteAccountStore`, kept apart so each file has one job; it uses the store's
`db`. Every multi-row change runs in one transaction, so two concurrent requests cannot
both accept an invitation, use a recovery code or take a challenge.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from appliance.core.accounts import (
    INVITE_ROLES,
    AccountError,
    AlreadyExists,
    Invitation,
    Member,
    Site,
    User,
)

if TYPE_CHECKING:
    from plugins.store_sqlite.db import Database

# Higher wins when an invitation meets an existing membership.
ROLE_RANK = {"viewer": 0, "admin": 1, "owner": 2}
FAILURES_KEPT_S = 86400  # failed logins older than a day are deleted as new ones arrive


def _invitation(row: sqlite3.Row) -> Invitation:
    site = Site(
        id=row["site_id"],
        domain=row["domain"],
        timezone=row["timezone"],
        enabled=bool(row["enabled"]),
    )
    return Invitation(
        id=row["id"], site=site, email=row["email"], role=row["role"], expires_at=row["expires_at"]
    )


_INVITATION_SELECT = (
    "SELECT invitations.*, sites.domain, sites.timezone, sites.enabled FROM invitations"
    " JOIN sites ON sites.id = invitations.site_id"
)


class SignInRecords:
    db: Database

    # --- members ----------------------------------------------------------------------

    def site_members(self, site_id: int) -> list[Member]:
        with self.db.locked() as conn:
            rows = conn.execute(
                "SELECT users.*, memberships.role FROM users"
                " JOIN memberships ON memberships.user_id = users.id"
                " WHERE memberships.site_id = ?"
                " ORDER BY memberships.role = 'owner' DESC, users.email",
                (site_id,),
            ).fetchall()
        return [
            Member(
                user=User(id=row["id"], email=row["email"], is_admin=bool(row["is_admin"])),
                role=row["role"],
            )
            for row in rows
        ]

    def set_member_role(self, site_id: int, user_id: int, role: str) -> bool:
        if role not in INVITE_ROLES:
            raise AccountError(f"role: must be one of {', '.join(INVITE_ROLES)}")
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE memberships SET role = ?"
                " WHERE site_id = ? AND user_id = ? AND role != 'owner'",
                (role, site_id, user_id),
            )
        return cursor.rowcount == 1

    def remove_member(self, site_id: int, user_id: int) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM memberships WHERE site_id = ? AND user_id = ? AND role != 'owner'",
                (site_id, user_id),
            )
        return cursor.rowcount == 1

    # --- invitations ------------------------------------------------------------------

    def create_invitation(
        self,
        site_id: int,
        email: str,
        role: str,
        digest: str,
        invited_by: int | None,
        expires_at: float,
    ) -> Invitation:
        if role not in INVITE_ROLES:
            raise AccountError(f"role: must be one of {', '.join(INVITE_ROLES)}")
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM invitations WHERE site_id = ? AND email = ? AND accepted_at IS NULL",
                (site_id, email),
            )
            cursor = conn.execute(
                "INSERT INTO invitations"
                " (token_digest, site_id, email, role, invited_by, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest, site_id, email, role, invited_by, time.time(), expires_at),
            )
            row = conn.execute(
                f"{_INVITATION_SELECT} WHERE invitations.id = ?", (cursor.lastrowid,)
            ).fetchone()
        return _invitation(row)

    def open_invitations(self, site_id: int, now: float) -> list[Invitation]:
        with self.db.locked() as conn:
            rows = conn.execute(
                f"{_INVITATION_SELECT} WHERE invitations.site_id = ?"
                " AND accepted_at IS NULL AND expires_at > ? ORDER BY email",
                (site_id, now),
            ).fetchall()
        return [_invitation(row) for row in rows]

    def invitation_by_token(self, digest: str, now: float) -> Invitation | None:
        with self.db.locked() as conn:
            row = conn.execute(
                f"{_INVITATION_SELECT} WHERE token_digest = ?"
                " AND accepted_at IS NULL AND expires_at > ?",
                (digest, now),
            ).fetchone()
        return _invitation(row) if row else None

    def invited_email(self, email: str, now: float) -> bool:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT 1 FROM invitations"
                " WHERE email = ? AND accepted_at IS NULL AND expires_at > ?",
                (email, now),
            ).fetchone()
        return row is not None

    def revoke_invitation(self, site_id: int, invitation_id: int) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM invitations WHERE id = ? AND site_id = ? AND accepted_at IS NULL",
                (invitation_id, site_id),
            )
        return cursor.rowcount == 1

    def accept_invitations(self, user_id: int, email: str, now: float) -> list[str]:
        joined = []
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"{_INVITATION_SELECT} WHERE accepted_at IS NULL AND expires_at > ? AND email = ?",
                (now, email),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE invitations SET accepted_at = ?, accepted_by = ? WHERE id = ?",
                    (now, user_id, row["id"]),
                )
                current = conn.execute(
                    "SELECT role FROM memberships WHERE site_id = ? AND user_id = ?",
                    (row["site_id"], user_id),
                ).fetchone()
                if current is None:
                    conn.execute(
                        "INSERT INTO memberships (site_id, user_id, role) VALUES (?, ?, ?)",
                        (row["site_id"], user_id, row["role"]),
                    )
                elif ROLE_RANK[row["role"]] > ROLE_RANK[current["role"]]:
                    conn.execute(
                        "UPDATE memberships SET role = ? WHERE site_id = ? AND user_id = ?",
                        (row["role"], row["site_id"], user_id),
                    )
                joined.append(row["domain"])
        return sorted(set(joined))

    # --- external identities -----------------------------------------------------------

    def user_by_identity(self, provider: str, subject: str) -> User | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT users.* FROM users JOIN identities ON identities.user_id = users.id"
                " WHERE identities.provider = ? AND identities.subject = ?",
                (provider, subject),
            ).fetchone()
        if row is None:
            return None
        return User(id=row["id"], email=row["email"], is_admin=bool(row["is_admin"]))

    def link_identity(self, provider: str, subject: str, user_id: int, email: str) -> None:
        with self.db.transaction() as conn:
            linked = conn.execute(
                "SELECT user_id FROM identities WHERE provider = ? AND subject = ?",
                (provider, subject),
            ).fetchone()
            if linked is not None and linked["user_id"] != user_id:
                raise AlreadyExists(f"{provider}: this account is linked to another user")
            conn.execute(
                "INSERT OR IGNORE INTO identities VALUES (?, ?, ?, ?, ?)",
                (provider, subject, user_id, email, time.time()),
            )

    def create_external_user(self, email: str, provider: str, subject: str) -> User:
        now = time.time()
        try:
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO users (email, password_hash, is_admin, created_at)"
                    " VALUES (?, NULL, 0, ?)",
                    (email, now),
                )
                conn.execute(
                    "INSERT INTO identities VALUES (?, ?, ?, ?, ?)",
                    (provider, subject, cursor.lastrowid, email, now),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"email: {email} already has an account") from None
        return User(id=cursor.lastrowid or 0, email=email, is_admin=False)

    # --- two-factor login --------------------------------------------------------------

    def totp_secret(self, user_id: int) -> tuple[str, bool, int] | None:
        with self.db.locked() as conn:
            row = conn.execute(
                "SELECT * FROM totp_secrets WHERE user_id = ?", (user_id,)
            ).fetchone()
        if row is None:
            return None
        return row["sealed_secret"], row["confirmed_at"] is not None, row["last_step"]

    def start_totp_enrolment(self, user_id: int, sealed_secret: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO totp_secrets (user_id, sealed_secret) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,"
                " last_step = 0 WHERE totp_secrets.confirmed_at IS NULL",
                (user_id, sealed_secret),
            )
        return cursor.rowcount == 1

    def confirm_totp(self, user_id: int, step: int, code_digests: list[str], now: float) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE totp_secrets SET confirmed_at = ?, last_step = ?"
                " WHERE user_id = ? AND confirmed_at IS NULL",
                (now, step, user_id),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
            conn.executemany(
                "INSERT INTO recovery_codes (user_id, code_digest) VALUES (?, ?)",
                [(user_id, digest) for digest in code_digests],
            )
        return True

    def use_totp_step(self, user_id: int, step: int) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE totp_secrets SET last_step = ?"
                " WHERE user_id = ? AND confirmed_at IS NOT NULL AND last_step < ?",
                (step, user_id, step),
            )
        return cursor.rowcount == 1

    def use_recovery_code(self, user_id: int, digest: str, now: float) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE recovery_codes SET used_at = ?"
                " WHERE user_id = ? AND code_digest = ? AND used_at IS NULL",
                (now, user_id, digest),
            )
        return cursor.rowcount == 1

    def unused_recovery_codes(self, user_id: int) -> int:
        with self.db.locked() as conn:
            return conn.execute(
                "SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
                (user_id,),
            ).fetchone()[0]

    def delete_totp(self, user_id: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM totp_secrets WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))

    # --- login challenges and throttling ------------------------------------------------

    def create_login_challenge(
        self, digest: str, kind: str, payload: str, expires_at: float
    ) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_challenges WHERE expires_at < ?", (time.time(),))
            conn.execute(
                "INSERT INTO login_challenges VALUES (?, ?, ?, ?)",
                (digest, kind, payload, expires_at),
            )

    def take_login_challenge(self, digest: str, kind: str, now: float) -> str | None:
        with self.db.transaction() as conn:
            row = conn.execute(
                "DELETE FROM login_challenges WHERE token_digest = ? RETURNING *", (digest,)
            ).fetchone()
        if row is None or row["kind"] != kind or row["expires_at"] <= now:
            return None
        return row["payload"]

    def record_login_failure(self, keys: list[str], at: float) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE at < ?", (at - FAILURES_KEPT_S,))
            conn.executemany("INSERT INTO login_failures VALUES (?, ?)", [(k, at) for k in keys])

    def login_failures(self, keys: list[str], since: float) -> dict[str, int]:
        counts = dict.fromkeys(keys, 0)
        with self.db.locked() as conn:
            for key in keys:
                counts[key] = conn.execute(
                    "SELECT count(*) FROM login_failures WHERE key = ? AND at >= ?", (key, since)
                ).fetchone()[0]
        return counts

    def clear_login_failures(self, key: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = ?", (key,))
