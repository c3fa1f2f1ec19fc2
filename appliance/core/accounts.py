"""Accounts: users, sites, memberships, API keys and login sessions, and the store contract.

Secrets given to people (API keys, session tokens) are stored only as SHA-256 digests;
passwords only as argon2id hashes.
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
