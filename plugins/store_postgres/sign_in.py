"""The account store's sign-in records in Postgres: members, invitations, external identities,
two-factor secrets, login challenges and failed logins (accounts migration 0002).

A mixin of `PostgresAccountStore` (it uses the store's `db`), with the embedded store's
behaviour; every multi-row change is one transaction, and the rows it decides on are locked
(or changed by one conditional statement), so two app instances racing on the same invitation,
recovery code or challenge never both succeed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psycopg

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
    from plugins.store_postgres.db import Database

# Higher wins when an invitation meets an existing membership.
ROLE_RANK = {"viewer": 0, "admin": 1, "owner": 2}
FAILURES_KEPT_S = 86400  # failed logins older than a day are deleted as new ones arrive

_INVITATION_SELECT = (
    "SELECT invitations.id, invitations.email, invitations.role, invitations.expires_at,"
    " sites.id, sites.domain, sites.timezone, sites.enabled FROM invitations"
    " JOIN sites ON sites.id = invitations.site_id"
)


def _invitation(row: tuple[Any, ...]) -> Invitation:
    invitation_id, email, role, expires_at, *site = row
    return Invitation(id=invitation_id, site=Site(*site), email=email, role=role,
                      expires_at=expires_at)  # fmt: skip


def _check_role(role: str) -> None:
    if role not in INVITE_ROLES:
        raise AccountError(f"role: must be one of {', '.join(INVITE_ROLES)}")


class SignInRecords:
    db: Database

    # --- members ----------------------------------------------------------------------

    def site_members(self, site_id: int) -> list[Member]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT users.id, users.email, users.is_admin, memberships.role FROM users"
                " JOIN memberships ON memberships.user_id = users.id"
                " WHERE memberships.site_id = %s"
                " ORDER BY memberships.role = 'owner' DESC, users.email COLLATE \"C\"",
                (site_id,),
            ).fetchall()
        return [Member(user=User(*row[:3]), role=row[3]) for row in rows]

    def set_member_role(self, site_id: int, user_id: int, role: str) -> bool:
        _check_role(role)
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE memberships SET role = %s"
                " WHERE site_id = %s AND user_id = %s AND role <> 'owner'",
                (role, site_id, user_id),
            )
        return cursor.rowcount == 1

    def remove_member(self, site_id: int, user_id: int) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM memberships WHERE site_id = %s AND user_id = %s AND role <> 'owner'",
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
        _check_role(role)
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM invitations WHERE site_id = %s AND email = %s AND accepted_at IS NULL",
                (site_id, email),
            )
            created = conn.execute(
                "INSERT INTO invitations"
                " (token_digest, site_id, email, role, invited_by, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (digest, site_id, email, role, invited_by, time.time(), expires_at),
            ).fetchone()
            assert created is not None
            row = conn.execute(
                f"{_INVITATION_SELECT} WHERE invitations.id = %s", (created[0],)
            ).fetchone()
        assert row is not None
        return _invitation(row)

    def open_invitations(self, site_id: int, now: float) -> list[Invitation]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"{_INVITATION_SELECT} WHERE invitations.site_id = %s"
                " AND accepted_at IS NULL AND expires_at > %s"
                ' ORDER BY invitations.email COLLATE "C"',
                (site_id, now),
            ).fetchall()
        return [_invitation(row) for row in rows]

    def invitation_by_token(self, digest: str, now: float) -> Invitation | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"{_INVITATION_SELECT} WHERE token_digest = %s"
                " AND accepted_at IS NULL AND expires_at > %s",
                (digest, now),
            ).fetchone()
        return _invitation(row) if row else None

    def invited_email(self, email: str, now: float) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM invitations"
                " WHERE email = %s AND accepted_at IS NULL AND expires_at > %s LIMIT 1",
                (email, now),
            ).fetchone()
        return row is not None

    def revoke_invitation(self, site_id: int, invitation_id: int) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM invitations WHERE id = %s AND site_id = %s AND accepted_at IS NULL",
                (invitation_id, site_id),
            )
        return cursor.rowcount == 1

    def accept_invitations(self, user_id: int, email: str, now: float) -> list[str]:
        joined = []
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT invitations.id, invitations.site_id, invitations.role, sites.domain"
                " FROM invitations JOIN sites ON sites.id = invitations.site_id"
                " WHERE accepted_at IS NULL AND expires_at > %s AND email = %s"
                " FOR UPDATE OF invitations",
                (now, email),
            ).fetchall()
            for invitation_id, site_id, role, domain in rows:
                conn.execute(
                    "UPDATE invitations SET accepted_at = %s, accepted_by = %s WHERE id = %s",
                    (now, user_id, invitation_id),
                )
                current = conn.execute(
                    "SELECT role FROM memberships WHERE site_id = %s AND user_id = %s FOR UPDATE",
                    (site_id, user_id),
                ).fetchone()
                if current is None:
                    conn.execute(
                        "INSERT INTO memberships (site_id, user_id, role) VALUES (%s, %s, %s)",
                        (site_id, user_id, role),
                    )
                elif ROLE_RANK[role] > ROLE_RANK[current[0]]:
                    conn.execute(
                        "UPDATE memberships SET role = %s WHERE site_id = %s AND user_id = %s",
                        (role, site_id, user_id),
                    )
                joined.append(domain)
        return sorted(set(joined))

    # --- external identities -----------------------------------------------------------

    def user_by_identity(self, provider: str, subject: str) -> User | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT users.id, users.email, users.is_admin FROM users"
                " JOIN identities ON identities.user_id = users.id"
                " WHERE identities.provider = %s AND identities.subject = %s",
                (provider, subject),
            ).fetchone()
        return User(*row) if row else None

    def link_identity(self, provider: str, subject: str, user_id: int, email: str) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO identities (provider, subject, user_id, email, created_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (provider, subject, user_id, email, time.time()),
            )
            linked = conn.execute(
                "SELECT user_id FROM identities WHERE provider = %s AND subject = %s",
                (provider, subject),
            ).fetchone()
        if linked is not None and linked[0] != user_id:
            raise AlreadyExists(f"{provider}: this account is linked to another user")

    def create_external_user(self, email: str, provider: str, subject: str) -> User:
        now = time.time()
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "INSERT INTO users (email, password_hash, is_admin, created_at)"
                    " VALUES (%s, NULL, false, %s) RETURNING id",
                    (email, now),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO identities (provider, subject, user_id, email, created_at)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (provider, subject, row[0], email, now),
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"email: {email} already has an account") from None
        return User(id=row[0], email=email, is_admin=False)

    # --- two-factor login --------------------------------------------------------------

    def totp_secret(self, user_id: int) -> tuple[str, bool, int] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT sealed_secret, confirmed_at IS NOT NULL, last_step FROM totp_secrets"
                " WHERE user_id = %s",
                (user_id,),
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def start_totp_enrolment(self, user_id: int, sealed_secret: str) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO totp_secrets AS t (user_id, sealed_secret) VALUES (%s, %s)"
                " ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,"
                " last_step = 0 WHERE t.confirmed_at IS NULL",
                (user_id, sealed_secret),
            )
        return cursor.rowcount == 1

    def confirm_totp(self, user_id: int, step: int, code_digests: list[str], now: float) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE totp_secrets SET confirmed_at = %s, last_step = %s"
                " WHERE user_id = %s AND confirmed_at IS NULL",
                (now, step, user_id),
            )
            if cursor.rowcount != 1:
                return False
            conn.execute("DELETE FROM recovery_codes WHERE user_id = %s", (user_id,))
            conn.execute(
                "INSERT INTO recovery_codes (user_id, code_digest)"
                " SELECT %s, digest FROM unnest(%s::text[]) AS digest",
                (user_id, code_digests),
            )
        return True

    def use_totp_step(self, user_id: int, step: int) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE totp_secrets SET last_step = %s"
                " WHERE user_id = %s AND confirmed_at IS NOT NULL AND last_step < %s",
                (step, user_id, step),
            )
        return cursor.rowcount == 1

    def use_recovery_code(self, user_id: int, digest: str, now: float) -> bool:
        with self.db.connection() as conn:
            cursor = conn.execute(
                "UPDATE recovery_codes SET used_at = %s"
                " WHERE user_id = %s AND code_digest = %s AND used_at IS NULL",
                (now, user_id, digest),
            )
        return cursor.rowcount == 1

    def unused_recovery_codes(self, user_id: int) -> int:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM recovery_codes WHERE user_id = %s AND used_at IS NULL",
                (user_id,),
            ).fetchone()
        return row[0] if row else 0

    def delete_totp(self, user_id: int) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM totp_secrets WHERE user_id = %s", (user_id,))
            conn.execute("DELETE FROM recovery_codes WHERE user_id = %s", (user_id,))

    # --- login challenges and throttling ------------------------------------------------

    def create_login_challenge(
        self, digest: str, kind: str, payload: str, expires_at: float
    ) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM login_challenges WHERE expires_at < %s", (time.time(),))
            conn.execute(
                "INSERT INTO login_challenges (token_digest, kind, payload, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (digest, kind, payload, expires_at),
            )

    def take_login_challenge(self, digest: str, kind: str, now: float) -> str | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "DELETE FROM login_challenges WHERE token_digest = %s"
                " RETURNING kind, payload, expires_at",
                (digest,),
            ).fetchone()
        if row is None or row[0] != kind or row[2] <= now:
            return None
        return row[1]

    def record_login_failure(self, keys: list[str], at: float) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM login_failures WHERE at < %s", (at - FAILURES_KEPT_S,))
            conn.execute(
                "INSERT INTO login_failures (key, at) SELECT key, %s FROM unnest(%s::text[]) key",
                (at, keys),
            )

    def login_failures(self, keys: list[str], since: float) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT key, count(*) FROM login_failures"
                " WHERE key = ANY(%s::text[]) AND at >= %s GROUP BY key",
                (keys, since),
            ).fetchall()
        return dict.fromkeys(keys, 0) | {key: count for key, count in rows}

    def clear_login_failures(self, key: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM login_failures WHERE key = %s", (key,))
