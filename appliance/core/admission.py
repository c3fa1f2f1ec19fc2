"""Who may sign in with an outside account (GitHub, Google), and which user it becomes.

The admin decides: a provider's account creates a user only when its verified email was
invited, its email domain is allowed, or (GitHub) one of its organizations is allowed. An
account already linked, or an existing user with the same verified email (who was let in
before, by setup, the CLI or an invitation), signs in and is linked, never duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from appliance.core.accounts import AccountError, AlreadyExists, User, normalize_email
from appliance.core.stores import call


class SignInRefused(Exception):
    """The sign-in cannot go on; the message is shown to the person (no secrets in it)."""


@dataclass(frozen=True)
class ExternalIdentity:
    """What a provider vouches for: its stable account id and a verified email."""

    provider: str
    subject: str
    email: str
    organizations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AdmissionPolicy:
    """A provider's allow lists, from its settings (lower-case)."""

    allowed_domains: frozenset[str] = frozenset()
    allowed_organizations: frozenset[str] = frozenset()

    def allows(self, identity: ExternalIdentity) -> bool:
        domain = identity.email.rsplit("@", 1)[-1]
        return domain in self.allowed_domains or bool(
            identity.organizations & self.allowed_organizations
        )


async def admit(
    accounts: Any,
    identity: ExternalIdentity,
    policy: AdmissionPolicy,
) -> User:
    """The user this identity signs in as, linked, with the invitations to its email
    accepted. Raises SignInRefused (nothing is created then)."""
    now = time.time()
    try:
        email = normalize_email(identity.email)
    except AccountError:
        raise SignInRefused(f"{identity.provider} gave no usable email address.") from None
    user = await call(accounts.user_by_identity, identity.provider, identity.subject)
    if user is None:
        user = await _link_existing(accounts, identity, email)
    if user is None:
        invited = await call(accounts.invited_email, email, now)
        if not (invited or policy.allows(identity)):
            raise SignInRefused(
                f"{email} is not invited to this appliance. Ask an admin of the site you want"
                " to see for an invitation."
            )
        try:
            user = await call(
                accounts.create_external_user, email, identity.provider, identity.subject
            )
        except AlreadyExists:  # created by a concurrent sign-in a moment ago
            user = await _link_existing(accounts, identity, email)
            if user is None:
                raise SignInRefused("This account could not be created; try again.") from None
    await call(accounts.accept_invitations, user.id, user.email, now)
    return user


async def _link_existing(accounts: Any, identity: ExternalIdentity, email: str) -> User | None:
    found = await call(accounts.user_by_email, email)
    if found is None:
        return None
    user = found[0]
    try:
        await call(accounts.link_identity, identity.provider, identity.subject, user.id, email)
    except AlreadyExists:
        raise SignInRefused(
            f"{email} is already linked to another {identity.provider} account."
        ) from None
    return user
