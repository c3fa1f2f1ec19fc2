"""Settings shared by OAuth provider plugins: their checks and the "disabled" warning.

A provider section (`auth_github`, `auth_google`) has `client_id`, `client_secret` (a
secret: environment or .secrets.toml only), allow lists and its endpoints. A malformed
value stops start-up; missing credentials only switch the provider off, so a fresh install
starts with password login alone and says nothing about it; half-set credentials (an id
without its secret) get one warning naming the key to set.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from appliance.core.settings import is_list, require

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CREDENTIAL_KEYS = ("client_id", "client_secret")


def is_endpoint(value: Any) -> str | None:
    """https:// URLs; plain http:// only on loopback (the test suite's fake provider)."""
    parts = urlsplit(str(value))
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    return "must be an https:// URL (http:// only on 127.0.0.1 or localhost)"


def provider_problems(
    settings: Any, section: str, list_keys: tuple[str, ...], url_keys: tuple[str, ...]
) -> list[str]:
    problems = [require(settings, f"{section}.{key}", is_list) for key in list_keys]
    problems += [require(settings, f"{section}.{key}", is_endpoint) for key in url_keys]
    return [problem for problem in problems if problem]


def missing_credentials(settings: Any, section: str) -> list[str]:
    """The credential keys that are empty, as `SECTION.KEY` (the values are never shown)."""
    return [
        f"{section}.{key}".upper()
        for key in CREDENTIAL_KEYS
        if not str(settings.get(f"{section}.{key}") or "").strip()
    ]


def report_missing(label: str, missing: list[str]) -> None:
    """Quiet when the provider is simply not configured; a warning when half of it is."""
    level = logging.DEBUG if len(missing) == len(CREDENTIAL_KEYS) else logging.WARNING
    variables = ", ".join(f"APPLIANCE_{key.replace('.', '__')}" for key in missing)
    log.log(
        level, "%s sign-in is off: %s not set (set %s)", label, " and ".join(missing), variables
    )
