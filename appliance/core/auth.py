"""The auth-provider contract: a way to log in, with its routes and its login-page fragment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuthProvider:
    id: str
    label: str
    # Template rendered inside the login page (a form or a "Sign in with ..." button).
    login_template: str
    order: int = 100
    routes: list[Any] = field(default_factory=list)
    # Template rendered on an invitation's page to create the invitee's account with this
    # provider (a sign-up form or the same button), or None to offer no sign-up there. It
    # gets `invitation` (the Invitation) and `invitation_token` (the link's token).
    signup_template: str | None = None
