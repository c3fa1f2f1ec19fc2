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
