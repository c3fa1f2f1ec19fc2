"""Inviting an email to a site: the invitation and the link the admin passes on.

The appliance sends no email: the admin copies the link (from the members page or
`appliance invite`) to the invitee. The link's token is the credential, shown once and
stored only as a digest; it expires after INVITATION_DAYS and works once.
"""

from __future__ import annotations

import time
from typing import Any

from appliance.core.accounts import (
    INVITE_ROLES,
    AccountError,
    Invitation,
    new_token,
    normalize_email,
    token_digest,
)
from appliance.core.stores import call

INVITATION_DAYS = 7


async def invite(
    accounts: Any, site_id: int, raw_email: str, role: str, invited_by: int | None
) -> tuple[Invitation, str]:
    """Store an invitation (replacing an open one for the same email) -> (it, its token)."""
    email = normalize_email(raw_email)
    if role not in INVITE_ROLES:
        raise AccountError(f"role: must be one of {', '.join(INVITE_ROLES)} (got {role!r})")
    token = new_token("inv")
    expires_at = time.time() + INVITATION_DAYS * 86400
    invitation = await call(
        accounts.create_invitation,
        site_id,
        email,
        role,
        token_digest(token),
        invited_by,
        expires_at,
    )
    return invitation, token


def invitation_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/invitations/{token}"
