"""Accounts: users, sites, memberships, API keys and login sessions, and the store contract.

Secrets given to people (API keys, session tokens, invitation links, recovery codes) are
stored only as SHA-256 digests; passwords only as argon2id hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("owner", "admin", "viewer")
# Roles an invitation (or a member change) can give; there is one owner, who created the site.
INVITE_ROLES = ("viewer", "admin")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class AccountError(ValueError):
    """A request about accounts that cannot be honoured; the message says why."""


class AlreadyExists(AccountError):
    """The email or domain is taken."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class Site:
    id: int
    domain: str
    timezone: str = "UTC"
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Membership:
    site: Site
    role: str


@dataclass(frozen=True, slots=True)
class Member:
    """A user's place on one site, as the site's members list shows it."""

    user: User
    role: str


@dataclass(frozen=True, slots=True)
class Invitation:
    """An open invitation of an email to a site with a role, until `expires_at`."""

    id: int
    site: Site
    email: str
    role: str
    expires_at: float


def normalize_domain(raw: str) -> str:
    """'https://WWW.Example.com/' -> 'example.com'; raises AccountError when it isn't a host."""
    domain = raw.strip().lower()
    domain = re.sub(r"^[a-z]+://", "", domain).split("/", 1)[0].rstrip(".")
    domain = domain.removeprefix("www.")
    if not _DOMAIN.match(domain):
        raise AccountError(f"domain: {raw!r} is not a valid host name")
    return domain


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL.match(email):
        raise AccountError(f"email: {raw!r} is not a valid address")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < 10:
        raise AccountError("password: must be at least 10 characters")
    if len(password) > 1024:
        raise AccountError("password: must be at most 1024 characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Used to spend the same time on unknown emails as on wrong passwords.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore(Protocol):
    """Methods may be sync (run in a worker thread) or async."""

    def open(self) -> Any: ...

    def close(self) -> Any: ...

    def count_users(self) -> Any: ...

    def create_user(self, email: str, password_hash: str | None, is_admin: bool) -> Any:
        """Return the new User; raise AccountError when the email is taken."""
        ...

    def create_first_admin(self, email: str, password_hash: str) -> Any:
        """Create the first user as admin if no user exists yet; else return None."""
        ...

    def user_by_email(self, email: str) -> Any:
        """Return (User, password_hash) or None."""
        ...

    def create_site(self, domain: str, owner_id: int) -> Any:
        """Return the new Site; raise AccountError when the domain exists."""
        ...

    def delete_site(self, site_id: int) -> Any: ...

    def set_site_timezone(self, site_id: int, timezone: str) -> Any:
        """Change the IANA time zone the site's days and "today" follow."""
        ...

    def all_sites(self) -> Any:
        """Every enabled site (for the ingest's in-memory domain cache)."""
        ...

    def sites_version(self) -> Any:
        """A value that changes whenever sites change (cheap to read)."""
        ...

    def memberships(self, user_id: int) -> Any:
        """The user's sites with their role, sorted by domain."""
        ...

    def membership(self, user_id: int, domain: str) -> Any:
        """The user's Membership of the site with this domain, or None."""
        ...

    def create_api_key(self, user_id: int, name: str, digest: str) -> Any: ...

    def user_by_api_key(self, digest: str) -> Any: ...

    def create_login_session(self, digest: str, user_id: int, expires_at: float) -> Any: ...

    def user_by_login_session(self, digest: str, now: float) -> Any: ...

    def delete_login_session(self, digest: str) -> Any: ...

    def salt_for_day(self, day: str, candidate: bytes) -> Any:
        """Return the salt stored for `day`, storing `candidate` if none; forget old days."""
        ...

    # --- members and invitations ------------------------------------------------------

    def site_members(self, site_id: int) -> Any:
        """The site's Members (owner first, then by email)."""
        ...

    def set_member_role(self, site_id: int, user_id: int, role: str) -> Any:
        """Give a member (never the owner) another of INVITE_ROLES; True if one changed."""
        ...

    def remove_member(self, site_id: int, user_id: int) -> Any:
        """Take a member (never the owner) off the site; True if one was removed."""
        ...

    def create_invitation(
        self,
        site_id: int,
        email: str,
        role: str,
        digest: str,
        invited_by: int | None,
        expires_at: float,
    ) -> Any:
        """Store an invitation by its link's token digest; replaces an open one for the
        same site and email. Returns the Invitation; raises AccountError for a role outside
        INVITE_ROLES."""
        ...

    def open_invitations(self, site_id: int, now: float) -> Any:
        """The site's unexpired, unaccepted Invitations, by email."""
        ...

    def invitation_by_token(self, digest: str, now: float) -> Any:
        """The open, unexpired Invitation with this token digest, or None."""
        ...

    def invited_email(self, email: str, now: float) -> Any:
        """Whether any open, unexpired invitation is addressed to this email."""
        ...

    def revoke_invitation(self, site_id: int, invitation_id: int) -> Any:
        """Delete an open invitation of this site; True if one was deleted."""
        ...

    def accept_invitations(self, user_id: int, email: str, now: float) -> Any:
        """Turn every open, unexpired invitation addressed to `email` into a membership of
        `user_id`, in one transaction, each once only; an existing membership keeps the
        higher role. Returns the domains of the sites joined."""
        ...

    # --- external identities (GitHub, Google, ...) --------------------------------------

    def user_by_identity(self, provider: str, subject: str) -> Any:
        """The User linked to this provider's account id, or None."""
        ...

    def link_identity(self, provider: str, subject: str, user_id: int, email: str) -> Any:
        """Link a provider's account id to a user (idempotent for the same user)."""
        ...

    def create_external_user(self, email: str, provider: str, subject: str) -> Any:
        """Create a user without a password, linked to the provider's account, in one
        transaction; raise AlreadyExists when the email is taken. Returns the User."""
        ...

    # --- two-factor login ---------------------------------------------------------------

    def totp_secret(self, user_id: int) -> Any:
        """(sealed_secret, confirmed, last_step) or None when nothing is enrolled."""
        ...

    def start_totp_enrolment(self, user_id: int, sealed_secret: str) -> Any:
        """Store a new, unconfirmed secret (replacing an unconfirmed one); False when a
        confirmed secret exists already."""
        ...

    def confirm_totp(self, user_id: int, step: int, code_digests: list[str], now: float) -> Any:
        """Confirm enrolment with the code of time step `step` and store the recovery codes'
        digests (replacing older ones); False when there was nothing to confirm."""
        ...

    def use_totp_step(self, user_id: int, step: int) -> Any:
        """Record that a confirmed secret's code of `step` was used; False when that step or
        a later one was used already (a replayed code)."""
        ...

    def use_recovery_code(self, user_id: int, digest: str, now: float) -> Any:
        """Mark an unused recovery code used; False when it is unknown or used already."""
        ...

    def unused_recovery_codes(self, user_id: int) -> Any:
        """How many recovery codes are left."""
        ...

    def delete_totp(self, user_id: int) -> Any:
        """Forget the secret and the recovery codes (two-factor login off)."""
        ...

    # --- login challenges and throttling -----------------------------------------------

    def create_login_challenge(
        self, digest: str, kind: str, payload: str, expires_at: float
    ) -> Any:
        """Keep a single-use token between two steps of a login (OAuth state, the TOTP
        step), by digest, with an opaque payload."""
        ...

    def take_login_challenge(self, digest: str, kind: str, now: float) -> Any:
        """Delete the challenge (whatever its kind) and return its payload if it has this
        kind and has not expired; else None. Two concurrent takes never both succeed."""
        ...

    def record_login_failure(self, keys: list[str], at: float) -> Any:
        """Count one failed login against each key ("account:<email>", "ip:<address>")."""
        ...

    def login_failures(self, keys: list[str], since: float) -> Any:
        """{key: failures at or after `since`} for the keys (0 for a key without any)."""
        ...

    def clear_login_failures(self, key: str) -> Any:
        """Forget a key's failures (after a successful login)."""
        ...
