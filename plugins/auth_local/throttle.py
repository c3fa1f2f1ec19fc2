"""Brute-force protection: too many failed logins per account or per client IP -> 429.

Failures (a wrong password, an unknown email, a wrong second-factor code) are counted in
the account store, so every appliance process sharing it sees the same counts and a
restart forgets nothing. The keys do not depend on whether the account exists, and a
refused attempt is answered before any password is hashed, so neither the count nor the
timing tells whether an email is registered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from appliance.core.stores import call
from appliance.web.security import appliance_of, client_ip

MAX_KEY_EMAIL = 320


@dataclass(frozen=True)
class ThrottleLimits:
    per_account: int
    per_ip: int
    window_s: int

    @classmethod
    def from_settings(cls, settings: Any) -> ThrottleLimits:
        section = settings.auth_local
        return cls(
            per_account=int(section.max_failures_per_account),
            per_ip=int(section.max_failures_per_ip),
            window_s=int(section.failure_window_s),
        )


def throttle_keys(request: Request, email: str) -> tuple[str, str]:
    """The account's key and the client's: a keyed pseudonym, the address is never stored."""
    ip = client_ip(request, request.app.state.trusted_proxies)
    pseudonym = appliance_of(request).address_pseudonym(ip)
    return f"account:{email[:MAX_KEY_EMAIL]}", f"ip:{pseudonym}"


async def retry_after(request: Request, email: str) -> int | None:
    """Seconds to wait when this account or this IP had too many failures, else None."""
    appliance = appliance_of(request)
    limits = ThrottleLimits.from_settings(appliance.settings)
    account, ip = throttle_keys(request, email)
    counts = await call(
        appliance.accounts.login_failures, [account, ip], time.time() - limits.window_s
    )
    if counts[account] >= limits.per_account or counts[ip] >= limits.per_ip:
        return limits.window_s
    return None


async def record_failure(request: Request, email: str) -> None:
    keys = list(throttle_keys(request, email))
    await call(appliance_of(request).accounts.record_login_failure, keys, time.time())


async def record_success(request: Request, email: str) -> None:
    """A complete login (password and any second factor) clears the account's count; the
    IP's stays, so one good account cannot launder guesses at others."""
    account, _ = throttle_keys(request, email)
    await call(appliance_of(request).accounts.clear_login_failures, account)
